// Helper threads for the heavy kernels of one party (mal3's proofs). A party is one thread; in
// local mode the three parties share the machine's cores, and in a round-by-round protocol one
// of them is often the last to finish a step while the others wait with their cores idle.
// parallel_for lets the process's helper threads take part of such a step: the caller runs
// chunks itself and helpers that are free take the rest (none free: the caller runs them all).
// Results must not depend on which thread ran a chunk (the callers add up per-chunk partial
// results in chunk order, in Z_2^64 or GF(2^64): exact). Helpers never see anything but the
// chunk function; no chunk function may throw.
#pragma once
#include <cstddef>
#include <algorithm>
#include <functional>

namespace mpc {

// fn(i) for every i in [0, n), possibly on several threads; returns when all are done.
void parallel_for(size_t n, const std::function<void(size_t)>& fn);
// Helper threads of this process: MPC_THREADS - 1 if set (MPC_THREADS=1: none), else the
// number of cores - 1 (at most 7).
int helper_threads();

}  // namespace mpc

namespace mpc {

// f(i, k0, k1) for the ranges i = 0, 1, ... of [0, n): up to `chunks` of at least `grain`
// elements each (one range, on the caller, when n < 2 grain); returns how many there were
// (at most `chunks`; 0 when n = 0).
template <class F>
size_t parallel_ranges(size_t n, size_t grain, size_t chunks, F&& f) {
  size_t c = std::max<size_t>(1, std::min(chunks, grain ? n / grain : n));
  if (n == 0) return 0;
  const size_t step = (n + c - 1) / c;
  c = (n + step - 1) / step;
  if (c == 1) {
    f(size_t{0}, size_t{0}, n);
    return 1;
  }
  parallel_for(c, [&](size_t i) { f(i, i * step, std::min(n, (i + 1) * step)); });
  return c;
}

}  // namespace mpc
