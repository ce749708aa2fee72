// The Galois ring GR(2^64, 48) = Z_2^64[X] / (f), f = X^48 + X^11 + X^5 + X + 1 (irreducible
// modulo 2, so f mod 2 defines GF(2^48) and GR is a degree-48 extension of Z_2^64 whose
// elements are 48 coefficients in Z_2^64). mal3's checks run here: Z_2^64 itself has zero
// divisors (a random Z_2^64 coefficient annihilates an error of 2^63 half the time), while in
// GR a non-zero polynomial of degree t vanishes on at most t elements of the exceptional set
//   A = { sum_j b_j X^j : b_j in {0, 1} }   (2^48 elements, pairwise differences are units),
// the Schwartz-Zippel lemma of Galois rings (Abspoel et al. 2019; Boyle, Gilboa, Ishai, Nof
// 2020). An element of A is stored as the u64 of its bits b_j (bits 48..63 zero); multiplying
// by one is a shifted sum, cheaper than a general product. The degree sets the statistical
// security: each random draw from A fails to expose an error with probability <= t / 2^48.
#pragma once
#include <cstring>

#include "../common.h"
#include "../pool.h"

namespace mpc::gr {

constexpr int D = 48;             // extension degree: words per element
constexpr u64 kAMask = (u64{1} << D) - 1;  // the bits of an element of A
constexpr int kWide = 2 * D - 1;  // an unreduced product

// acc[0..kWide) += a * b (unreduced).
inline void mac(u64* __restrict acc, const u64* __restrict a, const u64* __restrict b) {
  for (int i = 0; i < D; ++i) {
    const u64 ai = a[i];
    u64* __restrict r = acc + i;
    for (int j = 0; j < D; ++j) r[j] += ai * b[j];
  }
}

// acc[0..kWide) += e * t for e in A given by its bits.
inline void mac_a(u64* __restrict acc, u64 e, const u64* __restrict t) {
  while (e) {
    const int j = __builtin_ctzll(e);
    e &= e - 1;
    u64* __restrict r = acc + j;
    for (int k = 0; k < D; ++k) r[k] += t[k];
  }
}

// out = acc mod f (acc is destroyed). X^48 = -(X^11 + X^5 + X + 1).
inline void reduce(u64* acc, u64* out) {
  for (int k = kWide - 1; k >= D; --k) {
    const u64 c = acc[k];  // (no branch on c: it derives from shares)
    const int b = k - D;
    acc[b] -= c;
    acc[b + 1] -= c;
    acc[b + 5] -= c;
    acc[b + 11] -= c;
  }
  std::memcpy(out, acc, D * sizeof(u64));
}

inline void mul(const u64* a, const u64* b, u64* out) {
  u64 acc[kWide] = {};
  mac(acc, a, b);
  reduce(acc, out);
}

inline void add(u64* a, const u64* b) {
  for (int k = 0; k < D; ++k) a[k] += b[k];
}
inline void sub(u64* a, const u64* b) {
  for (int k = 0; k < D; ++k) a[k] -= b[k];
}
inline bool equal(const u64* a, const u64* b) { return std::memcmp(a, b, D * sizeof(u64)) == 0; }

// sum_k a[k] * b[k] over n elements (one reduction).
void inner(const u64* a, const u64* b, size_t n, u64* out);
// sum_k (a1[k] - a0[k]) * (b1[k] - b0[k]) over n elements.
void inner_diff(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out);
// S[b] ^= a_k for every set bit b of v_k = x_k & y_k (y null: x_k), k < n; S has 64 words.
// In time independent of the bits (they derive from shares). For GF(2^64) sums in mal3's
// AND proof, kept here with the other word-lane kernels.
void xor_spread(u64* S, const u64* x, const u64* y, const u64* a, size_t n);
// S[64 (d - 1) + b] ^= a_k for every set bit b of x_k & rotbytes(y_k, d), d = 1..7 (S: 7 x 64
// words), rotbytes(y, d) rotating every byte of y left by d bits (bit s of a byte takes bit
// (s - d) mod 8): the AND proof's first step, one pass per d; also independent of the bits.
void xor_spread_rot(u64* S, const u64* x, const u64* y, const u64* a, size_t n);
void xor_spread_rot_generic(u64* S, const u64* x, const u64* y, const u64* a, size_t n);  // (test hook)
// v[k] += r * (v[k + h] - v[k]) for k0 <= k < k1 (<= h), r in A given by its bits.
void fold_a(u64* v, size_t h, u64 rbits, size_t k0, size_t k1);
// The elementwise products' K-ary first step (mal3.cc, EwFirst): words in groups of K (8, 16
// or 32), one element alpha_g of A per group (the coins are public: these branch on its bits).
// N[c][K s + t] += sum_g [bit c of alpha_g] X[K g + s] Y[K g + t]  (N: D x K^2 words; as
// elements, N_{s,t} = sum_g alpha_g X[K g + s] Y[K g + t], coefficient c at N[K^2 c + K s + t]).
template <int K>
void moments(const u64* X, const u64* Y, const u64* alpha, size_t G, u64* N);
// T[c][s] += sum_g [bit c of alpha_g] z[K g + s]  (T: D x K words; sum_g alpha_g z[K g + s] as
// element s, coefficient c at T[K c + s]).
template <int K>
void spread_acc(const u64* alpha, const u64* z, size_t G, u64* T);
// out_g = alpha_g sum_s coef_s X[K g + s] for G groups (coef: K elements; alpha null: 1).
template <int K>
void combine(const u64* X, size_t G, const u64* coef, const u64* alpha, u64* out);

}  // namespace mpc::gr
