// How many worker threads a run uses, and running a pass on them.
//
// Most of what a run waits for is the disk: statx of inodes not in the
// cache, reads of file data, freeing of replaced inodes. Each TBB worker
// keeps one request in flight, so a run keeps more workers than cores.
// Measured on the 8-guest corpus on 2 cores (bench/, ARCHITECTURE.md):
// vunify -n cold 4.0 s with 2 workers, 2.8 s with 8, 2.7 s with 16; warm
// 0.45 s with 2, 0.49 s with 8.
#pragma once

#include <tbb/global_control.h>
#include <tbb/parallel_for_each.h>
#include <tbb/task_arena.h>

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <utility>

namespace vu {

// `requested`, or when 0: 8 per hardware thread, at least 8, at most 32.
inline uint32_t worker_threads(uint32_t requested) {
  if (requested) return requested;
  return std::clamp<uint32_t>(8 * std::max(1u, std::thread::hardware_concurrency()), 8, 32);
}

// Workers for a pass that is mostly CPU work on data already cached (the
// link pass reads what the hash pass just read): one per hardware thread,
// fewer when fewer workers were asked for. More only switch contexts:
// linking on 2 cores took 3.3 s with 16 workers, 2.7 s with 2.
inline uint32_t cpu_threads(uint32_t workers) {
  return std::clamp<uint32_t>(std::thread::hardware_concurrency(), 1, std::max(1u, workers));
}

// Runs f() with every parallel algorithm inside it using
// worker_threads(requested) workers.
//
// glibc gives each thread its own malloc arena (up to 8 per core); with
// 16 workers the arenas' slack was 5-7 MB of a 37 MB peak. The records a
// run allocates are few and large or allocated once per file, so one arena
// costs no measurable time (vunify -n on the bench corpus: 0.47 s either
// way) and saves them. Process-wide, set before the workers start.
template <typename F> auto with_workers(uint32_t requested, F&& f) {
  static const bool arenas_limited = [] { return ::mallopt(M_ARENA_MAX, 1) == 1; }();
  (void)arenas_limited;
  const uint32_t threads = worker_threads(requested);
  tbb::global_control cap(tbb::global_control::max_allowed_parallelism, threads);
  tbb::task_arena arena(static_cast<int>(threads));
  return arena.execute(std::forward<F>(f));
}

// tbb::parallel_for_each over [first, last) on cpu_threads(worker_threads(
// requested)) workers: the passes that link names (and so thaw shared
// inodes) run on one worker per core.
template <typename It, typename F>
void for_each_on_cores(uint32_t requested, It first, It last, F&& f) {
  tbb::task_arena cores(static_cast<int>(cpu_threads(worker_threads(requested))));
  cores.execute([&] { tbb::parallel_for_each(first, last, f); });
}

} // namespace vu
