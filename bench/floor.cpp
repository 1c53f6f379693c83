// vu-floor: what the hardware allows, for bench/perf.sh.
//
//   vu-floor statx THREADS DIR...   statx of every regular file
//   vu-floor read THREADS DIR...    open + read + XXH3 of every regular file
//
// THREADS workers take directories from one shared queue (getdents64 via
// readdir, entry types to skip non-files) and work on the files they find.
// No excludes, no grouping, no comparison: a lower bound for vunify's walk
// (statx) and for reading every byte once (read). Prints files and bytes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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
    if (::statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 && S_ISREG(sx.stx_mode)) {
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
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        if (e->d_type == DT_DIR) q.put(dir + "/" + e->d_name);
        else if (e->d_type == DT_REG) work_file(dfd, e->d_name, read_all, buf.get(), buf_len);
      }
      ::closedir(d);
    }
    q.done();
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 4 || (std::strcmp(argv[1], "statx") != 0 && std::strcmp(argv[1], "read") != 0)) {
    std::fprintf(stderr, "usage: vu-floor statx|read THREADS DIR...\n");
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
