// vu-floor: what the hardware allows, for bench/perf.sh.
//
//   vu-floor statx THREADS DIR...   statx of every regular file
//   vu-floor read THREADS DIR...    open + read + XXH3 of every regular file
//   vu-floor link THREADS DIR...    CHANGES THE TREES: groups files by
//       (dev, size, mode, owner, XXH3-128) untimed, then, timed, replaces
//       every duplicate name with a hard link to its group's first file:
//       link(2) to a temporary name and rename(2) over the name (the old
//       inode is freed inside rename, as the peers do). Prints
//       "link: S s, N names, CPU C s" (C: user + system time of the
//       process). No byte comparison, no flags: the least the kernel has
//       to do to link a tree.
//   vu-floor open ROUNDS DIR...    open(2) by path and close(2) of every
//       regular file, ROUNDS times over, one thread (bench/bpf-lsm.sh: what
//       an LSM program costs the commonest file operation). Prints
//       "open: S s, N opens".
//   vu-floor link-reap THREADS DIR...   the same, but each old inode is
//       opened before the rename and its last descriptor handed to
//       vunify's reaper (unify/reaper.h: 4 closer threads), so the freeing
//       runs beside the linking.
//   vu-floor link-uring THREADS DIR...   the same as link, but each
//       worker hands its pairs to the kernel through its own io_uring,
//       64 names at a time: per name a linkat to a temporary name linked
//       (IOSQE_IO_LINK) to the renameat over the name, one io_uring_enter
//       per batch. The kernel runs both in its io-wq workers. What batching
//       the directory operations gives, against the system calls of link.
//   vu-floor reflink THREADS DIR...   CHANGES THE TREES (their extents,
//       never their bytes): a plain pipeline that shares extents, timed as
//       a whole (run it on a cold page cache): a walk with statx (THREADS
//       workers); every file of 16 bytes or more whose (device, size)
//       another file has is read and hashed in path order (XXH3-128,
//       THREADS workers); each group of equal (device, size, hash) then
//       shares its first file's extents (FIDEDUPERANGE, batches of 120
//       files, 16 MiB per call, one worker per core, as vunify --reflink).
//       No FIEMAP, no read order, no re-check. Prints
//       "reflink: S s (walk W, read R, dedupe D), N files shared, B bytes read".
//   vu-floor reflink-kernel THREADS DIR...   the same without the read:
//       each (device, size) group shares its first file's extents at once,
//       on THREADS workers, after POSIX_FADV_WILLNEED on every file, so the
//       kernel's compare is the only read (a file whose bytes differ keeps
//       its extents). What leaving the comparison to the kernel costs.
//   vu-floor store THREADS DIR...   CHANGES THE TREES (flags, and a store
//       DIR/../.vu-floor-store): the least a first vhashify run must do
//       per file besides its walk and its link pass, if the store's entry
//       were made in the same open as the hash. Every regular file is
//       listed untimed; then, timed, on THREADS workers: openat2 below its
//       guest's root (RESOLVE_BENEATH), statx (identity), a read lease
//       held across flistxattr and the read with two XXH3-128 hashes (the
//       name's seed and a secret one); the first file of each (hash, mode,
//       owner) is linked into the store, frozen (FS_IOC_GETFLAGS and
//       SETFLAGS), checked for writers (F_GETLEASE, F_SETLEASE again) and
//       statx'd; lease released, closed. Prints
//       "store: S s, N files, E entries, CPU C s".
//   vu-floor store-hash THREADS DIR...   the same without the entries:
//       what the reads cost with their checks.
//
// THREADS workers take directories from one shared queue (getdents64 via
// readdir, entry types to skip non-files) and work on the files they find.
// No excludes, no grouping, no comparison: a lower bound for vunify's walk
// (statx) and for reading every byte once (read). Prints files and bytes.
#include "kernel/extents.h"
#include "unify/reaper.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> // the same XXH3 code path as vunify (unify/hash.cpp)
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <vector>

namespace {

struct Queue {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::string> dirs;
  int busy = 0;
  bool take(std::string& out) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return !dirs.empty() || busy == 0; });
    if (dirs.empty()) return false;
    out = std::move(dirs.front());
    dirs.pop_front();
    ++busy;
    return true;
  }
  void put(std::string d) {
    std::lock_guard lock(m);
    dirs.push_back(std::move(d));
    cv.notify_one();
  }
  void done() {
    std::lock_guard lock(m);
    if (--busy == 0 && dirs.empty()) cv.notify_all();
  }
};

std::atomic<uint64_t> g_files{0}, g_bytes{0};

// XXH3-128 of everything read from fd through buf; *bytes: how much.
XXH128_hash_t hash_file(int fd, char* buf, size_t buf_len, uint64_t* bytes) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  uint64_t total = 0;
  for (ssize_t n; (n = ::read(fd, buf, buf_len)) > 0; total += static_cast<uint64_t>(n))
    XXH3_128bits_update(st, buf, static_cast<size_t>(n));
  XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  *bytes = total;
  return h;
}

void work_file(int dirfd, const char* name, bool read_all, char* buf, size_t buf_len) {
  if (!read_all) {
    struct statx sx;
    if (::statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
        S_ISREG(sx.stx_mode)) {
      g_files.fetch_add(1, std::memory_order_relaxed);
      g_bytes.fetch_add(sx.stx_size, std::memory_order_relaxed);
    }
    return;
  }
  int fd = ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME | O_NONBLOCK);
  if (fd < 0) return;
  uint64_t total = 0;
  volatile uint64_t sink = hash_file(fd, buf, buf_len, &total).low64;
  (void)sink;
  ::close(fd);
  g_files.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(total, std::memory_order_relaxed);
}

// Takes directories from q until it is drained: subdirectories go back on
// it, and on_file(dirfd, dir, name) is called for every regular entry.
template <class F> void walk_queue(Queue& q, F on_file) {
  std::string dir;
  while (q.take(dir)) {
    if (DIR* d = ::opendir(dir.c_str())) {
      int dfd = ::dirfd(d);
      while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
          continue;
        if (e->d_type == DT_DIR)
          q.put(dir + "/" + e->d_name);
        else if (e->d_type == DT_REG)
          on_file(dfd, dir, e->d_name);
      }
      ::closedir(d);
    }
    q.done();
  }
}

void worker(Queue& q, bool read_all) {
  const size_t buf_len = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[buf_len]);
  walk_queue(q, [&](int dfd, const std::string&, const char* name) {
    work_file(dfd, name, read_all, buf.get(), buf_len);
  });
}

} // namespace

struct Found {
  std::string path;
  uint64_t dev, ino, size, mode, uid, gid, h_lo, h_hi;
};

// The untimed part of "link": every regular file, hashed.
std::vector<Found> collect(const std::vector<std::string>& roots) {
  std::vector<Found> out;
  std::vector<std::string> dirs(roots.rbegin(), roots.rend());
  std::unique_ptr<char[]> buf(new char[1 << 16]);
  while (!dirs.empty()) {
    std::string dir = std::move(dirs.back());
    dirs.pop_back();
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
        continue;
      std::string p = dir + "/" + e->d_name;
      if (e->d_type == DT_DIR) {
        dirs.push_back(p);
        continue;
      }
      if (e->d_type != DT_REG) continue;
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
      int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;
      uint64_t read = 0;
      XXH128_hash_t h = hash_file(fd, buf.get(), 1 << 16, &read);
      ::close(fd);
      out.push_back({p, st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), st.st_mode,
                     st.st_uid, st.st_gid, h.low64, h.high64});
    }
    ::closedir(d);
  }
  return out;
}

// A minimal io_uring (io_uring_setup, the two rings mapped, io_uring_enter):
// queue() fills submission entries, submit_and_wait() hands them over and
// waits for as many completions, reap() reads them in completion order.
class Ring {
public:
  explicit Ring(unsigned entries) {
    io_uring_params p{};
    fd_ = static_cast<int>(::syscall(__NR_io_uring_setup, entries, &p));
    if (fd_ < 0) return;
    sq_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) sq_len_ = cq_len_ = std::max(sq_len_, cq_len_);
    sq_ = map(sq_len_, IORING_OFF_SQ_RING);
    cq_ = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq_ : map(cq_len_, IORING_OFF_CQ_RING);
    sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
    sqes_ = static_cast<io_uring_sqe*>(map(sqes_len_, IORING_OFF_SQES));
    if (!sq_ || !cq_ || !sqes_) return;
    sq_tail_ = at<unsigned>(sq_, p.sq_off.tail);
    sq_mask_ = *at<unsigned>(sq_, p.sq_off.ring_mask);
    sq_array_ = at<unsigned>(sq_, p.sq_off.array);
    cq_head_ = at<unsigned>(cq_, p.cq_off.head);
    cq_tail_ = at<unsigned>(cq_, p.cq_off.tail);
    cq_mask_ = *at<unsigned>(cq_, p.cq_off.ring_mask);
    cqes_ = at<io_uring_cqe>(cq_, p.cq_off.cqes);
    ok_ = true;
  }
  ~Ring() {
    if (sqes_) ::munmap(sqes_, sqes_len_);
    if (cq_ && cq_ != sq_) ::munmap(cq_, cq_len_);
    if (sq_) ::munmap(sq_, sq_len_);
    if (fd_ >= 0) ::close(fd_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  bool ok() const { return ok_; }
  // A cleared entry for the caller to fill; the ring has room for
  // `entries` between two submit_and_wait calls.
  io_uring_sqe& queue() {
    unsigned tail = *sq_tail_ + pending_++;
    io_uring_sqe& e = sqes_[tail & sq_mask_];
    std::memset(&e, 0, sizeof e);
    sq_array_[tail & sq_mask_] = tail & sq_mask_;
    return e;
  }
  bool submit_and_wait() {
    __atomic_store_n(sq_tail_, *sq_tail_ + pending_, __ATOMIC_RELEASE);
    unsigned n = pending_;
    pending_ = 0;
    while (n > 0) {
      long r = ::syscall(__NR_io_uring_enter, fd_, n, n, IORING_ENTER_GETEVENTS, nullptr, 0);
      if (r < 0 && errno != EINTR) return false;
      if (r > 0) break;
    }
    return true;
  }
  // fn(user_data, res) for every completion there is.
  template <class Fn> void reap(Fn fn) {
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) fn(cqes_[head & cq_mask_].user_data, cqes_[head & cq_mask_].res);
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

private:
  void* map(size_t len, off_t what) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, what);
    return p == MAP_FAILED ? nullptr : p;
  }
  template <class T> static T* at(void* base, unsigned off) {
    return reinterpret_cast<T*>(static_cast<char*>(base) + off);
  }
  int fd_ = -1;
  bool ok_ = false;
  size_t sq_len_ = 0, cq_len_ = 0, sqes_len_ = 0;
  void *sq_ = nullptr, *cq_ = nullptr;
  io_uring_sqe* sqes_ = nullptr;
  unsigned *sq_tail_ = nullptr, *sq_array_ = nullptr, *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0, pending_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

double cpu_seconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

enum class LinkMode { plain, reap, uring };

// One worker's share of link-uring: pairs[k] for k = t, t + threads, ...
// through its own ring, kBatch names per io_uring_enter. Returns the names
// replaced.
size_t link_by_ring(const std::vector<Found>& files,
                    const std::vector<std::pair<size_t, size_t>>& pairs, int t, int threads) {
  constexpr size_t kBatch = 64;
  Ring ring(2 * kBatch);
  if (!ring.ok()) return 0;
  std::vector<std::string> tmp(kBatch);
  std::vector<size_t> at(kBatch);
  size_t done = 0;
  for (size_t k = static_cast<size_t>(t); k < pairs.size();) {
    size_t n = 0;
    for (; n < kBatch && k < pairs.size(); ++n, k += static_cast<size_t>(threads)) {
      const std::string& target = files[pairs[k].first].path;
      tmp[n] = target.substr(0, target.rfind('/') + 1) + ".vu-floor-tmp." + std::to_string(t) +
               "." + std::to_string(n);
      at[n] = k;
      io_uring_sqe& l = ring.queue();
      l.opcode = IORING_OP_LINKAT;
      l.fd = AT_FDCWD;
      l.addr = reinterpret_cast<uintptr_t>(files[pairs[k].second].path.c_str());
      l.len = static_cast<uint32_t>(AT_FDCWD);
      l.addr2 = reinterpret_cast<uintptr_t>(tmp[n].c_str());
      l.flags = IOSQE_IO_LINK; // the rename runs only after the link succeeded
      l.user_data = 2 * n;
      io_uring_sqe& r = ring.queue();
      r.opcode = IORING_OP_RENAMEAT;
      r.fd = AT_FDCWD;
      r.addr = reinterpret_cast<uintptr_t>(tmp[n].c_str());
      r.len = static_cast<uint32_t>(AT_FDCWD);
      r.addr2 = reinterpret_cast<uintptr_t>(target.c_str());
      r.user_data = 2 * n + 1;
    }
    if (!ring.submit_and_wait()) return done;
    std::vector<int> linked(n, -1), renamed(n, -1);
    ring.reap([&](uint64_t ud, int res) { (ud % 2 ? renamed : linked)[ud / 2] = res; });
    for (size_t i = 0; i < n; ++i) {
      if (renamed[i] == 0)
        ++done;
      else if (linked[i] == 0)
        ::unlink(tmp[i].c_str());
    }
  }
  return done;
}

int link_floor(int threads, const std::vector<std::string>& roots, LinkMode mode) {
  const bool reap = mode == LinkMode::reap;
  std::vector<Found> files = collect(roots);
  auto key = [](const Found& f) {
    return std::tie(f.dev, f.size, f.mode, f.uid, f.gid, f.h_lo, f.h_hi);
  };
  std::sort(files.begin(), files.end(), [&](const Found& a, const Found& b) {
    return std::tuple_cat(key(a), std::tie(a.path)) < std::tuple_cat(key(b), std::tie(b.path));
  });
  std::vector<std::pair<size_t, size_t>> pairs; // (target, canonical)
  for (size_t i = 0; i < files.size();) {
    size_t j = i + 1;
    while (j < files.size() && key(files[j]) == key(files[i])) ++j;
    for (size_t k = i + 1; k < j; ++k)
      if (files[k].ino != files[i].ino) pairs.emplace_back(k, i);
    i = j;
  }
  std::atomic<size_t> next{0}, done{0};
  double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  {
    vu::Reaper closers; // 4 threads, as in a vunify run; starts on first use
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        if (mode == LinkMode::uring) {
          done.fetch_add(link_by_ring(files, pairs, t, threads));
          return;
        }
        for (size_t k; (k = next.fetch_add(1)) < pairs.size();) {
          const std::string& target = files[pairs[k].first].path;
          std::string tmp =
              target.substr(0, target.rfind('/') + 1) + ".vu-floor-tmp." + std::to_string(t);
          int old = reap ? ::open(target.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
          if (::link(files[pairs[k].second].path.c_str(), tmp.c_str()) == 0) {
            if (::rename(tmp.c_str(), target.c_str()) == 0)
              done.fetch_add(1);
            else
              ::unlink(tmp.c_str());
          }
          if (old >= 0) closers.give(vu::UniqueFd(old));
        }
      });
    for (auto& p : pool) p.join();
  } // the reaper drains its queue: every replaced inode is freed
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
  std::printf("link: %.2f s, %zu names, CPU %.2f s\n", d.count(), done.load(),
              cpu_seconds() - cpu0);
  return 0;
}

struct Sized {
  std::string path;
  uint64_t dev, ino, size, h_lo = 0, h_hi = 0;
};

// Every regular file of `min_size` bytes or more below `roots`, found by
// `threads` workers (readdir, then statx of the regular entries).
std::vector<Sized> walk_sizes(int threads, const std::vector<std::string>& roots,
                              uint64_t min_size) {
  Queue q;
  for (const auto& r : roots) q.dirs.push_back(r);
  std::mutex m;
  std::vector<Sized> all;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      std::vector<Sized> mine;
      walk_queue(q, [&](int dfd, const std::string& dir, const char* name) {
        struct statx sx;
        if (::statx(dfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0 ||
            !S_ISREG(sx.stx_mode) || sx.stx_size < min_size)
          return;
        mine.push_back({dir + "/" + name, ::makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino,
                        sx.stx_size});
      });
      std::lock_guard lock(m);
      for (auto& f : mine) all.push_back(std::move(f));
    });
  for (auto& t : pool) t.join();
  return all;
}

// Runs fn(i) for i in [0, n) on `threads` workers.
template <class Fn> void parallel_for(int threads, size_t n, Fn fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  for (auto& p : pool) p.join();
}

// files[first, last) share the extents of files[first] (with `advise`,
// every file is asked to be read ahead first). Returns the number of files
// whose every byte now does.
size_t share_group(const std::vector<Sized>& files, size_t first, size_t last, bool advise) {
  int src = ::open(files[first].path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (src < 0) return 0;
  if (advise) ::posix_fadvise(src, 0, 0, POSIX_FADV_WILLNEED);
  const uint64_t size = files[first].size;
  size_t shared = 0;
  for (size_t b = first + 1; b < last; b += vu::k_dedupe_dests) {
    std::vector<vu::DedupeDest> dests;
    for (size_t k = b; k < std::min(last, b + vu::k_dedupe_dests); ++k) {
      if (files[k].ino == files[first].ino) continue;
      int fd = ::open(files[k].path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;
      if (advise) ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
      dests.push_back({fd});
    }
    std::vector<bool> ok(dests.size(), true);
    for (uint64_t off = 0; off < size; off += 16ull << 20) {
      std::vector<vu::DedupeDest> now;
      std::vector<size_t> at;
      for (size_t d = 0; d < dests.size(); ++d)
        if (ok[d]) {
          now.push_back({dests[d].fd});
          at.push_back(d);
        }
      if (now.empty()) break;
      const uint64_t len = std::min<uint64_t>(16ull << 20, size - off);
      if (!vu::dedupe_range(src, off, len, now).ok()) { // no file shared (EOPNOTSUPP: ext4)
        std::fill(ok.begin(), ok.end(), false);
        break;
      }
      for (size_t i = 0; i < now.size(); ++i)
        if (now[i].status != 0 || now[i].bytes < len) ok[at[i]] = false;
    }
    for (size_t d = 0; d < dests.size(); ++d) {
      shared += ok[d] ? 1 : 0;
      ::close(dests[d].fd);
    }
  }
  ::close(src);
  return shared;
}

int reflink_floor(int threads, const std::vector<std::string>& roots, bool read_first) {
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  auto t0 = clock::now();
  std::vector<Sized> files = walk_sizes(threads, roots, 16);
  auto by_size = [](const Sized& a, const Sized& b) {
    return std::tie(a.dev, a.size, a.path) < std::tie(b.dev, b.size, b.path);
  };
  std::sort(files.begin(), files.end(), by_size);
  std::vector<Sized> cand; // the files whose (device, size) another file has
  for (size_t i = 0; i < files.size();) {
    size_t j = i + 1;
    while (j < files.size() && files[j].dev == files[i].dev && files[j].size == files[i].size) ++j;
    if (j - i > 1)
      for (size_t k = i; k < j; ++k) cand.push_back(std::move(files[k]));
    i = j;
  }
  auto t1 = clock::now();
  std::atomic<uint64_t> read_bytes{0};
  if (read_first) {
    parallel_for(threads, cand.size(), [&](size_t i) {
      int fd = ::open(cand[i].path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
      if (fd < 0) return;
      static thread_local std::unique_ptr<char[]> buf(new char[1 << 16]);
      uint64_t total = 0;
      XXH128_hash_t h = hash_file(fd, buf.get(), 1 << 16, &total);
      ::close(fd);
      cand[i].h_lo = h.low64;
      cand[i].h_hi = h.high64;
      read_bytes.fetch_add(total, std::memory_order_relaxed);
    });
    std::sort(cand.begin(), cand.end(), [](const Sized& a, const Sized& b) {
      return std::tie(a.dev, a.size, a.h_lo, a.h_hi, a.path) <
             std::tie(b.dev, b.size, b.h_lo, b.h_hi, b.path);
    });
  }
  auto t2 = clock::now();
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t i = 0; i < cand.size();) {
    size_t j = i + 1;
    while (j < cand.size() && cand[j].dev == cand[i].dev && cand[j].size == cand[i].size &&
           cand[j].h_lo == cand[i].h_lo && cand[j].h_hi == cand[i].h_hi)
      ++j;
    if (j - i > 1) groups.emplace_back(i, j);
    i = j;
  }
  std::atomic<size_t> shared{0};
  // After the read the kernel compares cached pages: one worker per core.
  // Without it, the compare waits for the disk: as many as the reads had.
  const int sharers =
      read_first ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : threads;
  parallel_for(sharers, groups.size(), [&](size_t g) {
    shared.fetch_add(share_group(cand, groups[g].first, groups[g].second, !read_first),
                     std::memory_order_relaxed);
  });
  auto t3 = clock::now();
  std::printf("reflink: %.2f s (walk %.2f, read %.2f, dedupe %.2f), %zu files shared, "
              "%llu bytes read\n",
              secs(t0, t3), secs(t0, t1), secs(t1, t2), secs(t2, t3), shared.load(),
              static_cast<unsigned long long>(read_bytes.load()));
  return 0;
}

// "store": see the header.
int store_floor(int threads, const std::vector<std::string>& roots, bool entries_too) {
  struct File {
    int root;
    std::string rel;
  };
  std::vector<int> root_fds;
  std::vector<File> files;
  for (const auto& r : roots) {
    int rfd = ::open(r.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) continue;
    root_fds.push_back(rfd);
    for (const auto& e : std::filesystem::recursive_directory_iterator(r))
      if (e.is_regular_file() && !e.is_symlink() && e.file_size() > 0)
        files.push_back({rfd, std::filesystem::relative(e.path(), r).string()});
  }
  const std::string store =
      std::filesystem::path(roots.at(0)).parent_path().string() + "/.vu-floor-store";
  ::mkdir(store.c_str(), 0700);
  int store_fd = ::open(store.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store_fd < 0) return 1;
  std::vector<int> subdirs(256);
  for (int i = 0; i < 256; ++i) {
    char hh[3];
    std::snprintf(hh, sizeof hh, "%02x", i);
    ::mkdirat(store_fd, hh, 0700);
    subdirs[i] = ::openat(store_fd, hh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  std::mutex m;
  std::unordered_set<std::string> claimed;
  std::atomic<size_t> entries{0};
  ::signal(SIGIO, SIG_IGN);
  double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  parallel_for(threads, files.size(), [&](size_t i) {
    static thread_local std::unique_ptr<char[]> buf(new char[1 << 16]);
    static thread_local XXH3_state_t* a = XXH3_createState();
    static thread_local XXH3_state_t* b = XXH3_createState();
    open_how how{};
    how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(
        ::syscall(SYS_openat2, files[i].root, files[i].rel.c_str(), &how, sizeof how));
    if (fd < 0) return;
    struct statx sx;
    const bool leased = ::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) == 0 &&
                        ::fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
    char names[4096];
    (void)::flistxattr(fd, names, sizeof names);
    XXH3_128bits_reset_withSeed(a, 0);
    XXH3_128bits_reset_withSeed(b, 0x5eed);
    for (ssize_t n; (n = ::read(fd, buf.get(), 1 << 16)) > 0;) {
      XXH3_128bits_update(a, buf.get(), static_cast<size_t>(n));
      XXH3_128bits_update(b, buf.get(), static_cast<size_t>(n));
    }
    XXH128_hash_t h = XXH3_128bits_digest(a);
    volatile uint64_t sink = XXH3_128bits_digest(b).low64;
    (void)sink;
    char name[80];
    std::snprintf(
        name, sizeof name, "%016llx%016llx-%o-%u-%u", static_cast<unsigned long long>(h.high64),
        static_cast<unsigned long long>(h.low64), sx.stx_mode & 07777, sx.stx_uid, sx.stx_gid);
    bool mine;
    {
      std::lock_guard lock(m);
      mine = claimed.insert(name).second;
    }
    if (mine && leased && entries_too) {
      int flags = 0;
      if (::linkat(fd, "", subdirs[h.high64 >> 56], name, AT_EMPTY_PATH) == 0 &&
          ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags |= FS_IMMUTABLE_FL;
        (void)::ioctl(fd, FS_IOC_SETFLAGS, &flags);
        (void)::fcntl(fd, F_GETLEASE);
        (void)::fcntl(fd, F_SETLEASE, F_RDLCK);
        (void)::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx);
        entries.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (leased) ::fcntl(fd, F_SETLEASE, F_UNLCK);
    ::close(fd);
  });
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
  std::printf("store: %.2f s, %zu files, %zu entries, CPU %.2f s\n", d.count(), files.size(),
              entries.load(), cpu_seconds() - cpu0);
  for (int s : subdirs)
    if (s >= 0) ::close(s);
  ::close(store_fd);
  for (int r : root_fds) ::close(r);
  return 0;
}

// Every regular file below `dirs` (symlinks not followed), then `rounds`
// passes of open + close over them, timed.
static int open_floor(int rounds, const std::vector<std::string>& dirs) {
  std::vector<std::string> files;
  for (const auto& d : dirs)
    for (const auto& e : std::filesystem::recursive_directory_iterator(
             d, std::filesystem::directory_options::skip_permission_denied))
      if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path().string());
  auto start = std::chrono::steady_clock::now();
  uint64_t opens = 0;
  for (int r = 0; r < rounds; ++r)
    for (const auto& f : files) {
      int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ::close(fd);
        ++opens;
      }
    }
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("open: %.3f s, %llu opens\n", took.count(), static_cast<unsigned long long>(opens));
  return 0;
}

int main(int argc, char** argv) {
  const std::string mode = argc >= 4 ? argv[1] : "";
  const int n = argc >= 4 ? std::atoi(argv[2]) : 0; // THREADS, or ROUNDS for open
  const std::vector<std::string> dirs(argv + std::min(argc, 3), argv + argc);
  if (mode == "open") return n < 1 ? 2 : open_floor(n, dirs);
  if (mode != "statx" && mode != "read" && mode != "link" && mode != "link-reap" &&
      mode != "link-uring" && mode != "reflink" && mode != "reflink-kernel" && mode != "store" &&
      mode != "store-hash") {
    std::fprintf(stderr,
                 "usage: vu-floor "
                 "statx|read|link|link-reap|link-uring|reflink|reflink-kernel|store|store-hash "
                 "THREADS DIR...\n"
                 "       vu-floor open ROUNDS DIR...\n");
    return 2;
  }
  if (n < 1 || n > 256) return 2;
  if (mode == "reflink" || mode == "reflink-kernel")
    return reflink_floor(n, dirs, mode == "reflink");
  if (mode == "store" || mode == "store-hash") return store_floor(n, dirs, mode == "store");
  if (mode == "link") return link_floor(n, dirs, LinkMode::plain);
  if (mode == "link-reap") return link_floor(n, dirs, LinkMode::reap);
  if (mode == "link-uring") return link_floor(n, dirs, LinkMode::uring);
  const bool read_all = mode == "read";
  Queue q;
  for (const auto& d : dirs) q.dirs.push_back(d);
  std::vector<std::thread> pool;
  for (int i = 0; i < n; ++i) pool.emplace_back([&] { worker(q, read_all); });
  for (auto& t : pool) t.join();
  std::printf("%llu files, %llu bytes\n", static_cast<unsigned long long>(g_files.load()),
              static_cast<unsigned long long>(g_bytes.load()));
  return 0;
}
