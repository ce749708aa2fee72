// Ring vectors: a pooled, 64-byte aligned allocator that leaves new elements
// uninitialised (every engine buffer is fully written before it is read).
// Large blocks are recycled instead of returned to the OS, so the steady
// state of an inference allocates without page faults or zeroing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace mpc {

void* pool_alloc(size_t bytes);
void pool_free(void* p, size_t bytes);
size_t pool_cached_bytes();
// Memory hygiene: buffers hold this party's shares and masks, and at the data owner
// and output recipients plain inputs and outputs. Blocks are wiped (explicit_bzero)
// whenever they go back to the system allocator; blocks cached for reuse keep their
// contents only inside this process until the session ends, when pool_wipe() clears
// them (local sessions and every distributed session end call it). Wiping every
// block on every reuse would cost about 40% of an exact truncation's CPU time.
void pool_release();  // wipe and return every cached block to the OS
void pool_wipe();     // wipe every cached block (kept for reuse)
size_t pool_cached_nonzero_bytes();  // test hook: non-zero bytes left in cached blocks

template <class T>
struct PoolAlloc {
  using value_type = T;
  PoolAlloc() noexcept = default;
  template <class U>
  PoolAlloc(const PoolAlloc<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(pool_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { pool_free(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-init: no zeroing
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U>
  bool operator==(const PoolAlloc<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const PoolAlloc<U>&) const noexcept { return false; }
};

using Vec = std::vector<uint64_t, PoolAlloc<uint64_t>>;

}  // namespace mpc
