// Exclude lists in util-vserver syntax.
//
// One rule per line; '#' starts a comment line; trailing blanks are ignored.
//   +PATTERN   include (unify) what matches
//   ~PATTERN   skip: never read, never unify (e.g. /etc/shadow)
//   -PATTERN   exclude (same effect as ~ for unification)
//   PATTERN    exclude
// Patterns are absolute guest paths ("/etc/*"). The first rule that matches
// decides; a path no rule matches is included. A directory that is excluded
// is not descended into.
//
// Glob syntax (deliberately different from util-vserver, which used
// fnmatch(3) without FNM_PATHNAME so that "/etc/*" also matched
// "/etc/a/b/c"): '*' and '?' never match '/', '**' matches any sequence
// including '/', '[...]' is a character class ('!' or '^' negates), '\'
// escapes the next character. Since excluded directories are pruned, "/etc/*"
// still keeps everything below /etc private unless a '+' rule re-includes a
// directory first.
#pragma once

#include "kernel/result.h"

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

enum class MatchKind { include, skip, exclude };

// A glob pattern compiled once: matching is linear in pattern x path
// (a dynamic program over the path's positions), whatever the pattern -
// a backtracking matcher took exponential time on many "**/" (a 400-term
// line: 20 s). Immutable after construction; thread-safe to match.
class Glob {
public:
  Glob() = default;
  explicit Glob(std::string_view pattern);
  bool match(std::string_view path) const;
  const std::string& pattern() const { return m_pattern; }

private:
  enum class Op : uint8_t {
    literal, // one byte
    any,     // '?': one byte but '/'
    set,     // '[...]': one byte of the set ('/' never)
    star,    // '*': any run without '/'
    stars,   // '**': any run
    dirs,    // "**/" after a '/': nothing, or any run ending in '/'
  };
  struct Token {
    Op op;
    char c = 0;       // literal
    uint32_t set = 0; // index into m_sets
  };
  std::string m_pattern;
  std::string m_prefix; // literal bytes every match starts with (fast reject)
  std::vector<Token> m_tokens;
  std::vector<std::bitset<256>> m_sets;
  bool m_plain = false; // no wildcard at all: match is string equality
};

struct ExcludeRule {
  MatchKind kind = MatchKind::exclude;
  std::string pattern; // absolute, no trailing '/'
  std::string origin;  // "file:line" for messages
  Glob glob;           // pattern, compiled
};

// An ordered rule list. Immutable after construction; thread-safe to query.
class ExcludeList {
public:
  // Parses rules from text. Malformed lines (relative patterns, empty
  // patterns) are rejected with an Error naming origin and line.
  static Result<ExcludeList> parse(std::string_view text, const std::string& origin);
  // Reads and parses a file given by a trusted host path: a regular file
  // (never a FIFO or device; see read_host_file) of at most k_max_list_bytes.
  static Result<ExcludeList> load(const std::string& path);
  static constexpr uint64_t k_max_list_bytes = 16ull << 20;

  // Appends another list's rules after this list's (lower priority).
  void append(const ExcludeList& other);

  // Decides for an absolute guest path ("/usr/bin/ls"). Returns include when
  // no rule matches.
  MatchKind match(std::string_view path) const;
  // The rule that decided, or nullptr when none matched.
  const ExcludeRule* matching_rule(std::string_view path) const;

  const std::vector<ExcludeRule>& rules() const { return m_rules; }
  bool empty() const { return m_rules.empty(); }

  // For a list written for util-vserver, whose '*' crossed '/': the first
  // rule with a '*' that does not end the pattern (e.g. /usr/*.conf, which
  // util-vserver also matched below /usr/lib), as a one-line warning naming
  // the file, line and the '**' translation; empty when there is none or
  // the list is not a file's. One per list: an old list says it once.
  const std::string& crossing_warning() const { return m_crossing_warning; }

private:
  friend const ExcludeList& secret_files();
  std::vector<ExcludeRule> m_rules;
  std::string m_crossing_warning;
};

// Glob match with the semantics described above (compiles the pattern;
// ExcludeList keeps its rules compiled). Exposed for tests and fuzzing.
bool glob_match(std::string_view pattern, std::string_view path);

// The built-in default list shipped with the project (data/vunify-exclude).
std::string_view default_exclude_text();
// Files that hold secrets (data/vunify-secrets): never opened by a run that
// reads content, whatever the other lists say.
std::string_view secret_files_text();
// That list, parsed once. Every rule is a skip rule. Thread-safe.
const ExcludeList& secret_files();

} // namespace vu
