#include "gr.h"

#include <algorithm>
#include <cstring>

#include <immintrin.h>

#include "../cpu.h"
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

MPC_CLONES void xor_spread_generic(u64* S, const u64* x, const u64* y, const u64* a, size_t n) {
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

namespace {
// The set bits of e (an element of A) by their position within a vector: m[s] bit q set when
// bit 8q + s of e is (s < 8, q < 6).
inline void a_masks(u64 e, unsigned m[8]) {
  for (int s = 0; s < 8; ++s) {
    unsigned v = 0;
    for (int q = 0; q < kV; ++q) v |= static_cast<unsigned>((e >> (8 * q + s)) & 1) << q;
    m[s] = v;
  }
}

// res = acc mod f for an unreduced product in 12 vectors (coefficients 0..95): X^48 =
// -(X^11 + X^5 + X + 1) twice (degrees 48..94, then 48..57). hp: scratch of 16 + D + 16 words
// whose first 16 are zero.
__attribute__((always_inline)) inline void reduce_wide(const v8u acc[2 * kV], u64* hp, v8u res[kV]) {
  // pass 1: coefficients 48..94 (acc[6..11]) fold into 0..57 (res[0..7])
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) store8(hp + 16 + 8 * t, acc[kV + t]);
  v8u r8[8];
#pragma GCC unroll 8
  for (int u = 0; u < 8; ++u) {
    const u64* p = hp + 16 + 8 * u;
    r8[u] = (u < kV ? acc[u] : v8u{}) - load8(p) - load8(p - 1) - load8(p - 5) - load8(p - 11);
  }
  // pass 2: coefficients 48..57 (r8[6..7]) fold into 0..20 (r8[0..2])
  store8(hp + 16, r8[6]);
  store8(hp + 24, r8[7]);
  std::memset(hp + 32, 0, 8 * sizeof(u64));  // (pass 1 rewrites hp[16 .. 64) for the next call)
#pragma GCC unroll 3
  for (int u = 0; u < 3; ++u) {
    const u64* p = hp + 16 + 8 * u;
    r8[u] -= load8(p) + load8(p - 1) + load8(p - 5) + load8(p - 11);
  }
#pragma GCC unroll 6
  for (int t = 0; t < kV; ++t) res[t] = r8[t];
}

// res = e d mod f for e in A (m: a_masks(e)) and d at pad[8 .. 8 + D) (pad[0 .. 8) and
// pad[8 + D ..) zero): per shift s within a vector, the 7 vectors of d shifted by s words are
// loaded once, and accumulator vector q + t gains vector t of them for every set bit 8q + s
// (branches on the public bits of e, all unrolled); then the reduction
// X^48 = -(X^11 + X^5 + X + 1) twice (degrees 48..94, then 48..57).
// hp: scratch of 16 + D + 16 words whose first 16 are zero.
__attribute__((always_inline)) inline void times_a(const u64* pad, const unsigned* m, u64* hp, v8u res[kV]) {
  v8u acc[2 * kV] = {};
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) {
    const unsigned ms = m[s];
    if (!ms) continue;
    v8u sh[kV + 1];
    const u64* src = pad + 8 - s;
#pragma GCC unroll 7
    for (int t = 0; t <= kV; ++t) sh[t] = load8(src + 8 * t);
#pragma GCC unroll 6
    for (int q = 0; q < kV; ++q)
      if (ms >> q & 1) {
#pragma GCC unroll 7
        for (int t = 0; t <= kV; ++t) acc[q + t] += sh[t];
      }
  }
  reduce_wide(acc, hp, res);
}
}  // namespace

MPC_CLONES void fold_a(u64* v, size_t h, u64 rbits, size_t k0, size_t k1) {
  unsigned m[8];
  a_masks(rbits & kAMask, m);
  alignas(64) u64 pad[8 + D + 16] = {};  // pad[8 .. 8 + D) = d
  alignas(64) u64 hp[16 + D + 16] = {};
  for (size_t k = k0; k < k1; ++k) {
    u64* lo = v + k * D;
    const u64* hi = v + (k + h) * D;
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(pad + 8 + 8 * t, load8(hi + 8 * t) - load8(lo + 8 * t));
    v8u res[kV];
    times_a(pad, m, hp, res);
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(lo + 8 * t, load8(lo + 8 * t) + res[t]);
  }
}

namespace {
// Every byte of y rotated left by d (1 <= d <= 7): bit s of byte t becomes y's bit
// (s - d) mod 8 of that byte.
inline u64 rotbytes(u64 y, int d) {
  constexpr u64 ones = 0x0101010101010101ull;
  const u64 hi = ones * ((0xFFu << d) & 0xFFu), lo = ones * ((1u << d) - 1);
  return ((y << d) & hi) | ((y >> (8 - d)) & lo);
}
}  // namespace

MPC_CLONES void xor_spread_rot_generic(u64* S, const u64* x, const u64* y, const u64* a, size_t n) {
  for (int d = 1; d < 8; ++d) {
    u64* Sd = S + (d - 1) * 64;
    v8u acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) acc[t] = load8(Sd + 8 * t);
    for (size_t k = 0; k < n; ++k) {
      const u64 v = x[k] & rotbytes(y[k], d);
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) acc[t] ^= lane_bits(v, t) & a[k];
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) store8(Sd + 8 * t, acc[t]);
  }
}

// The same with AVX-512 mask registers: byte t of v selects the lanes of vector t.
__attribute__((target("avx512f"))) void xor_spread_rot_avx512(u64* S, const u64* x, const u64* y,
                                                                      const u64* a, size_t n) {
  for (int d = 1; d < 8; ++d) {
    u64* Sd = S + (d - 1) * 64;
    __m512i acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) acc[t] = _mm512_loadu_si512(Sd + 8 * t);
    for (size_t k = 0; k < n; ++k) {
      const u64 v = x[k] & rotbytes(y[k], d);
      const __m512i av = _mm512_set1_epi64(static_cast<long long>(a[k]));
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) acc[t] = _mm512_mask_xor_epi64(acc[t], static_cast<__mmask8>(v >> (8 * t)), acc[t], av);
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) _mm512_storeu_si512(Sd + 8 * t, acc[t]);
  }
}

// The same as GF(2) matrix products with GFNI: per rotation d, S_d = V^T A over the words
// (V: rows v_k = x_k & rotbytes(y_k, d), A: rows a_k), in 8 x 8 bit blocks, eight words at a
// time. GF2P8AFFINEQB(data, M) computes, per 64-bit lane, byte j of the result as M times
// byte j of the data (result bit r: parity of M's byte 7 - r and the data byte). With
//   Mat_I (lane I):  byte 7 - r, bit m = bit r of byte I of v_m,
//   X_J:             byte j, bit m     = bit j of byte J of a_m,
// lane I of GF2P8AFFINEQB(X_J broadcast, Mat) holds, at byte j bit r, the sum over the eight
// words m of [bit 8I + r of v_m] [bit 8J + j of a_m]: bit 8J + j of S_d[8I + r]. Both operand
// forms come from one byte transpose (VPERMB: lane L, byte 7 - m = byte L of word m) and one
// bit transpose per lane (GF2P8AFFINEQB with a constant identity). Data-independent: no
// branch or index on the bits of x, y or a.
namespace {
// S[b] ^= sum over the first n8 words (a multiple of 8) of [bit b of v_k] a_k, with v_k = x_k
// & rot_d(y_k) (d > 0), x_k & y_k (d = 0) or x_k (d = 0, y null), as described above.
__attribute__((target("avx512f,avx512bw,avx512vbmi,gfni"))) void spread_gfni(u64* S, const u64* x, const u64* y,
                                                                             const u64* a, size_t n8, int d) {
  alignas(64) uint8_t idx[64];
  for (int L = 0; L < 8; ++L)
    for (int m = 0; m < 8; ++m) idx[8 * L + 7 - m] = static_cast<uint8_t>(8 * m + L);
  const __m512i tr = _mm512_load_si512(idx);
  const __m512i id = _mm512_set1_epi64(static_cast<long long>(0x8040201008040201ull));   // byte j: 1 << j
  const __m512i rid = _mm512_set1_epi64(static_cast<long long>(0x0102040810204080ull));  // byte j: 1 << (7 - j)
  u64 rot = 0;  // byte 7 - s: 1 << ((s - d) mod 8): bit s of a byte takes bit s - d
  for (int s = 0; s < 8; ++s) rot |= u64{1} << ((s - d) & 7) << (8 * (7 - s));
  const __m512i rm = _mm512_set1_epi64(static_cast<long long>(rot));
  __m512i acc[8];
  for (int J = 0; J < 8; ++J) acc[J] = _mm512_setzero_si512();
  for (size_t k = 0; k < n8; k += 8) {
    __m512i v = _mm512_loadu_si512(x + k);
    if (y) {
      const __m512i yv = _mm512_loadu_si512(y + k);
      v = _mm512_and_si512(v, d ? _mm512_gf2p8affine_epi64_epi8(yv, rm, 0) : yv);
    }
    const __m512i mat = _mm512_gf2p8affine_epi64_epi8(rid, _mm512_maskz_permutexvar_epi8(~__mmask64{0}, tr, v), 0);
    const __m512i xa = _mm512_gf2p8affine_epi64_epi8(id, _mm512_maskz_permutexvar_epi8(~__mmask64{0}, tr, _mm512_loadu_si512(a + k)), 0);
#pragma GCC unroll 8
    for (int J = 0; J < 8; ++J) {
      const __m512i xj = _mm512_maskz_permutexvar_epi64(0xff, _mm512_set1_epi64(J), xa);
      acc[J] = _mm512_xor_si512(acc[J], _mm512_gf2p8affine_epi64_epi8(xj, mat, 0));
    }
  }
  alignas(64) u64 blk[8][8];  // [J][I]: byte j, bit r = bit 8J + j of S[8I + r]
  for (int J = 0; J < 8; ++J) _mm512_store_si512(blk[J], acc[J]);
  for (int I = 0; I < 8; ++I)
    for (int r = 0; r < 8; ++r) {
      u64 w = 0;
      for (int J = 0; J < 8; ++J)
        for (int j = 0; j < 8; ++j) w |= ((blk[J][I] >> (8 * j + r)) & 1) << (8 * J + j);
      S[8 * I + r] ^= w;
    }
}
const bool kCpuGfni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
// From this many words on, the GFNI kernels (their fixed cost: the final bit transposes).
constexpr size_t kGfniMin = 256;
}  // namespace

void xor_spread(u64* S, const u64* x, const u64* y, const u64* a, size_t n) {
  if (kCpuGfni && simd_rank() >= 2 && n >= kGfniMin) {
    const size_t n8 = n / 8 * 8;
    spread_gfni(S, x, y, a, n8, 0);
    if (n8 < n) xor_spread_generic(S, x + n8, y ? y + n8 : nullptr, a + n8, n - n8);
  } else {
    xor_spread_generic(S, x, y, a, n);
  }
}

void xor_spread_rot(u64* S, const u64* x, const u64* y, const u64* a, size_t n) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (kCpuGfni && simd_rank() >= 2 && n >= kGfniMin) {  // unless forced lower
    const size_t n8 = n / 8 * 8;
    for (int d = 1; d < 8; ++d) spread_gfni(S + (d - 1) * 64, x, y, a, n8, d);
    if (n8 < n) xor_spread_rot_avx512(S, x + n8, y + n8, a + n8, n - n8);
  } else if (avx512 && simd_rank() >= 2) {
    xor_spread_rot_avx512(S, x, y, a, n);
  } else {
    xor_spread_rot_generic(S, x, y, a, n);
  }
}

namespace {
template <int K>
__attribute__((always_inline)) inline void moments_body(const u64* X, const u64* Y, const u64* alpha, size_t G,
                                                        u64* N) {
  // Four groups at a time: the 16 subset sums of their K x K product matrices, then per
  // coefficient c one table row selected by the four groups' bits c (the coins are public:
  // indexing by them leaks nothing).
  constexpr int KK = K * K, V = K / 8;
  std::vector<u64, PoolAlloc<u64>> tab(16 * KK);
  u64* T = tab.data();
  for (size_t g0 = 0; g0 < G; g0 += 4) {
    const size_t m = std::min<size_t>(4, G - g0);
    u64 al[4] = {0, 0, 0, 0};
    for (size_t j = 0; j < m; ++j) {
      al[j] = alpha[g0 + j] & kAMask;
      const u64* x = X + K * (g0 + j);
      const u64* y = Y + K * (g0 + j);
      u64* Tj = T + (size_t{1} << j) * KK;  // the singleton {j}
      for (int s = 0; s < K; ++s)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) store8(Tj + s * K + 8 * v, load8(y + 8 * v) * x[s]);
    }
    for (int v = 3; v < 16; ++v) {
      if (!(v & (v - 1)) || (v >> m)) continue;  // singletons are set; groups beyond m absent
      const u64* A = T + (v & (v - 1)) * KK;
      const u64* B = T + (v & -v) * KK;
      u64* O = T + v * KK;
      for (int w = 0; w < KK; w += 8) store8(O + w, load8(A + w) + load8(B + w));
    }
    for (int c = 0; c < D; ++c) {
      const int idx = static_cast<int>(((al[0] >> c) & 1) | (((al[1] >> c) & 1) << 1) | (((al[2] >> c) & 1) << 2) |
                                       (((al[3] >> c) & 1) << 3));
      if (!idx) continue;
      const u64* row = T + idx * KK;
      u64* n = N + c * KK;
      for (int w = 0; w < KK; w += 8) store8(n + w, load8(n + w) + load8(row + w));
    }
  }
}

template <int K>
__attribute__((always_inline)) inline void spread_acc_body(const u64* alpha, const u64* z, size_t G, u64* T) {
  constexpr int V = K / 8, C = 24 / V;  // accumulators: C coefficients x V vectors in registers
  for (int c0 = 0; c0 < D; c0 += C) {
    v8u acc[C][V];
    for (int c = 0; c < C; ++c)
      for (int v = 0; v < V; ++v) acc[c][v] = load8(T + (c0 + c) * K + 8 * v);
    for (size_t g = 0; g < G; ++g) {
      v8u zv[V];
      for (int v = 0; v < V; ++v) zv[v] = load8(z + K * g + 8 * v);
      const u64 a = alpha[g] >> c0;
#pragma GCC unroll 24
      for (int c = 0; c < C; ++c)
        for (int v = 0; v < V; ++v) acc[c][v] += zv[v] & (0 - ((a >> c) & 1));
    }
    for (int c = 0; c < C; ++c)
      for (int v = 0; v < V; ++v) store8(T + (c0 + c) * K + 8 * v, acc[c][v]);
  }
}

template <int K>
__attribute__((always_inline)) inline void combine_body(const u64* X, size_t G, const u64* coef, const u64* alpha,
                                                        u64* out) {
  alignas(64) u64 pad[8 + D + 16] = {};
  alignas(64) u64 hp[16 + D + 16] = {};
  unsigned m[8];
  for (size_t g = 0; g < G; ++g) {
    v8u w[kV] = {};
    const u64* x = X + K * g;
#pragma GCC unroll 8
    for (int s = 0; s < K; ++s)
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t) w[t] += load8(coef + s * D + 8 * t) * x[s];
    if (!alpha) {
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t) store8(out + g * D + 8 * t, w[t]);
      continue;
    }
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(pad + 8 + 8 * t, w[t]);
    a_masks(alpha[g] & kAMask, m);
    v8u res[kV];
    times_a(pad, m, hp, res);
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) store8(out + g * D + 8 * t, res[t]);
  }
}
// times_a for AVX-512: merge-masked additions (one instruction each; no branch, so coins whose
// bits vary from call to call cost no mispredictions). res: kV vectors.
__attribute__((target("avx512f"), always_inline)) inline void times_a_512(const u64* pad, u64 e, u64* hp,
                                                                         __m512i* res) {
  __m512i acc[2 * kV];
#pragma GCC unroll 12
  for (int t = 0; t < 2 * kV; ++t) acc[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) {
    __m512i sh[kV + 1];
#pragma GCC unroll 7
    for (int t = 0; t <= kV; ++t) sh[t] = _mm512_loadu_si512(pad + 8 - s + 8 * t);
#pragma GCC unroll 6
    for (int q = 0; q < kV; ++q) {
      const __mmask8 k = static_cast<__mmask8>(0 - ((e >> (8 * q + s)) & 1));
#pragma GCC unroll 7
      for (int t = 0; t <= kV; ++t) acc[q + t] = _mm512_mask_add_epi64(acc[q + t], k, acc[q + t], sh[t]);
    }
  }
  v8u wide[2 * kV], r[kV];
  std::memcpy(wide, acc, sizeof wide);
  reduce_wide(wide, hp, r);
  std::memcpy(res, r, sizeof r);
}

// combine_body with alpha for AVX-512: the coins' bits vary from group to group, so the
// additions are merge-masked (one instruction each, no branch to mispredict).
template <int K>
__attribute__((target("avx512f,avx512dq"), always_inline)) inline void combine_alpha_avx512(
    const u64* X, size_t G, const u64* coef, const u64* alpha, u64* out) {
  alignas(64) u64 pad[8 + D + 16] = {};
  alignas(64) u64 hp[16 + D + 16] = {};
  __m512i cf[K][kV];
  for (int s = 0; s < K; ++s)
    for (int t = 0; t < kV; ++t) cf[s][t] = _mm512_loadu_si512(coef + s * D + 8 * t);
  for (size_t g = 0; g < G; ++g) {
    __m512i w[kV];
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) w[t] = _mm512_setzero_si512();
    const u64* x = X + K * g;
#pragma GCC unroll 16
    for (int s = 0; s < K; ++s) {
      const __m512i xs = _mm512_set1_epi64(static_cast<long long>(x[s]));
#pragma GCC unroll 6
      for (int t = 0; t < kV; ++t) w[t] = _mm512_add_epi64(w[t], _mm512_mullo_epi64(cf[s][t], xs));
    }
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) _mm512_store_si512(pad + 8 + 8 * t, w[t]);
    __m512i r8[kV];
    times_a_512(pad, alpha[g] & kAMask, hp, r8);
#pragma GCC unroll 6
    for (int t = 0; t < kV; ++t) _mm512_storeu_si512(out + g * D + 8 * t, r8[t]);
  }
}
template <int K>
__attribute__((target("avx512f,avx512dq"))) void combine_alpha_512(const u64* X, size_t G, const u64* coef,
                                                                   const u64* alpha, u64* out) {
  combine_alpha_avx512<K>(X, G, coef, alpha, out);
}
const bool kCpuAvx512dq = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}  // namespace

#define MPC_GR_GROUP_KERNELS(K)                                                                         \
  template <>                                                                                           \
  MPC_CLONES void moments<K>(const u64* X, const u64* Y, const u64* alpha, size_t G, u64* N) {          \
    moments_body<K>(X, Y, alpha, G, N);                                                                 \
  }                                                                                                     \
  template <>                                                                                           \
  MPC_CLONES void spread_acc<K>(const u64* alpha, const u64* z, size_t G, u64* T) {                     \
    spread_acc_body<K>(alpha, z, G, T);                                                                 \
  }                                                                                                     \
  MPC_CLONES void combine_generic_##K(const u64* X, size_t G, const u64* coef, const u64* alpha, u64* out) { \
    combine_body<K>(X, G, coef, alpha, out);                                                            \
  }                                                                                                     \
  template <>                                                                                           \
  void combine<K>(const u64* X, size_t G, const u64* coef, const u64* alpha, u64* out) {                \
    if (alpha && kCpuAvx512dq && simd_rank() >= 2) combine_alpha_512<K>(X, G, coef, alpha, out);        \
    else combine_generic_##K(X, G, coef, alpha, out);                                                   \
  }
MPC_GR_GROUP_KERNELS(8)
MPC_GR_GROUP_KERNELS(16)
MPC_GR_GROUP_KERNELS(32)
#undef MPC_GR_GROUP_KERNELS

}  // namespace mpc::gr
