// The progress line the programs print on a terminal (never in cron).
#pragma once

#include "unify/report.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace vu {

// Prints a one-line progress indicator to stderr while a run is going on.
class ProgressLine {
public:
  ProgressLine(Progress& p, const char* prog = "vunify")
      : m_progress(p), m_prog(prog), m_thread([this] { loop(); }) {}
  ~ProgressLine() {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
    }
    m_cv.notify_all();
    m_thread.join();
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }

private:
  void loop() {
    std::unique_lock lock(m_mutex);
    do {
      std::fprintf(stderr, "\r\033[K%s: %s: %llu files scanned, %s hashed, %llu linked", m_prog,
                   progress_stage_name(m_progress.stage.load()),
                   static_cast<unsigned long long>(m_progress.files_scanned.load()),
                   human_bytes(m_progress.bytes_hashed.load()).c_str(),
                   static_cast<unsigned long long>(m_progress.files_linked.load()));
      std::fflush(stderr);
    } while (!m_cv.wait_for(lock, std::chrono::milliseconds(200), [this] { return m_stop; }));
  }
  Progress& m_progress;
  const char* m_prog;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stop = false;
  std::thread m_thread;
};

} // namespace vu
