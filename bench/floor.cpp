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
//
// THREADS workers take directories from one shared queue (getdents64 via
// readdir, entry types to skip non-files) and work on the files they find.
// No excludes, no grouping, no comparison: a lower bound for vunify's walk
// (statx) and for reading every byte once (read). Prints files and bytes.
#include "unify/reaper.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> // the same XXH3 code path as vunify (unify/hash.cpp)
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
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
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, buf_len);
    if (n <= 0) break;
    XXH3_128bits_update(st, buf, static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  volatile uint64_t sink = XXH3_128bits_digest(st).low64;
  (void)sink;
  XXH3_freeState(st);
  ::close(fd);
  g_files.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(total, std::memory_order_relaxed);
}

void worker(Queue& q, bool read_all) {
  const size_t buf_len = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[buf_len]);
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
          work_file(dfd, e->d_name, read_all, buf.get(), buf_len);
      }
      ::closedir(d);
    }
    q.done();
  }
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
      XXH3_state_t* hs = XXH3_createState();
      XXH3_128bits_reset(hs);
      for (ssize_t n; (n = ::read(fd, buf.get(), 1 << 16)) > 0;)
        XXH3_128bits_update(hs, buf.get(), static_cast<size_t>(n));
      XXH128_hash_t h = XXH3_128bits_digest(hs);
      XXH3_freeState(hs);
      ::close(fd);
      out.push_back({p, st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), st.st_mode,
                     st.st_uid, st.st_gid, h.low64, h.high64});
    }
    ::closedir(d);
  }
  return out;
}

double cpu_seconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

int link_floor(int threads, const std::vector<std::string>& roots, bool reap) {
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
  if (argc >= 4 && std::strcmp(argv[1], "open") == 0) {
    int rounds = std::atoi(argv[2]);
    if (rounds < 1) return 2;
    return open_floor(rounds, std::vector<std::string>(argv + 3, argv + argc));
  }
  bool reap = argc >= 4 && std::strcmp(argv[1], "link-reap") == 0;
  if (argc >= 4 && (reap || std::strcmp(argv[1], "link") == 0)) {
    int threads = std::atoi(argv[2]);
    if (threads < 1 || threads > 256) return 2;
    return link_floor(threads, std::vector<std::string>(argv + 3, argv + argc), reap);
  }
  if (argc < 4 || (std::strcmp(argv[1], "statx") != 0 && std::strcmp(argv[1], "read") != 0)) {
    std::fprintf(stderr, "usage: vu-floor statx|read|link|link-reap THREADS DIR...\n"
                         "       vu-floor open ROUNDS DIR...\n");
    return 2;
  }
  bool read_all = std::strcmp(argv[1], "read") == 0;
  int threads = std::atoi(argv[2]);
  if (threads < 1 || threads > 256) return 2;
  Queue q;
  for (int i = 3; i < argc; ++i) q.dirs.emplace_back(argv[i]);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&] { worker(q, read_all); });
  for (auto& t : pool) t.join();
  std::printf("%llu files, %llu bytes\n", static_cast<unsigned long long>(g_files.load()),
              static_cast<unsigned long long>(g_bytes.load()));
  return 0;
}
