// Frees replaced inodes off the linking threads' critical path.
//
// When vunify swaps a name to the shared inode, the old inode's last name
// goes with the unlink of the temporary, but its blocks are freed only when
// the last descriptor closes: ext4 truncates the inode there and, on a
// file system mounted with `discard`, waits for the device to trim every
// extent. Measured on the bench corpus (ARCHITECTURE.md), that close was
// about a third of a link run. The linking thread hands the descriptor to
// a Reaper instead; a few reaper threads close them while linking goes on.
// Without `discard` the close is quick and the hand-over (a lock, a wake-up
// and a context switch per inode) is what costs: the link pass closes
// there itself (RunContext::frees_slowly; 8 guests on ext4 without
// discard: link pass 1.8-2.1 s instead of 2.6-2.9 s).
//
// Crash safety is the kernel's: the inodes have no names left, so a killed
// run's descriptors are closed at exit and the inodes freed as always.
#pragma once

#include "kernel/fd.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace vu {

class Reaper {
public:
  // `threads` closers, at most `capacity` descriptors waiting (give()
  // blocks beyond that, so open descriptors stay bounded).
  Reaper() : Reaper(4, 512) {}
  Reaper(unsigned threads, size_t capacity);
  ~Reaper(); // finish()
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Queues fd to be closed. Thread-safe. Starts the closers on first use.
  void give(UniqueFd fd);
  // At most `capacity` descriptors waiting (the run's descriptor budget);
  // before the first give().
  void set_capacity(size_t capacity);
  // Waits until every queued descriptor is closed and stops the closers.
  // give() after finish() closes synchronously.
  void finish();

private:
  void loop();

  unsigned m_threads;
  size_t m_capacity;
  std::mutex m_mutex;
  std::condition_variable m_not_empty, m_not_full;
  std::deque<UniqueFd> m_queue;
  std::vector<std::thread> m_closers;
  bool m_finished = false; // set by finish(): closers drain the queue and stop
};

} // namespace vu
