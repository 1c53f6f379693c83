// MappedVector: a vector of trivially copyable records that lives in one
// range of address space reserved up front, so it grows in place.
//
// A std::vector doubles: while it grows it holds up to twice its records
// (the old block and the new one) and afterwards up to twice the room it
// needs. A run's per-name records are most of its memory, so at the moment
// a walk's per-thread lists were merged, the run held them three times
// over. Here growth makes more of the reserved range usable (mprotect),
// pages are only charged once written, and absorb() gives each page of the
// other vector back as soon as it has been copied: merging N lists holds
// one copy plus a few pages.
//
// Records never move while they fit the reserved range: 64 GiB of address
// space, or 1/64 of RLIMIT_AS when the process has one (a vector per
// thread must leave room for the rest). Past it the records move to a
// range twice as large, as a std::vector's would: call reserve() before
// taking pointers that must stay valid while the vector grows.
#pragma once

#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace vu {

template <typename T> class MappedVector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "records are copied as bytes");

public:
  MappedVector() = default;
  MappedVector(MappedVector&& o) noexcept { take(o); }
  MappedVector& operator=(MappedVector&& o) noexcept {
    if (this != &o) {
      unmap();
      take(o);
    }
    return *this;
  }
  MappedVector(const MappedVector&) = delete;
  MappedVector& operator=(const MappedVector&) = delete;
  ~MappedVector() { unmap(); }

  size_t size() const { return m_size; }
  bool empty() const { return m_size == 0; }
  T* data() { return m_data; }
  const T* data() const { return m_data; }
  T* begin() { return m_data; }
  T* end() { return m_data + m_size; }
  const T* begin() const { return m_data; }
  const T* end() const { return m_data + m_size; }
  T& operator[](size_t i) { return m_data[i]; }
  const T& operator[](size_t i) const { return m_data[i]; }
  T& back() { return m_data[m_size - 1]; }
  const T& back() const { return m_data[m_size - 1]; }

  // Room for n records without moving any later (address space only;
  // may move them now).
  void reserve(size_t n) {
    if (n * sizeof(T) > m_reserved) relocate(n);
  }

  void push_back(const T& v) {
    if (m_size == m_usable) grow(m_size + 1);
    std::memcpy(static_cast<void*>(m_data + m_size), &v, sizeof(T));
    ++m_size;
  }

  // Drops every record and gives the pages back (the range stays reserved).
  void clear() {
    if (m_usable) {
      ::madvise(m_data, m_usable * sizeof(T), MADV_DONTNEED);
      ::mprotect(m_data, m_usable * sizeof(T), PROT_NONE);
    }
    m_size = m_usable = 0;
  }

  // Appends other's records and leaves it empty, giving its pages back as
  // they are copied: the two together never hold much more than one copy.
  void absorb(MappedVector&& other) {
    if (other.m_size == 0) return;
    if (m_size == 0) { // nothing to keep: take other's range as it is
      unmap();
      take(other);
      return;
    }
    const size_t step = std::max<size_t>(1, k_absorb_bytes / sizeof(T));
    grow(m_size + std::min(step, other.m_size));
    char* const src = reinterpret_cast<char*>(other.m_data);
    size_t released = 0; // bytes of other already given back
    for (size_t at = 0; at < other.m_size; at += step) {
      const size_t n = std::min(step, other.m_size - at);
      if (m_usable < m_size + n) grow(m_size + n);
      std::memcpy(static_cast<void*>(m_data + m_size), other.m_data + at, n * sizeof(T));
      m_size += n;
      const size_t done = ((at + n) * sizeof(T)) / k_page * k_page; // whole pages copied
      if (done > released) {
        ::madvise(src + released, done - released, MADV_DONTNEED);
        released = done;
      }
    }
    other.unmap();
  }

private:
  static constexpr size_t k_page = 4096;
  static constexpr size_t k_absorb_bytes = 256 * 1024;
  // Address space, not memory: only pages written are ever charged.
  static constexpr size_t k_max_reserve = size_t(64) << 30;
  static constexpr size_t k_min_reserve = size_t(1) << 20;

  static size_t page_round(size_t bytes) { return (bytes + k_page - 1) / k_page * k_page; }

  // The first range: k_max_reserve, or a 64th of the address-space limit.
  static size_t first_reserve() {
    struct rlimit r {};
    if (::getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return k_max_reserve;
    return page_round(std::clamp<size_t>(r.rlim_cur / 64, k_min_reserve, k_max_reserve));
  }

  // Makes room for at least `need` records, in steps of an eighth of what
  // is usable (at least 64 KiB); moves them only when the range is full.
  void grow(size_t need) {
    if (need <= m_usable) return;
    if (need * sizeof(T) > m_reserved) relocate(need);
    const size_t cur = m_usable * sizeof(T);
    size_t want = page_round(std::max({need * sizeof(T), cur + cur / 8, cur + (size_t(64) << 10)}));
    want = std::min(want, m_reserved);
    if (::mprotect(m_data, want, PROT_READ | PROT_WRITE) != 0) throw std::bad_alloc();
    m_usable = want / sizeof(T);
  }

  // Moves the records to a new range of at least `need` records: the first
  // range's size, or twice the old one.
  void relocate(size_t need) {
    const size_t bytes = page_round(
        std::max({need * sizeof(T), m_reserved ? 2 * m_reserved : first_reserve(), k_page}));
    void* p = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    T* data = static_cast<T*>(p);
    const size_t usable = m_usable;
    const size_t size = m_size;
    if (usable) {
      if (::mprotect(data, usable * sizeof(T), PROT_READ | PROT_WRITE) != 0) {
        ::munmap(p, bytes);
        throw std::bad_alloc();
      }
      std::memcpy(static_cast<void*>(data), m_data, size * sizeof(T));
    }
    unmap();
    m_data = data;
    m_size = size;
    m_usable = usable;
    m_reserved = bytes;
  }

  void take(MappedVector& o) {
    m_data = std::exchange(o.m_data, nullptr);
    m_size = std::exchange(o.m_size, 0);
    m_usable = std::exchange(o.m_usable, 0);
    m_reserved = std::exchange(o.m_reserved, 0);
  }

  void unmap() {
    if (m_data) ::munmap(m_data, m_reserved);
    m_data = nullptr;
    m_size = m_usable = m_reserved = 0;
  }

  T* m_data = nullptr;
  size_t m_size = 0;
  size_t m_usable = 0;   // records that fit the pages made writable
  size_t m_reserved = 0; // bytes of address space reserved
};

} // namespace vu
