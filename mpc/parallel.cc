#include "parallel.h"

#include <pthread.h>

#include <new>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace mpc {
namespace {

struct Job {
  const std::function<void(size_t)>* fn;
  size_t n;
  std::atomic<size_t> next{0}, done{0};
  std::mutex m;
  std::condition_variable cv;
  // Runs chunks until none is left; true if it finished the last one.
  bool work() {
    size_t i, finished = 0;
    while ((i = next.fetch_add(1, std::memory_order_relaxed)) < n) {
      (*fn)(i);
      ++finished;
    }
    if (!finished) return false;
    return done.fetch_add(finished, std::memory_order_acq_rel) + finished == n;
  }
};

struct Pool {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> jobs;
  int helpers = 0;

  void run() {
    for (;;) {
      std::shared_ptr<Job> j;
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return !jobs.empty(); });
        j = jobs.front();
        jobs.pop_front();
      }
      if (j->work()) {
        std::lock_guard<std::mutex> lk(j->m);
        j->cv.notify_all();
      }
    }
  }
};

int configured_helpers() {
  if (const char* e = std::getenv("MPC_THREADS")) {
    const int t = std::atoi(e);
    return t >= 1 ? std::min(t - 1, 63) : 0;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 1 ? static_cast<int>(std::min(hw - 1, 7u)) : 0;
}

std::mutex g_init;
std::atomic<Pool*> g_pool{nullptr};  // never destroyed: its threads block on it until the process exits

// A forked child has only the forking thread: it starts without a pool (and with a fresh lock,
// in case another thread held it at the fork).
void after_fork_in_child() {
  new (&g_init) std::mutex;
  g_pool.store(nullptr, std::memory_order_relaxed);
}

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return p;
  std::lock_guard<std::mutex> lk(g_init);
  p = g_pool.load(std::memory_order_acquire);
  if (!p) {
    static const int registered = pthread_atfork(nullptr, nullptr, after_fork_in_child);
    (void)registered;
    p = new Pool;
    p->helpers = configured_helpers();
    for (int i = 0; i < p->helpers; ++i) std::thread([p] { p->run(); }).detach();
    g_pool.store(p, std::memory_order_release);
  }
  return p;
}

}  // namespace

int helper_threads() { return pool()->helpers; }

void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  Pool* p = n > 1 ? pool() : nullptr;
  if (!p || p->helpers == 0) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard<std::mutex> lk(p->m);
    for (int i = 0; i < p->helpers && static_cast<size_t>(i) + 1 < n; ++i) p->jobs.push_back(job);
  }
  p->cv.notify_all();
  if (job->work()) return;
  std::unique_lock<std::mutex> lk(job->m);
  job->cv.wait(lk, [&] { return job->done.load(std::memory_order_acquire) == n; });
}

}  // namespace mpc
