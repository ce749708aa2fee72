#include "gr.h"

#include <algorithm>
#include <cstring>

#include "../linalg.h"  // MPC_CLONES

namespace mpc::gr {
namespace {

// Eight words; GCC lowers it per clone (AVX-512: one register and VPMULLQ; AVX2: two halves;
// default: scalar words).
typedef u64 v8u __attribute__((vector_size(64)));
constexpr int kV = D / 8;       // vectors per element
constexpr int kRows = 4;        // rows of the product matrix per register tile
constexpr size_t kChunk = 256;  // elements per pass (a and b chunks stay in L2)

#pragma GCC diagnostic ignored "-Wpsabi"  // v8u never crosses a call: everything here is inlined
__attribute__((always_inline)) inline v8u load8(const u64* p) {
  v8u v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store8(u64* p, v8u v) { std::memcpy(p, &v, sizeof v); }

// acc[i + j] += C[i][j]: the product matrix's anti-diagonals are the unreduced product.
inline void diagonals(const u64* C, u64* out) {
  u64 acc[kWide] = {};
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < D; ++j) acc[i + j] += C[i * D + j];
  reduce(acc, out);
}

// C[i][j] += sum_k A_k[i] B_k[j] over elements [k0, k1), with A_k = a1_k - a0_k when a0 is
// given (likewise B): a matrix product A^T B whose 4 x 48 register tiles see every element's
// words in order (no unaligned accumulator, one multiply per word pair).
template <bool kDiff>
inline void accumulate(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t k0, size_t k1,
                       u64* C) {
  for (int i0 = 0; i0 < D; i0 += kRows) {
    v8u c[kRows][kV];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t) c[r][t] = load8(C + (i0 + r) * D + 8 * t);
    for (size_t k = k0; k < k1; ++k) {
      v8u bv[kV];
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t)
        bv[t] = kDiff ? load8(b1 + k * D + 8 * t) - load8(b0 + k * D + 8 * t) : load8(b1 + k * D + 8 * t);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const u64 av = kDiff ? a1[k * D + i0 + r] - a0[k * D + i0 + r] : a1[k * D + i0 + r];
#pragma GCC unroll 6
        for (int t = 0; t < kV; ++t) c[r][t] += av * bv[t];
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t) store8(C + (i0 + r) * D + 8 * t, c[r][t]);
  }
}

}  // namespace

MPC_CLONES void inner(const u64* a, const u64* b, size_t n, u64* out) {
  alignas(64) u64 C[D * D] = {};
  for (size_t k0 = 0; k0 < n; k0 += kChunk) accumulate<false>(nullptr, a, nullptr, b, k0, std::min(n, k0 + kChunk), C);
  diagonals(C, out);
}

MPC_CLONES void inner_diff(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out) {
  alignas(64) u64 C[D * D] = {};
  for (size_t k0 = 0; k0 < n; k0 += kChunk) accumulate<true>(a0, a1, b0, b1, k0, std::min(n, k0 + kChunk), C);
  diagonals(C, out);
}

namespace {
inline v8u lane_bits(u64 u, int t) {  // bits 8t .. 8t + 7 of u, one per lane, as 0 / all-ones
  const v8u idx = {0, 1, 2, 3, 4, 5, 6, 7};
  const v8u sh = idx + static_cast<u64>(8 * t);
  return v8u{} - ((v8u{} + u) >> sh & 1);
}
}  // namespace

MPC_CLONES void spread(const u64* u, const u64* x, size_t n, u64* out) {
  for (size_t k = 0; k < n; ++k)
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(out + k * D + 8 * t, lane_bits(u[k], t) & x[k]);
}

MPC_CLONES void spread_acc(const u64* u, const u64* z, size_t n, u64* acc) {
  v8u a[kV];
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) a[t] = load8(acc + 8 * t);
  for (size_t k = 0; k < n; ++k)
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) a[t] += lane_bits(u[k], t) & z[k];
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) store8(acc + 8 * t, a[t]);
}

MPC_CLONES void xor_spread(u64* S, const u64* x, const u64* y, const u64* a, size_t n) {
  v8u acc[8];
#pragma GCC unroll 8
  for (int t = 0; t < 8; ++t) acc[t] = load8(S + 8 * t);
  for (size_t k = 0; k < n; ++k) {
    const u64 v = y ? x[k] & y[k] : x[k];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) acc[t] ^= lane_bits(v, t) & a[k];
  }
#pragma GCC unroll 8
  for (int t = 0; t < 8; ++t) store8(S + 8 * t, acc[t]);
}

MPC_CLONES void inner_emb(const u64* a, const u64* b, size_t n, u64* out) {
  v8u acc[kV];
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) acc[t] = load8(out + 8 * t);
  for (size_t k = 0; k < n; ++k) {
    const u64 s = b[k * D];
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) acc[t] += load8(a + k * D + 8 * t) * s;
  }
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) store8(out + 8 * t, acc[t]);
}

MPC_CLONES void inner_diff_emb(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out) {
  v8u acc[kV];
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) acc[t] = load8(out + 8 * t);
  for (size_t k = 0; k < n; ++k) {
    const u64 s = b1[k * D] - b0[k * D];
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) acc[t] += (load8(a1 + k * D + 8 * t) - load8(a0 + k * D + 8 * t)) * s;
  }
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) store8(out + 8 * t, acc[t]);
}

MPC_CLONES void fold_emb(u64* v, size_t h, size_t k0, size_t k1, u64 rbits) {
  for (size_t k = k0; k < k1; ++k) {
    const u64 delta = v[(k + h) * D] - v[k * D];
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(v + k * D + 8 * t, load8(v + k * D + 8 * t) + (lane_bits(rbits, t) & delta));
  }
}

MPC_CLONES void fold_a(u64* v, size_t h, u64 rbits, size_t k0, size_t k1) {
  // r d = sum over the set bits j = 8q + s of r of X^j d: accumulator vector q + t gains words
  // 8t - s .. 8t - s + 7 of d (read from a zero-padded copy), all in registers; then the
  // reduction X^48 = -(X^11 + X^5 + X + 1) twice (degrees 48..94, then 48..57).
  int qs[D], ss[D], nb = 0;
  for (int j = 0; j < D; ++j)
    if ((rbits >> j) & 1) {
      qs[nb] = j / 8;
      ss[nb] = j % 8;
      ++nb;
    }
  alignas(64) u64 pad[8 + D + 16] = {};  // pad[8 .. 8 + D) = d
  alignas(64) u64 hp[16 + D + 16] = {};  // hp[16 .. 16 + D) = the high coefficients
  for (size_t k = k0; k < k1; ++k) {
    u64* lo = v + k * D;
    const u64* hi = v + (k + h) * D;
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(pad + 8 + 8 * t, load8(hi + 8 * t) - load8(lo + 8 * t));
    v8u acc[2 * kV] = {};
    for (int b = 0; b < nb; ++b) {
      const u64* src = pad + 8 - ss[b];
      switch (qs[b]) {
#define MPC_GR_ADD7(Q) \
  case Q:              \
    _Pragma("GCC unroll 7") for (int t = 0; t < 7; ++t) acc[Q + t] += load8(src + 8 * t); \
    break;
        MPC_GR_ADD7(0)
        MPC_GR_ADD7(1)
        MPC_GR_ADD7(2)
        MPC_GR_ADD7(3)
        MPC_GR_ADD7(4)
        MPC_GR_ADD7(5)
#undef MPC_GR_ADD7
      }
    }
    // pass 1: coefficients 48..94 (acc[6..11]) fold into 0..57 (acc[0..7])
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(hp + 16 + 8 * t, acc[kV + t]);
    v8u res[8];
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) {
      const u64* p = hp + 16 + 8 * u;
      res[u] = (u < kV ? acc[u] : v8u{}) - load8(p) - load8(p - 1) - load8(p - 5) - load8(p - 11);
    }
    // pass 2: coefficients 48..57 (res[6..7]) fold into 0..20 (res[0..2])
    store8(hp + 16, res[6]);
    store8(hp + 24, res[7]);
    std::memset(hp + 32, 0, 8 * sizeof(u64));  // (pass 1 rewrites hp[16 .. 64) for the next element)
#pragma GCC unroll 3
    for (int u = 0; u < 3; ++u) {
      const u64* p = hp + 16 + 8 * u;
      res[u] -= load8(p) + load8(p - 1) + load8(p - 5) + load8(p - 11);
    }
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(lo + 8 * t, load8(lo + 8 * t) + res[t]);
  }
}

}  // namespace mpc::gr
