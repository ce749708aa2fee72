#include "pool.h"

#include <cstdlib>
#include <string.h>
#include <mutex>

namespace mpc {

namespace {
constexpr size_t kMinPooled = 64 * 1024;       // smaller blocks go straight to malloc
// Cap on idle memory kept for reuse: never more than the process used at its peak; 4 GiB
// keeps mal3's proof vectors (up to ~0.7 GB per party, three parties in a local session)
// from going back to the OS and faulting in again at every proof.
constexpr size_t kMaxCached = size_t(4) << 30;
constexpr int kClasses = 48;

struct Pool {
  std::mutex mu;
  std::vector<void*> free[kClasses];
  size_t cached = 0;
};
// Never destroyed: buffers may be released during static destruction at exit
// (e.g. by objects owned by other globals), after a global pool would be gone.
Pool& pool_instance() {
  static Pool* p = new Pool;
  return *p;
}
#define g_pool pool_instance()

inline int size_class(size_t bytes) {
  int c = 0;
  while ((size_t(1) << c) < bytes) ++c;
  return c;
}
}  // namespace

void* pool_alloc(size_t bytes) {
  if (bytes == 0) bytes = 8;
  if (bytes < kMinPooled) {
    void* p = std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
    if (!p) throw std::bad_alloc();
    return p;
  }
  const int c = size_class(bytes);
  {
    std::lock_guard<std::mutex> g(g_pool.mu);
    auto& fl = g_pool.free[c];
    if (!fl.empty()) {
      void* p = fl.back();
      fl.pop_back();
      g_pool.cached -= size_t(1) << c;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, size_t(1) << c);
  if (!p) throw std::bad_alloc();
  return p;
}

void pool_free(void* p, size_t bytes) {
  if (!p) return;
  if (bytes == 0) bytes = 8;
  if (bytes < kMinPooled) {
    explicit_bzero(p, bytes);  // see pool.h: nothing goes back to the allocator unwiped
    std::free(p);
    return;
  }
  const int c = size_class(bytes);
  {
    std::lock_guard<std::mutex> g(g_pool.mu);
    if (g_pool.cached + (size_t(1) << c) <= kMaxCached) {
      g_pool.free[c].push_back(p);
      g_pool.cached += size_t(1) << c;
      return;
    }
  }
  explicit_bzero(p, bytes);
  std::free(p);
}

size_t pool_cached_bytes() {
  std::lock_guard<std::mutex> g(g_pool.mu);
  return g_pool.cached;
}

void pool_release() {
  std::lock_guard<std::mutex> g(g_pool.mu);
  for (int c = 0; c < kClasses; ++c) {
    for (void* p : g_pool.free[c]) {
      explicit_bzero(p, size_t(1) << c);
      std::free(p);
    }
    g_pool.free[c].clear();
  }
  g_pool.cached = 0;
}

size_t pool_cached_nonzero_bytes() {
  std::lock_guard<std::mutex> g(g_pool.mu);
  size_t nz = 0;
  for (int c = 0; c < kClasses; ++c)
    for (void* p : g_pool.free[c]) {
      const unsigned char* b = static_cast<const unsigned char*>(p);
      for (size_t i = 0; i < (size_t(1) << c); ++i) nz += b[i] != 0;
    }
  return nz;
}

void pool_wipe() {
  std::lock_guard<std::mutex> g(g_pool.mu);
  for (int c = 0; c < kClasses; ++c)
    for (void* p : g_pool.free[c]) explicit_bzero(p, size_t(1) << c);
}

}  // namespace mpc
