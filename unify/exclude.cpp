// Exclude-list parsing and glob matching.
//
// The matcher is a small backtracking glob: '*' backtracks within one path
// component, '**' backtracks across components. Rule lists are short (tens
// of rules) and every path of every guest is checked against them, so the
// matcher avoids allocation; a literal prefix check first would be the next
// step if profiles ever show it.
#include "unify/exclude.h"

#include <fstream>
#include <sstream>

namespace vu {

namespace {

// Matches a bracket expression at pattern[pi] against c. Sets `end` to the
// index after ']'. Returns false with end = npos when the class is malformed
// (then '[' is taken literally).
bool match_class(std::string_view pat, size_t pi, char c, size_t& end, bool& matched) {
  size_t i = pi + 1;
  bool negate = false;
  if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  while (i < pat.size() && (first || pat[i] != ']')) {
    first = false;
    char lo = pat[i];
    if (lo == '\\' && i + 1 < pat.size()) lo = pat[++i];
    char hi = lo;
    if (i + 2 < pat.size() && pat[i + 1] == '-' && pat[i + 2] != ']') {
      hi = pat[i + 2];
      if (hi == '\\' && i + 3 < pat.size()) {
        hi = pat[i + 3];
        ++i;
      }
      i += 2;
    }
    if (lo <= c && c <= hi) found = true;
    ++i;
  }
  if (i >= pat.size()) {
    end = std::string_view::npos;
    return false;
  }
  end = i + 1;
  matched = (found != negate) && c != '/';
  return true;
}

bool glob_at(std::string_view pat, size_t pi, std::string_view s, size_t si) {
  while (pi < pat.size()) {
    char pc = pat[pi];
    if (pc == '*') {
      bool cross = pi + 1 < pat.size() && pat[pi + 1] == '*';
      size_t next = pi + (cross ? 2 : 1);
      while (next < pat.size() && pat[next] == '*') ++next; // "***" == "**"
      // "/**/" also matches "/" (zero components).
      if (cross && pi > 0 && pat[pi - 1] == '/' && next < pat.size() && pat[next] == '/' &&
          glob_at(pat, next + 1, s, si))
        return true;
      for (size_t k = si;; ++k) {
        if (glob_at(pat, next, s, k)) return true;
        if (k >= s.size()) return false;
        if (!cross && s[k] == '/') return false;
      }
    }
    if (si >= s.size()) return false;
    if (pc == '?') {
      if (s[si] == '/') return false;
      ++pi;
      ++si;
      continue;
    }
    if (pc == '[') {
      size_t end = 0;
      bool matched = false;
      if (match_class(pat, pi, s[si], end, matched)) {
        if (!matched) return false;
        pi = end;
        ++si;
        continue;
      }
    }
    if (pc == '\\' && pi + 1 < pat.size()) pc = pat[++pi];
    if (pc != s[si]) return false;
    ++pi;
    ++si;
  }
  return si == s.size();
}

} // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  return glob_at(pattern, 0, path, 0);
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
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    ExcludeRule rule;
    rule.origin = origin + ":" + std::to_string(line_no);
    switch (line.front()) {
    case '+': rule.kind = MatchKind::include; line.remove_prefix(1); break;
    case '~': rule.kind = MatchKind::skip; line.remove_prefix(1); break;
    case '-': rule.kind = MatchKind::exclude; line.remove_prefix(1); break;
    default: rule.kind = MatchKind::exclude; break;
    }
    while (line.size() > 1 && line.back() == '/') line.remove_suffix(1);
    if (line.empty() || line.front() != '/')
      return make_error(EINVAL, rule.origin + ": pattern must be an absolute guest path: '" +
                                    std::string(line) + "'");
    rule.pattern = std::string(line);
    list.m_rules.push_back(std::move(rule));
    if (eol == text.size()) break;
  }
  return list;
}

Result<ExcludeList> ExcludeList::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("open exclude list " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return errno_error("read exclude list " + path);
  return parse(ss.str(), path);
}

void ExcludeList::append(const ExcludeList& other) {
  m_rules.insert(m_rules.end(), other.m_rules.begin(), other.m_rules.end());
}

const ExcludeRule* ExcludeList::matching_rule(std::string_view path) const {
  for (const auto& rule : m_rules)
    if (glob_match(rule.pattern, path)) return &rule;
  return nullptr;
}

MatchKind ExcludeList::match(std::string_view path) const {
  const ExcludeRule* r = matching_rule(path);
  return r ? r->kind : MatchKind::include;
}

} // namespace vu
