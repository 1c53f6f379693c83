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

#include <string>
#include <string_view>
#include <vector>

namespace vu {

enum class MatchKind { include, skip, exclude };

struct ExcludeRule {
  MatchKind kind = MatchKind::exclude;
  std::string pattern; // absolute, no trailing '/'
  std::string origin;  // "file:line" for messages
};

// An ordered rule list. Immutable after construction; thread-safe to query.
class ExcludeList {
public:
  // Parses rules from text. Malformed lines (relative patterns, empty
  // patterns) are rejected with an Error naming origin and line.
  static Result<ExcludeList> parse(std::string_view text, const std::string& origin);
  // Reads and parses a file given by a trusted host path.
  static Result<ExcludeList> load(const std::string& path);

  // Appends another list's rules after this list's (lower priority).
  void append(const ExcludeList& other);

  // Decides for an absolute guest path ("/usr/bin/ls"). Returns include when
  // no rule matches.
  MatchKind match(std::string_view path) const;
  // The rule that decided, or nullptr when none matched.
  const ExcludeRule* matching_rule(std::string_view path) const;

  const std::vector<ExcludeRule>& rules() const { return m_rules; }
  bool empty() const { return m_rules.empty(); }

private:
  std::vector<ExcludeRule> m_rules;
};

// Glob match with the semantics described above. Exposed for tests.
bool glob_match(std::string_view pattern, std::string_view path);

// The built-in default list shipped with the project (data/vunify-exclude).
std::string_view default_exclude_text();

} // namespace vu
