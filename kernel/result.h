// Result<T>: a value or an error (errno plus a short context string).
//
// kernel/ reports every failure through this type instead of exceptions, so
// callers inside TBB loops can count and skip failures without try/catch.
// GCC 12 has no std::expected; this is the small subset we need.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace vu {

// An error: errno plus what was being done ("openat2 usr/bin"), or plus a
// sentence that says it all ("x is not a regular file").
struct Error {
  int code = 0;
  std::string context;
  bool cite_errno = true; // message() ends with strerror(code)

  // "openat2 usr/bin: Too many levels of symbolic links"
  std::string message() const {
    if (code == 0 || !cite_errno) return context;
    return context + ": " + std::strerror(code);
  }
};

// A failed call: message() is "<context>: <strerror(code)>".
inline Error make_error(int code, std::string context) {
  return Error{code, std::move(context), true};
}

// A failure that `description` explains in full (no errno text appended);
// `code` still classifies it for callers.
inline Error described_error(int code, std::string description) {
  return Error{code, std::move(description), false};
}

// Error from the current errno.
inline Error errno_error(std::string context) {
  return Error{errno, std::move(context)};
}

template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return m_v.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(m_v); }
  const T& value() const& { return std::get<0>(m_v); }
  T&& value() && { return std::get<0>(std::move(m_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(m_v); }
  int code() const { return ok() ? 0 : error().code; }
  T value_or(T fallback) const { return ok() ? std::get<0>(m_v) : fallback; }

private:
  std::variant<T, Error> m_v;
};

// Result<void>: success or an error.
template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : m_ok(false), m_error(std::move(error)) {}

  bool ok() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  const Error& error() const { return m_error; }
  int code() const { return m_ok ? 0 : m_error.code; }

private:
  bool m_ok = true;
  Error m_error;
};

using Status = Result<void>;

} // namespace vu

// TRY(expr): evaluate a Result; on error return the error from the caller.
#define VU_TRY(expr)                                                                               \
  do {                                                                                             \
    auto&& vu_try_result_ = (expr);                                                                \
    if (!vu_try_result_.ok()) return vu_try_result_.error();                                       \
  } while (false)

// TRY_ASSIGN(var, expr): declare var from a Result's value or return its error.
#define VU_TRY_ASSIGN(var, expr)                                                                   \
  auto var##_result_ = (expr);                                                                     \
  if (!var##_result_.ok()) return var##_result_.error();                                           \
  auto var = std::move(var##_result_).value()
