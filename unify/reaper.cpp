#include "unify/reaper.h"

namespace vu {

Reaper::Reaper(unsigned threads, size_t capacity)
    : m_threads(threads ? threads : 1), m_capacity(capacity ? capacity : 1) {}

Reaper::~Reaper() {
  finish();
}

void Reaper::set_capacity(size_t capacity) {
  std::lock_guard lock(m_mutex);
  m_capacity = capacity ? capacity : 1;
}

void Reaper::give(UniqueFd fd) {
  std::unique_lock lock(m_mutex);
  if (m_finished) {
    lock.unlock();
    fd.reset();
    return;
  }
  if (m_closers.empty()) {
    try {
      for (unsigned i = 0; i < m_threads; ++i) m_closers.emplace_back([this] { loop(); });
    } catch (const std::system_error&) {
      // No threads to be had: close here, as if there were no reaper.
      if (m_closers.empty()) {
        lock.unlock();
        fd.reset();
        return;
      }
    }
  }
  m_not_full.wait(lock, [&] { return m_queue.size() < m_capacity; });
  m_queue.push_back(std::move(fd));
  if (m_queue.size() == 1) m_not_empty.notify_all(); // closers sleep only on an empty queue
}

void Reaper::loop() {
  for (;;) {
    UniqueFd fd;
    {
      std::unique_lock lock(m_mutex);
      m_not_empty.wait(lock, [&] { return m_finished || !m_queue.empty(); });
      if (m_queue.empty()) return; // finished and drained
      fd = std::move(m_queue.front());
      m_queue.pop_front();
      if (m_queue.size() + 1 == m_capacity)
        m_not_full.notify_all(); // givers wait only on a full one
    }
    fd.reset(); // the close that frees the inode
  }
}

void Reaper::finish() {
  std::vector<std::thread> closers;
  {
    std::lock_guard lock(m_mutex);
    if (m_finished) return;
    m_finished = true;
    closers.swap(m_closers);
  }
  m_not_empty.notify_all();
  for (auto& t : closers) t.join();
}

} // namespace vu
