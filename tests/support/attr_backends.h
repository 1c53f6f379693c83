// Attribute back ends for tests: a real back end's behaviour, with what a
// test needs to see or to happen around it.
#pragma once

#include "kernel/attr.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <memory>
#include <string>

namespace vu::test {

// Every call goes to a real back end (mainline unless given).
class DelegatingBackend : public AttrBackend {
public:
  explicit DelegatingBackend(std::unique_ptr<AttrBackend> real = make_mainline_attr_backend())
      : m_real(std::move(real)) {}
  const char* name() const override { return "delegating"; }
  Result<AttrState> get(int d, const std::string& n, const FileStat& st) override {
    return m_real->get(d, n, st);
  }
  Status set(int d, const std::string& n, const FileStat& st, uint32_t s, uint32_t c) override {
    return m_real->set(d, n, st, s, c);
  }
  Status protect(int fd, int dirfd, const std::string& name, Protection p) override {
    return m_real->protect(fd, dirfd, name, p);
  }
  Result<bool> is_protected(int fd) override { return m_real->is_protected(fd); }
  bool looks_protected(const FileStat& st) const override { return m_real->looks_protected(st); }
  bool names_while_protected() const override { return m_real->names_while_protected(); }

private:
  std::unique_ptr<AttrBackend> m_real;
};

// A guest's chmod (to 04755) landing on the first file the run freezes,
// just before the freeze: after every check the run made, under its lease.
class ChmodBeforeFreeze : public DelegatingBackend {
public:
  Status protect(int fd, int dirfd, const std::string& name, Protection p) override {
    if (p == Protection::on && !done) {
      done = true;
      EXPECT_EQ(::fchmod(fd, 04755), 0);
    }
    return DelegatingBackend::protect(fd, dirfd, name, p);
  }
  bool done = false;
};

} // namespace vu::test
