// Exclude-list parsing and glob matching.
//
// Every path of every guest is checked against tens of rules, so each
// rule is compiled once (Glob): its literal prefix rejects most paths at
// once, a pattern without wildcards is a string comparison, and the rest
// run a dynamic program over the path's positions - linear in pattern x
// path, where the backtracking matcher before it was exponential in the
// number of "**" (an exclude line of 400 "**/" took 20 s).
#include "unify/exclude.h"

#include "kernel/fs.h"

namespace vu {

namespace {

// Parses a bracket expression starting at pat[pi] == '['. On success sets
// `set` (never containing '/') and `end` (the index after ']'); a
// malformed class (no closing ']') returns false and '[' is a literal.
bool parse_class(std::string_view pat, size_t pi, std::bitset<256>& set, size_t& end) {
  size_t i = pi + 1;
  bool negate = false;
  if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) {
    negate = true;
    ++i;
  }
  std::bitset<256> found;
  bool first = true;
  while (i < pat.size() && (first || pat[i] != ']')) {
    first = false;
    unsigned char lo = static_cast<unsigned char>(pat[i]);
    if (lo == '\\' && i + 1 < pat.size()) lo = static_cast<unsigned char>(pat[++i]);
    unsigned char hi = lo;
    if (i + 2 < pat.size() && pat[i + 1] == '-' && pat[i + 2] != ']') {
      hi = static_cast<unsigned char>(pat[i + 2]);
      if (hi == '\\' && i + 3 < pat.size()) {
        hi = static_cast<unsigned char>(pat[i + 3]);
        ++i;
      }
      i += 2;
    }
    for (unsigned c = lo; c <= hi; ++c) found.set(c);
    ++i;
  }
  if (i >= pat.size()) return false;
  end = i + 1;
  set = negate ? ~found : found;
  set.reset('/');
  return true;
}

} // namespace

Glob::Glob(std::string_view pat) : m_pattern(pat) {
  for (size_t i = 0; i < pat.size();) {
    char c = pat[i];
    if (c == '*') {
      size_t j = i;
      while (j < pat.size() && pat[j] == '*') ++j;
      if (j - i == 1) {
        m_tokens.push_back({Op::star});
      } else if (i > 0 && pat[i - 1] == '/' && j < pat.size() && pat[j] == '/') {
        m_tokens.push_back({Op::dirs}); // "/**/" also matches "/"
        ++j;
      } else {
        m_tokens.push_back({Op::stars});
      }
      i = j;
      continue;
    }
    if (c == '?') {
      m_tokens.push_back({Op::any});
      ++i;
      continue;
    }
    if (c == '[') {
      std::bitset<256> set;
      size_t end = 0;
      if (parse_class(pat, i, set, end)) {
        m_tokens.push_back({Op::set, 0, static_cast<uint32_t>(m_sets.size())});
        m_sets.push_back(set);
        i = end;
        continue;
      }
    }
    if (c == '\\' && i + 1 < pat.size()) c = pat[++i];
    m_tokens.push_back({Op::literal, c});
    ++i;
  }
  for (const Token& t : m_tokens) {
    if (t.op != Op::literal) break;
    m_prefix.push_back(t.c);
  }
  m_plain = m_prefix.size() == m_tokens.size();
}

bool Glob::match(std::string_view s) const {
  if (s.compare(0, m_prefix.size(), m_prefix) != 0) return false;
  if (m_plain) return s.size() == m_prefix.size();
  // reach[j]: the tokens so far match s[0, j). One row per token, two
  // rows kept; per thread so matching allocates nothing in steady state.
  thread_local std::vector<uint8_t> row_a, row_b;
  const size_t n = s.size();
  row_a.assign(n + 1, 0);
  row_b.assign(n + 1, 0);
  std::vector<uint8_t>* cur = &row_a;
  std::vector<uint8_t>* next = &row_b;
  (*cur)[m_prefix.size()] = 1;
  for (size_t t = m_prefix.size(); t < m_tokens.size(); ++t) {
    const Token& tok = m_tokens[t];
    const uint8_t* in = cur->data();
    uint8_t* out = next->data();
    bool any = false;
    switch (tok.op) {
    case Op::literal:
    case Op::any:
    case Op::set:
      out[0] = 0;
      for (size_t j = 0; j < n; ++j) {
        unsigned char ch = static_cast<unsigned char>(s[j]);
        bool ok = tok.op == Op::literal ? s[j] == tok.c
                  : tok.op == Op::any   ? s[j] != '/'
                                        : m_sets[tok.set].test(ch);
        out[j + 1] = in[j] && ok;
        any |= out[j + 1];
      }
      break;
    case Op::star:
      out[0] = in[0];
      for (size_t j = 1; j <= n; ++j) out[j] = in[j] || (out[j - 1] && s[j - 1] != '/');
      for (size_t j = 0; j <= n; ++j) any |= out[j];
      break;
    case Op::stars:
      out[0] = in[0];
      for (size_t j = 1; j <= n; ++j) out[j] = in[j] || out[j - 1];
      any = out[n];
      break;
    case Op::dirs: {
      bool seen = in[0]; // some k < j with in[k]
      out[0] = in[0];
      for (size_t j = 1; j <= n; ++j) {
        out[j] = in[j] || (s[j - 1] == '/' && seen);
        seen |= in[j];
        any |= out[j];
      }
      any |= out[0];
      break;
    }
    }
    if (!any) return false;
    std::swap(cur, next);
  }
  return (*cur)[n] != 0;
}

bool glob_match(std::string_view pattern, std::string_view path) {
  return Glob(pattern).match(path);
}

Result<ExcludeList> ExcludeList::parse(std::string_view text, const std::string& origin) {
  ExcludeList list;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    ExcludeRule rule;
    rule.origin = origin + ":" + std::to_string(line_no);
    switch (line.front()) {
    case '+':
      rule.kind = MatchKind::include;
      line.remove_prefix(1);
      break;
    case '~':
      rule.kind = MatchKind::skip;
      line.remove_prefix(1);
      break;
    case '-':
      rule.kind = MatchKind::exclude;
      line.remove_prefix(1);
      break;
    default: rule.kind = MatchKind::exclude; break;
    }
    while (line.size() > 1 && line.back() == '/') line.remove_suffix(1);
    if (line.empty() || line.front() != '/')
      return described_error(EINVAL, rule.origin + ": pattern must be an absolute guest path: '" +
                                         std::string(line) + "'");
    rule.pattern = std::string(line);
    rule.glob = Glob(rule.pattern);
    list.m_rules.push_back(std::move(rule));
    if (eol == text.size()) break;
  }
  return list;
}

Result<ExcludeList> ExcludeList::load(const std::string& path) {
  auto text = read_host_file(path, k_max_list_bytes);
  if (!text.ok()) return described_error(text.code(), "exclude list: " + text.error().message());
  VU_TRY_ASSIGN(list, parse(*text, path));
  for (const auto& rule : list.m_rules) {
    const std::string& p = rule.pattern;
    for (size_t i = p.find('*'); i != std::string::npos; i = p.find('*', i + 1)) {
      if (i + 1 < p.size() && p[i + 1] == '*') { // '**' crosses already
        ++i;
        continue;
      }
      if (i + 1 == p.size()) break; // a trailing '*': an excluded directory is not entered anyway
      std::string deeper = p.substr(0, i) + "*" + p.substr(i);
      list.m_crossing_warning = rule.origin + ": '" + p +
                                "': '*' stays within one directory (util-vserver's crossed '/'); "
                                "write '" +
                                deeper + "' if deeper paths were meant";
      return list;
    }
  }
  return list;
}

void ExcludeList::append(const ExcludeList& other) {
  m_rules.insert(m_rules.end(), other.m_rules.begin(), other.m_rules.end());
}

const ExcludeRule* ExcludeList::matching_rule(std::string_view path) const {
  for (const auto& rule : m_rules)
    if (rule.glob.match(path)) return &rule;
  return nullptr;
}

MatchKind ExcludeList::match(std::string_view path) const {
  const ExcludeRule* r = matching_rule(path);
  return r ? r->kind : MatchKind::include;
}

const ExcludeList& secret_files() {
  static const ExcludeList list = [] {
    auto parsed = ExcludeList::parse(secret_files_text(), "built-in list of secret files");
    ExcludeList out = parsed.ok() ? std::move(*parsed) : ExcludeList{};
    for (auto& r : out.m_rules) r.kind = MatchKind::skip;
    return out;
  }();
  return list;
}

} // namespace vu
