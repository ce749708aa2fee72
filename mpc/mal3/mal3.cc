#include "mal3.h"

#include <openssl/evp.h>
#include <immintrin.h>

#include <algorithm>
#include <numeric>
#include <cstring>
#include <memory>

#include "../bitslice.h"
#include "../cpu.h"
#include "../linalg.h"
#include "../ops.h"
#include "../parallel.h"
#include "gr.h"

namespace mpc {
namespace {

using gr::D;
// parallel_ranges: chunks per kernel call and the least work per chunk (in elements of the
// kernel's loop), so that a chunk is worth a helper thread's wake-up.
constexpr size_t kChunks = 8;
constexpr size_t kGrainGR = 256;     // ring elements (48 words each)
constexpr size_t kGrainWords = 8192;  // words
constexpr u64 kVerdictOk = 0x6d616c334f4b2121ull;  // what a party sends when its checks held

void sha256(const void* data, size_t n, uint8_t out[32]) {
  unsigned len = 32;
  if (!EVP_Digest(data, n, out, &len, EVP_sha256(), nullptr)) throw Error("mal3: SHA-256 failed");
}

// The commitment to a coin seed: SHA-256(seed || party).
void commitment(const u64 seed[2], int party, uint8_t out[32]) {
  u64 buf[3] = {seed[0], seed[1], static_cast<u64>(party)};
  sha256(buf, sizeof buf, out);
}

Key key_from(Prg& g) {
  u64 w[2];
  g.fill(w, 2);
  Key k;
  std::memcpy(k.data(), w, 16);
  return k;
}

// ------------------------------------------------------------------ compressions
// Every recorded product item is compressed with coins from the common coin to
//   sum(coeff * z) = <Fx(x), Gy(y)>  (+ the other cross term, see verify()),
// rank one (coeff = u_m w_n) for matmul, conv and depthwise; elementwise products get
// coeff = alpha_g beta_s for output Kg + s (K = kEwGroup; alpha: one element of A per group of
// K outputs, u below; beta: K elements of A per verification) and their own proof (EwFirst).
// Vectors of GR elements are D words per element.

// [D, M] 0/1 matrix of the bits of e.
Vec bit_rows(const u64* e, size_t M) {
  Vec out(D * M);
  for (int j = 0; j < D; ++j)
    for (size_t m = 0; m < M; ++m) out[j * M + m] = (e[m] >> j) & 1;
  return out;
}

// [M, D] 0/1 matrix of the bits of e.
Vec bit_cols(const u64* e, size_t M) {
  Vec out(M * D);
  for (size_t m = 0; m < M; ++m)
    for (int j = 0; j < D; ++j) out[m * D + j] = (e[m] >> j) & 1;
  return out;
}

void transpose_into(const Vec& t, size_t K, u64* out) {  // [D, K] -> [K, D]
  for (int j = 0; j < D; ++j)
    for (size_t k = 0; k < K; ++k) out[k * D + j] = t[j * K + k];
}

// The elementwise proof's first step folds groups of this many words (EwFirst).
constexpr int kEwGroup = 16;

struct Item {
  Product::Kind kind;
  ConvGeom g;
  size_t M = 0, K = 0, N = 0;  // rank one: Z [M, N], claim length K; elementwise: n = M = K
  Vec u, w;                    // coins (elementwise: alpha per group of kEwGroup outputs)

  Item(const Product& p, Prg& coin) : kind(p.kind), g(p.geom) {
    switch (kind) {
      case Product::kElementwise:
        M = K = p.x->size();
        N = 1;
        break;
      case Product::kMatmul:
        M = p.x->shape[0];
        K = p.x->shape[1];
        N = p.y->shape[1];
        break;
      case Product::kConv2d:
        M = g.n * g.oh * g.ow;
        K = g.kh * g.kw * g.c;
        N = g.oc;
        break;
      case Product::kDepthwise:
        M = g.n * g.oh * g.ow;
        K = g.kh * g.kw * g.oc;
        N = g.oc;
        break;
    }
    u = coin.next(kind == Product::kElementwise ? groups() : M);
    for (auto& e : u) e &= gr::kAMask;
    if (kind != Product::kElementwise) {
      w = coin.next(N);
      for (auto& e : w) e &= gr::kAMask;
    }
  }

  size_t groups() const { return (M + kEwGroup - 1) / kEwGroup; }  // elementwise: groups of outputs
  // Fx: the compression of a left operand (K elements; rank one).
  void fx(const Vec& x, u64* out) const {
    const size_t cols_k = kind == Product::kMatmul ? K : static_cast<size_t>(g.kh * g.kw * g.c);
    Vec cols;
    const u64* X = x.data();
    if (kind != Product::kMatmul) {
      cols.resize(M * cols_k);
      im2col(x.data(), g, cols.data());
      X = cols.data();
    }
    Vec U = bit_rows(u.data(), M), t(D * cols_k);
    gemm_u64(D, cols_k, M, U.data(), M, X, cols_k, t.data(), cols_k, false);
    if (kind != Product::kDepthwise) {
      transpose_into(t, K, out);
      return;
    }
    const size_t KK = g.kh * g.kw, C = g.c, OC = g.oc, dm = g.depth_multiplier;
    for (size_t q = 0; q < KK; ++q)
      for (size_t oc = 0; oc < OC; ++oc)
        for (int j = 0; j < D; ++j) out[(q * OC + oc) * D + j] = t[j * cols_k + q * C + oc / dm];
  }
  // Gx: the compression of a left operand against a right one's Fy (the other cross term).
  void gx(const Vec&, const u64* fx_of_x, u64* out) const { std::memcpy(out, fx_of_x, K * D * sizeof(u64)); }
  // Fy: the compression of a right operand (K elements).
  void fy(const Vec& y, u64* out) const {
    switch (kind) {
      case Product::kElementwise:
        throw Error("internal: mal3 elementwise items have no Fy");
      case Product::kMatmul: {  // Y [K, N] x W [N, D]
        Vec W = bit_cols(w.data(), N);
        gemm_u64(K, D, N, y.data(), N, W.data(), D, out, D, false);
        return;
      }
      case Product::kConv2d: {  // filters [N, K]: W^T [D, N] x Y [N, K]
        Vec W = bit_rows(w.data(), N), t(D * K);
        gemm_u64(D, K, N, W.data(), N, y.data(), K, t.data(), K, false);
        transpose_into(t, K, out);
        return;
      }
      case Product::kDepthwise:  // filters [KK, OC]: v_oc * w[q, oc]
        for (size_t k = 0; k < K; ++k)
          for (int j = 0; j < D; ++j) out[k * D + j] = ((w[k % N] >> j) & 1) ? y[k] : 0;
        return;
    }
  }
  void gy(const Vec&, const u64* fy_of_y, u64* out) const { std::memcpy(out, fy_of_y, K * D * sizeof(u64)); }
  // sum(coeff * z) for outputs z (M * N words), added to acc (unreduced, kWide words; rank one).
  void zc(const u64* z, u64* acc) const {
    Vec W = bit_cols(w.data(), N), t(M * D);
    gemm_u64(M, D, N, z, N, W.data(), D, t.data(), D, false);
    for (size_t m = 0; m < M; ++m) gr::mac_a(acc, u[m], t.data() + m * D);
  }
};

// Prover P's cross terms x_P y_{P+1} and y_P x_{P+1} of an elementwise product whose operands'
// components are publicly zero where zx, zy have bits set: is each present?
std::pair<bool, bool> cross_terms(uint8_t zx, uint8_t zy, int P) {
  const int Q = (P + 1) % 3;
  return {!((zx >> P) & 1) && !((zy >> Q) & 1), !((zy >> P) & 1) && !((zx >> Q) & 1)};
}

// ------------------------------------------------------------------ the two proof domains
// The folding proof is written once over a domain F: GR (GR(2^64, 48), for the arithmetic
// products) or GF (GF(2^64) = GF(2)[X] / (X^64 + X^4 + X^3 + X + 1), for the ANDs of the
// Boolean layer). Elements are F::W words; challenges are F elements drawn from a set whose
// differences are units (GR: A; GF: the field), excluding 0 and 1.
struct EwFirst;
struct GRF {
  static constexpr int W = D;
  using First = EwFirst;  // the elementwise products' proof's first step
  // kernel(k0, k1, part) over chunks of [0, n) (parallel_ranges), the parts added up in order.
  template <class K>
  static void summed(size_t n, u64* out, K&& kernel) {
    u64 parts[kChunks][D];
    const size_t c = parallel_ranges(n, kGrainGR, kChunks, [&](size_t i, size_t k0, size_t k1) { kernel(k0, k1, parts[i]); });
    std::memset(out, 0, D * sizeof(u64));
    for (size_t i = 0; i < c; ++i) gr::add(out, parts[i]);
  }
  static void inner(const u64* a, const u64* b, size_t n, u64* out) {
    summed(n, out, [&](size_t k0, size_t k1, u64* part) { gr::inner(a + k0 * D, b + k0 * D, k1 - k0, part); });
  }
  static void inner_diff(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out) {
    summed(n, out, [&](size_t k0, size_t k1, u64* part) {
      gr::inner_diff(a0 + k0 * D, a1 + k0 * D, b0 + k0 * D, b1 + k0 * D, k1 - k0, part);
    });
  }
  static void add(u64* a, const u64* b) { gr::add(a, b); }
  static void sub(u64* a, const u64* b) { gr::sub(a, b); }
  static void mul(const u64* a, const u64* b, u64* out) { gr::mul(a, b, out); }
  static void from_challenge(u64 r, u64* out) {
    for (int j = 0; j < W; ++j) out[j] = (r >> j) & 1;
  }
  static u64 mask(u64 r) { return r & gr::kAMask; }
  static void fold(Vec& v, size_t h, u64 rbits) {  // v[k] += r (v[k + h] - v[k])
    parallel_ranges(h, kGrainGR, kChunks, [&](size_t, size_t k0, size_t k1) { gr::fold_a(v.data(), h, rbits, k0, k1); });
    v.resize(h * D);
  }
};

// GF(2^64): carry-less products (PCLMULQDQ where the CPU has it).
inline u64 gf_reduce(u64 hi, u64 lo) {  // X^64 = X^4 + X^3 + X + 1
  const u64 t = hi ^ (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
  return lo ^ t ^ (t << 1) ^ (t << 3) ^ (t << 4);
}
__attribute__((target("pclmul,sse2"))) inline void clmul_hw(u64 a, u64 b, u64& hi, u64& lo) {
  const __m128i p = _mm_clmulepi64_si128(_mm_set_epi64x(0, static_cast<long long>(a)),
                                         _mm_set_epi64x(0, static_cast<long long>(b)), 0);
  lo = static_cast<u64>(_mm_cvtsi128_si64(p));
  hi = static_cast<u64>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(p, p)));
}
inline void clmul_sw(u64 a, u64 b, u64& hi, u64& lo) {  // in time independent of a and b
  hi = lo = 0;
  for (int i = 0; i < 64; ++i) {
    const u64 m = 0 - ((b >> i) & 1);
    lo ^= (a << i) & m;
    if (i) hi ^= (a >> (64 - i)) & m;
  }
}
const bool kHavePclmul = __builtin_cpu_supports("pclmul");
inline u64 gf_mul(u64 a, u64 b) {
  u64 hi, lo;
  if (kHavePclmul) clmul_hw(a, b, hi, lo);
  else clmul_sw(a, b, hi, lo);
  return gf_reduce(hi, lo);
}

// The AND proof's hot loops, compiled twice from one body: with PCLMULQDQ inlined (hw) and
// with the portable carry-less product (sw); sums of products are reduced once at the end
// (reduction is linear).
//   dot:    sum_k a_k b_k             dot_diff: sum_k (a0_k ^ a1_k)(b0_k ^ b1_k)
//   fold:   v_k ^= r (v_k ^ v_{k+h})  (k < h)
//   bytes_moments: P[7 + j] ^= sum_q sum_{t >= j} A_t B_{t-j}, P[j - 1] ^= sum_q sum_{t < j} A_t B_{t-j+8}
//                  (1 <= j <= 7) with A_t = alpha_q sum_s x_q[8t+s] ca[8t+s], B_t = sum_s y_q[8t+s] cb[8t+s]
//   bytes_fold: out[q] = alpha_q sum_b x_q[b] c[b]  (alpha null: 1)
// The bits of x and y (share components) only mask coefficients: no branch, no index.
// xor of c[b0 + i] over the set bits b0 + i of w, i < n, in time independent of w.
inline u64 bitsel(u64 w, const u64* c, int b0, int n) {
  u64 v = 0;
  for (int i = 0; i < n; ++i) v ^= c[b0 + i] & (0 - ((w >> (b0 + i)) & 1));
  return v;
}
#define MPC_GF_KERNELS(S, CLMUL)                                                                          \
  u64 dot_##S(const u64* a, const u64* b, size_t n) {                                                     \
    u64 h = 0, l = 0;                                                                                     \
    for (size_t k = 0; k < n; ++k) {                                                                      \
      u64 ph, pl;                                                                                         \
      CLMUL(a[k], b[k], ph, pl);                                                                          \
      h ^= ph;                                                                                            \
      l ^= pl;                                                                                            \
    }                                                                                                     \
    return gf_reduce(h, l);                                                                               \
  }                                                                                                       \
  u64 dot_diff_##S(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n) {               \
    u64 h = 0, l = 0;                                                                                     \
    for (size_t k = 0; k < n; ++k) {                                                                      \
      u64 ph, pl;                                                                                         \
      CLMUL(a0[k] ^ a1[k], b0[k] ^ b1[k], ph, pl);                                                        \
      h ^= ph;                                                                                            \
      l ^= pl;                                                                                            \
    }                                                                                                     \
    return gf_reduce(h, l);                                                                               \
  }                                                                                                       \
  void fold_##S(u64* v, size_t h, u64 r) {                                                                \
    for (size_t k = 0; k < h; ++k) {                                                                      \
      u64 ph, pl;                                                                                         \
      CLMUL(r, v[k] ^ v[k + h], ph, pl);                                                                  \
      v[k] ^= gf_reduce(ph, pl);                                                                          \
    }                                                                                                     \
  }                                                                                                       \
  void bytes_moments_##S(const u64* x, const u64* y, const u64* alpha, size_t Q, const u64* ca, const u64* cb, \
                         u64* P) {                                                                        \
    u64 hs[15] = {}, ls[15] = {};                                                                         \
    for (size_t q = 0; q < Q; ++q) {                                                                      \
      u64 A[8], B[8], ph, pl;                                                                             \
      for (int t = 0; t < 8; ++t) {                                                                       \
        CLMUL(alpha[q], bitsel(x[q], ca, 8 * t, 8), ph, pl);                                              \
        A[t] = gf_reduce(ph, pl);                                                                         \
        B[t] = bitsel(y[q], cb, 8 * t, 8);                                                                \
      }                                                                                                   \
      for (int j = 1; j < 8; ++j)                                                                         \
        for (int t = 0; t < 8; ++t) {                                                                     \
          CLMUL(A[t], B[(t - j) & 7], ph, pl);                                                            \
          const int m = t >= j ? 7 + j : j - 1;                                                           \
          hs[m] ^= ph;                                                                                    \
          ls[m] ^= pl;                                                                                    \
        }                                                                                                 \
    }                                                                                                     \
    for (int m = 0; m < 15; ++m) P[m] ^= gf_reduce(hs[m], ls[m]);                                         \
  }                                                                                                       \
  void bytes_fold_##S(const u64* x, const u64* alpha, size_t Q, const u64* c, u64* out) {                 \
    for (size_t q = 0; q < Q; ++q) {                                                                      \
      u64 v = bitsel(x[q], c, 0, 64);                                                                     \
      if (alpha) {                                                                                        \
        u64 ph, pl;                                                                                       \
        CLMUL(alpha[q], v, ph, pl);                                                                       \
        v = gf_reduce(ph, pl);                                                                            \
      }                                                                                                   \
      out[q] = v;                                                                                         \
    }                                                                                                     \
  }

#pragma GCC push_options
#pragma GCC target("pclmul,sse2")
MPC_GF_KERNELS(hw, clmul_hw)
#pragma GCC pop_options
MPC_GF_KERNELS(sw, clmul_sw)
#undef MPC_GF_KERNELS

// AVX-512 VPCLMULQDQ: eight products in two instructions (even words, odd words), the
// reduction on vectors.
// Where the CPU has them and the SIMD level is not forced below AVX-512 (force_simd_level):
// the AVX-512 kernels; the byte-selection ones (bytes_sel: byte-wise bit tests) also need BW.
const bool kCpuVpclmul = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
const bool kCpuVxBytes = kCpuVpclmul && __builtin_cpu_supports("avx512bw");
inline bool have_vpclmul() { return kCpuVpclmul && simd_rank() >= 2; }
inline bool have_vx_bytes() { return kCpuVxBytes && simd_rank() >= 2; }

__attribute__((target("avx512f,vpclmulqdq"))) inline void clmul8(__m512i a, __m512i b, __m512i& lo, __m512i& hi) {
  const __m512i pe = _mm512_clmulepi64_epi128(a, b, 0x00), po = _mm512_clmulepi64_epi128(a, b, 0x11);
  lo = _mm512_maskz_unpacklo_epi64(0xff, pe, po);  // (maskz: GCC 12 warns on the plain form)
  hi = _mm512_maskz_unpackhi_epi64(0xff, pe, po);
}
typedef u64 u64x8 __attribute__((vector_size(64)));  // shifts and xors (GCC 12's intrinsics warn)
__attribute__((target("avx512f,vpclmulqdq"))) inline __m512i reduce8(__m512i lo, __m512i hi) {
  const u64x8 h = reinterpret_cast<u64x8>(hi), t = h ^ (h >> 63) ^ (h >> 61) ^ (h >> 60);
  return reinterpret_cast<__m512i>(reinterpret_cast<u64x8>(lo) ^ t ^ (t << 1) ^ (t << 3) ^ (t << 4));
}
__attribute__((target("avx512f,vpclmulqdq"))) void fold_vx(u64* v, size_t h, u64 r) {
  const __m512i rv = _mm512_set1_epi64(static_cast<long long>(r));
  size_t k = 0;
  for (; k + 8 <= h; k += 8) {
    const __m512i lo = _mm512_loadu_si512(v + k), d = _mm512_xor_si512(lo, _mm512_loadu_si512(v + k + h));
    __m512i pl, ph;
    clmul8(d, rv, pl, ph);
    _mm512_storeu_si512(v + k, _mm512_xor_si512(lo, reduce8(pl, ph)));
  }
  for (; k < h; ++k) v[k] ^= gf_mul(r, v[k] ^ v[k + h]);
}
__attribute__((target("avx512f,vpclmulqdq"))) u64 dot_vx(const u64* a0, const u64* a1, const u64* b0, const u64* b1,
                                                         size_t n) {  // a0, b0 null: plain dot
  __m512i L = _mm512_setzero_si512(), H = _mm512_setzero_si512();
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m512i x = _mm512_loadu_si512(a1 + k), y = _mm512_loadu_si512(b1 + k);
    if (a0) {
      x = _mm512_xor_si512(x, _mm512_loadu_si512(a0 + k));
      y = _mm512_xor_si512(y, _mm512_loadu_si512(b0 + k));
    }
    __m512i pl, ph;
    clmul8(x, y, pl, ph);
    L = _mm512_xor_si512(L, pl);
    H = _mm512_xor_si512(H, ph);
  }
  alignas(64) u64 l[8], hh[8];
  _mm512_store_si512(l, L);
  _mm512_store_si512(hh, H);
  u64 lo = 0, hi = 0;
  for (int i = 0; i < 8; ++i) {
    lo ^= l[i];
    hi ^= hh[i];
  }
  u64 out = gf_reduce(hi, lo);
  for (; k < n; ++k) out ^= a0 ? gf_mul(a0[k] ^ a1[k], b0[k] ^ b1[k]) : gf_mul(a1[k], b1[k]);
  return out;
}

// Lane t = sum_s w[8t + s] cs[s][t] (cs[s] lane t = c[8t + s]): a byte-wise bit test gives,
// for every bit s, the mask of the bytes that have it; eight masked XORs. No branch, no index.
__attribute__((target("avx512f,avx512bw"))) inline __m512i bytes_sel(u64 w, const __m512i* cs) {
  const __m512i sel = _mm512_set_epi64(
      static_cast<long long>(0x8080808080808080ull), 0x4040404040404040ll, 0x2020202020202020ll, 0x1010101010101010ll,
      0x0808080808080808ll, 0x0404040404040404ll, 0x0202020202020202ll, 0x0101010101010101ll);
  const __mmask64 m = _mm512_test_epi8_mask(_mm512_set1_epi64(static_cast<long long>(w)), sel);  // bit 8s + t
  __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int s = 0; s < 8; ++s) acc = _mm512_mask_xor_epi64(acc, static_cast<__mmask8>(m >> (8 * s)), acc, cs[s]);
  return acc;
}
inline void lanes_of(const u64* c, __m512i* cs) {  // cs[s] lane t = c[8t + s]
  for (int s = 0; s < 8; ++s) {
    alignas(64) u64 v[8];
    for (int t = 0; t < 8; ++t) v[t] = c[8 * t + s];
    std::memcpy(&cs[s], v, sizeof v);
  }
}
// bytes_moments with the word's eight A_t and B_t in one vector each: rotating B by j lanes
// pairs A_t with B_{t-j mod 8}, eight products in two instructions.
__attribute__((target("avx512f,avx512bw,vpclmulqdq"))) void bytes_moments_vx(const u64* x, const u64* y,
                                                                            const u64* alpha, size_t Q,
                                                                            const u64* ca, const u64* cb, u64* P) {
  __m512i cas[8], cbs[8];
  lanes_of(ca, cas);
  lanes_of(cb, cbs);
  __m512i lo[8], hi[8];
  for (int j = 0; j < 8; ++j) lo[j] = hi[j] = _mm512_setzero_si512();
  for (size_t q = 0; q < Q; ++q) {
    __m512i pl, ph;
    clmul8(bytes_sel(x[q], cas), _mm512_set1_epi64(static_cast<long long>(alpha[q])), pl, ph);
    const __m512i A = reduce8(pl, ph), B = bytes_sel(y[q], cbs);
    // the even and odd words' products are added up as they come (lo[j], hi[j]: clmul8's
    // halves before its unpacking, which is linear and done once at the end)
#define MPC_GF_ROT(J)                                                                  \
  {                                                                                    \
    const __m512i bj = _mm512_maskz_alignr_epi64(0xff, B, B, 8 - J);                   \
    lo[J] = _mm512_xor_si512(lo[J], _mm512_clmulepi64_epi128(A, bj, 0x00));            \
    hi[J] = _mm512_xor_si512(hi[J], _mm512_clmulepi64_epi128(A, bj, 0x11));            \
  }
    MPC_GF_ROT(1) MPC_GF_ROT(2) MPC_GF_ROT(3) MPC_GF_ROT(4) MPC_GF_ROT(5) MPC_GF_ROT(6) MPC_GF_ROT(7)
#undef MPC_GF_ROT
  }
  for (int j = 1; j < 8; ++j) {
    alignas(64) u64 l[8], h[8];
    _mm512_store_si512(l, _mm512_maskz_unpacklo_epi64(0xff, lo[j], hi[j]));
    _mm512_store_si512(h, _mm512_maskz_unpackhi_epi64(0xff, lo[j], hi[j]));
    for (int t = 0; t < 8; ++t) P[t >= j ? 7 + j : j - 1] ^= gf_reduce(h[t], l[t]);
  }
}
// 128-bit lanes (a0 ^ a1, a2 ^ a3, b0 ^ b1, b2 ^ b3).
__attribute__((target("avx512f"))) inline __m512i pairs(__m512i a, __m512i b) {
  return _mm512_xor_si512(_mm512_maskz_shuffle_i64x2(0xff, a, b, 0x88), _mm512_maskz_shuffle_i64x2(0xff, a, b, 0xDD));
}
// out[0..8) = alpha[0..8) * v (v alone without alpha): the last step of bytes_fold.
__attribute__((target("avx512f,vpclmulqdq"))) inline void store_times(u64* out, __m512i v, const u64* alpha) {
  if (alpha) {
    __m512i pl, ph;
    clmul8(v, _mm512_loadu_si512(alpha), pl, ph);
    v = reduce8(pl, ph);
  }
  _mm512_storeu_si512(out, v);
}
// bytes_fold for eight words at a time: each word's eight byte sums (bytes_sel), then the
// lanes of the eight vectors added up by a transposing tree (lane q of the result: word q).
__attribute__((target("avx512f,avx512bw,vpclmulqdq"))) void bytes_fold_vx(const u64* x, const u64* alpha, size_t Q,
                                                                          const u64* c, u64* out) {
  __m512i cs[8];
  lanes_of(c, cs);
  size_t q = 0;
  for (; q + 8 <= Q; q += 8) {
    __m512i W[4];
    for (int j = 0; j < 4; ++j) {  // within each 128-bit lane i: (V_2j[2i] ^ V_2j[2i+1], V_2j+1[...])
      const __m512i a = bytes_sel(x[q + 2 * j], cs), b = bytes_sel(x[q + 2 * j + 1], cs);
      W[j] = _mm512_xor_si512(_mm512_maskz_unpacklo_epi64(0xff, a, b), _mm512_maskz_unpackhi_epi64(0xff, a, b));
    }
    __m512i acc = pairs(pairs(W[0], W[1]), pairs(W[2], W[3]));
    store_times(out + q, acc, alpha ? alpha + q : nullptr);
  }
  if (q < Q) bytes_fold_hw(x + q, alpha ? alpha + q : nullptr, Q - q, c, out + q);
}

// bytes_fold with GFNI: out_q = sum_b [bit b of x_q] c_b is a GF(2) product (the word's bits
// times a 64 x 64 matrix), in 8 x 8 blocks for eight words at a time: with
//   M_I (lane J): byte 7 - r, bit i = bit 8J + r of c_{8I+i}
// and D_I the eight words' bytes I (byte k: word k's), GF2P8AFFINEQB(D_I broadcast, M_I) holds
// in lane J, byte k the part of byte J of out_k that byte I of x_k contributes; their sum over I,
// byte-transposed, is out for the eight words; then alpha as in bytes_fold_vx. Data-independent.
__attribute__((target("avx512f,avx512bw,avx512vbmi,gfni,vpclmulqdq"))) void bytes_fold_gfni(const u64* x,
                                                                                           const u64* alpha,
                                                                                           size_t Q, const u64* c,
                                                                                           u64* out) {
  alignas(64) u64 mats[8][8] = {};  // [I][J]
  for (int I = 0; I < 8; ++I)
    for (int J = 0; J < 8; ++J)
      for (int r = 0; r < 8; ++r)
        for (int i = 0; i < 8; ++i) mats[I][J] |= ((c[8 * I + i] >> (8 * J + r)) & 1) << (8 * (7 - r) + i);
  __m512i M[8];
  for (int I = 0; I < 8; ++I) M[I] = _mm512_load_si512(mats[I]);
  alignas(64) uint8_t idx[64];  // lane L, byte k = byte L of word k (its own inverse)
  for (int L = 0; L < 8; ++L)
    for (int k = 0; k < 8; ++k) idx[8 * L + k] = static_cast<uint8_t>(8 * k + L);
  const __m512i tr = _mm512_load_si512(idx);
  size_t q = 0;
  for (; q + 8 <= Q; q += 8) {
    const __m512i bytes = _mm512_maskz_permutexvar_epi8(~__mmask64{0}, tr, _mm512_loadu_si512(x + q));
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int I = 0; I < 8; ++I) {
      const __m512i di = _mm512_maskz_permutexvar_epi64(0xff, _mm512_set1_epi64(I), bytes);
      acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8(di, M[I], 0));
    }
    acc = _mm512_maskz_permutexvar_epi8(~__mmask64{0}, tr, acc);
    store_times(out + q, acc, alpha ? alpha + q : nullptr);
  }
  if (q < Q) bytes_fold_hw(x + q, alpha ? alpha + q : nullptr, Q - q, c, out + q);
}
const bool kCpuGfniBytes = kCpuVxBytes && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
inline bool have_gfni_bytes() { return kCpuGfniBytes && simd_rank() >= 2; }

u64 gf_dot(const u64* a, const u64* b, size_t n) {
  return have_vpclmul() ? dot_vx(nullptr, a, nullptr, b, n) : kHavePclmul ? dot_hw(a, b, n) : dot_sw(a, b, n);
}

}  // namespace

// Test hook: every build of the AND-proof kernels (portable, PCLMULQDQ, AVX-512 VPCLMULQDQ)
// agrees on pseudo-random inputs (those the CPU lacks are skipped).
bool gf_kernels_agree(u64 seed, size_t n) {
  if (!kHavePclmul) return true;
  Key k{};
  std::memcpy(k.data(), &seed, 8);
  Prg g(k);
  Vec a = g.next(2 * n), b = g.next(2 * n), ta = g.next(2048), tb = g.next(2048), al = g.next(n);
  bool ok = dot_hw(a.data(), b.data(), 2 * n) == dot_sw(a.data(), b.data(), 2 * n);
  ok &= dot_diff_hw(a.data(), a.data() + n, b.data(), b.data() + n, n) ==
        dot_diff_sw(a.data(), a.data() + n, b.data(), b.data() + n, n);
  {  // the first step's rotated sums (AVX-512 mask registers where the CPU has them)
    std::vector<u64> s1(7 * 64, 0), s2(7 * 64, 0);
    gr::xor_spread_rot(s1.data(), a.data(), b.data(), al.data(), n);
    gr::xor_spread_rot_generic(s2.data(), a.data(), b.data(), al.data(), n);
    ok &= s1 == s2;
    for (int d = 1; d < 8 && ok; ++d) {  // against xor_spread on rotated words
      Vec yr(n, 0);
      for (size_t k = 0; k < n; ++k)
        for (int t = 0; t < 8; ++t) {
          const u64 byte = (b[k] >> (8 * t)) & 255, rot = ((byte << d) | (byte >> (8 - d))) & 255;
          yr[k] |= rot << (8 * t);
        }
      u64 s3[64] = {};
      gr::xor_spread(s3, a.data(), yr.data(), al.data(), n);
      ok &= std::memcmp(s3, s1.data() + (d - 1) * 64, sizeof s3) == 0;
    }
  }
  Vec o1(n), o2(n), o4(n), o5(n), v1 = a, v2 = a;
  const u64 *ca = ta.data(), *cb = tb.data();  // 64 coefficients each
  bytes_fold_hw(a.data(), al.data(), n, ca, o1.data());
  bytes_fold_sw(a.data(), al.data(), n, ca, o2.data());
  bytes_fold_hw(a.data(), nullptr, n, ca, o4.data());
  bytes_fold_sw(a.data(), nullptr, n, ca, o5.data());
  ok &= o4 == o5;
  for (size_t q = 0; q < n && ok; ++q) {  // against the definition
    u64 v = 0;
    for (int bit = 0; bit < 64; ++bit)
      if ((a[q] >> bit) & 1) v ^= ca[bit];
    ok &= o5[q] == v;
  }
  u64 m1[15] = {}, m2[15] = {}, m3[15] = {};
  bytes_moments_hw(a.data(), b.data(), al.data(), n, ca, cb, m1);
  bytes_moments_sw(a.data(), b.data(), al.data(), n, ca, cb, m2);
  ok &= std::memcmp(m1, m2, sizeof m1) == 0;
  fold_hw(v1.data(), n, b[0]);
  fold_sw(v2.data(), n, b[0]);
  ok &= o1 == o2 && v1 == v2;
  if (have_vx_bytes()) {
    bytes_moments_vx(a.data(), b.data(), al.data(), n, ca, cb, m3);
    ok &= std::memcmp(m3, m2, sizeof m3) == 0;
    Vec o3(n), o6(n);
    bytes_fold_vx(a.data(), al.data(), n, ca, o3.data());
    bytes_fold_vx(a.data(), nullptr, n, ca, o6.data());
    ok &= o3 == o2 && o6 == o5;
    if (have_gfni_bytes()) {
      bytes_fold_gfni(a.data(), al.data(), n, ca, o3.data());
      bytes_fold_gfni(a.data(), nullptr, n, ca, o6.data());
      ok &= o3 == o2 && o6 == o5;
    }
  }
  if (have_vpclmul()) {
    Vec v3 = a;
    fold_vx(v3.data(), n, b[0]);
    ok &= v3 == v2 && dot_vx(nullptr, a.data(), nullptr, b.data(), 2 * n) == dot_sw(a.data(), b.data(), 2 * n);
    ok &= dot_vx(a.data(), a.data() + n, b.data(), b.data() + n, n) ==
          dot_diff_sw(a.data(), a.data() + n, b.data(), b.data() + n, n);
  }
  return ok;
}

namespace {

struct BitFirst;
struct GF {
  static constexpr int W = 1;
  using First = BitFirst;  // the AND proof's first step
  template <class K>
  static u64 summed(size_t n, K&& kernel) {
    u64 parts[kChunks];
    const size_t c = parallel_ranges(n, kGrainWords, kChunks, [&](size_t i, size_t k0, size_t k1) { parts[i] = kernel(k0, k1); });
    u64 out = 0;
    for (size_t i = 0; i < c; ++i) out ^= parts[i];
    return out;
  }
  static void inner(const u64* a, const u64* b, size_t n, u64* out) {
    *out = summed(n, [&](size_t k0, size_t k1) { return gf_dot(a + k0, b + k0, k1 - k0); });
  }
  static void inner_diff(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out) {
    *out = summed(n, [&](size_t k0, size_t k1) {
      const size_t m = k1 - k0;
      return have_vpclmul()  ? dot_vx(a0 + k0, a1 + k0, b0 + k0, b1 + k0, m)
             : kHavePclmul ? dot_diff_hw(a0 + k0, a1 + k0, b0 + k0, b1 + k0, m)
                           : dot_diff_sw(a0 + k0, a1 + k0, b0 + k0, b1 + k0, m);
    });
  }
  static void add(u64* a, const u64* b) { *a ^= *b; }
  static void sub(u64* a, const u64* b) { *a ^= *b; }
  static void mul(const u64* a, const u64* b, u64* out) { *out = gf_mul(*a, *b); }
  static void from_challenge(u64 r, u64* out) { *out = r; }
  static u64 mask(u64 r) { return r; }
  static void fold(Vec& v, size_t h, u64 r) {
    if (have_vpclmul()) fold_vx(v.data(), h, r);
    else if (kHavePclmul) fold_hw(v.data(), h, r);
    else fold_sw(v.data(), h, r);
    v.resize(h);
  }
};

// The first steps of the AND proof, on bit-sliced words. The statement is
//   sum_q alpha_q sum_b beta_b X_q[b] Y_q[b] = c        (X_q at L, Y_q at R, 64-bit words)
// (coefficient alpha_w beta_b per bit: a non-zero error survives with probability <= 2^-63).
// Two 8-ary steps take every word to one field element. The first folds the 8 bits s of every
// byte t (b = 8t + s): with
//   f_{q,t}(Z) = alpha_q sum_s beta_{8t+s} X_q[8t+s] Z^s,   h_{q,t}(Z) = sum_s Y_q[8t+s] Z^(7-s),
// c is the coefficient of Z^7 of p = sum_{q,t} f h (degree 14), and the prover sends the other
// 14 coefficients: P_{7+d} = sum_b beta_b S_d[b], S_d[8t+s] = sum_q alpha_q X_q[8t+s] Y_q[8t+s-d]
// for -7 <= d <= 7, d != 0 (d and d - 8 together: X_q & Y_q with every byte rotated by d, one
// bit-selected sum per word and rotation). After the challenge r1 the claim is about
// A_{q,t} = f_{q,t}(r1) = alpha_q sum_s X_q[8t+s] beta_{8t+s} r1^s and B_{q,t} = h_{q,t}(r1) =
// sum_s Y_q[8t+s] r1^(7-s), which are never stored: the second step folds the 8 bytes of a word
// the same way (f'_q(Z) = sum_t A_{q,t} Z^t, h'_q(Z) = sum_t B_{q,t} Z^(7-t); the prover's 14
// coefficients are sums of the word's products A_t B_t'), and after r2 the vectors are
// A'_q = alpha_q sum_b X_q[b] beta_b r1^s r2^t and B'_q = sum_b Y_q[b] r1^(7-s) r2^(7-t): one
// element per word. The bits of X and Y (share components) only mask coefficients (no table
// indexed by them, no branch on them). A wrong p survives each step
// with probability <= 14 / (2^64 - 2).
struct BitFirst {
  static constexpr int kVals = 14;  // the coefficients of Z^0..Z^14 but Z^7
  Vec px, py, lx, ry;  // prover's X and Y words, L's X (for its next party), R's Y (previous)
  Vec alpha;           // per word pair q
  u64 beta[64] = {};
  u64 lshare[kVals] = {};  // as L of next: its shares of the 14 values sent (order of the message)
  int stage = 0;
  u64 r1 = 0, r1_next = 0, r1_prev = 0;  // the first step's challenges: as prover, L, R

  static void powers(u64 r, u64 pw[8]) {
    pw[0] = 1;
    for (int j = 1; j < 8; ++j) pw[j] = gf_mul(pw[j - 1], r);
  }
  // The X side's coefficients (with beta) and the Y side's, per bit b = 8t + s, after the first
  // step's challenge r and, if r2 is given, the second's.
  void coefs(u64 r, const u64* r2, u64* ca, u64* cb) const {
    u64 p[8], p2[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    powers(r, p);
    if (r2) powers(*r2, p2);
    for (int b = 0; b < 64; ++b) {
      const int s = b & 7, t = b >> 3;
      ca[b] = gf_mul(gf_mul(beta[b], p[s]), p2[t]);
      cb[b] = gf_mul(p[7 - s], p2[7 - t]);
    }
  }
  void prover_values(u64* sent) const {
    u64 P[15] = {};
    if (stage == 0) {
      std::vector<u64> S(7 * 64, 0);
      std::vector<u64> parts(kChunks * 7 * 64, 0);
      const size_t c = parallel_ranges(px.size(), kGrainWords, kChunks, [&](size_t i, size_t k0, size_t k1) {
        gr::xor_spread_rot(parts.data() + i * 7 * 64, px.data() + k0, py.data() + k0, alpha.data() + k0, k1 - k0);
      });
      for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < S.size(); ++j) S[j] ^= parts[i * 7 * 64 + j];
      for (int d = 1; d < 8; ++d)
        for (int b = 0; b < 64; ++b) P[(b & 7) >= d ? 7 + d : d - 1] ^= gf_mul(beta[b], S[(d - 1) * 64 + b]);
    } else {
      u64 ca[64], cb[64];
      coefs(r1, nullptr, ca, cb);
      u64 parts[kChunks][15] = {};
      const size_t c = parallel_ranges(px.size(), kGrainWords, kChunks, [&](size_t i, size_t k0, size_t k1) {
        const u64 *x = px.data() + k0, *y = py.data() + k0, *al = alpha.data() + k0;
        if (have_vx_bytes()) bytes_moments_vx(x, y, al, k1 - k0, ca, cb, parts[i]);
        else if (kHavePclmul) bytes_moments_hw(x, y, al, k1 - k0, ca, cb, parts[i]);
        else bytes_moments_sw(x, y, al, k1 - k0, ca, cb, parts[i]);
      });
      for (size_t i = 0; i < c; ++i)
        for (int m = 0; m < 15; ++m) P[m] ^= parts[i][m];
    }
    for (int m = 0, k = 0; m < 15; ++m)
      if (m != 7) sent[k++] = P[m];
  }
  // A verifier's next claim share: p(r) from its shares of the 14 coefficients and of c.
  void next_claim(u64* c, const u64* v14, u64 r) const {
    u64 acc = v14[13];  // Z^14
    for (int m = 13; m >= 0; --m) acc = gf_mul(acc, r) ^ (m == 7 ? *c : v14[m < 7 ? m : m - 1]);
    *c = acc;
  }
  // After the first step: keeps its challenges, one more step to go.
  bool more(u64 r, u64 r_next, u64 r_prev) {
    if (stage) return false;
    stage = 1;
    r1 = r;
    r1_next = r_next;
    r1_prev = r_prev;
    return true;
  }
  size_t out_len() const { return px.size(); }  // one element per word; every role has as many
  static void fold(const Vec& W, const Vec* alpha, const u64* c, u64* out) {
    parallel_ranges(W.size(), kGrainWords, kChunks, [&](size_t, size_t k0, size_t k1) {
      const u64* al = alpha ? alpha->data() + k0 : nullptr;
      if (have_gfni_bytes()) bytes_fold_gfni(W.data() + k0, al, k1 - k0, c, out + k0);
      else if (have_vx_bytes()) bytes_fold_vx(W.data() + k0, al, k1 - k0, c, out + k0);
      else if (kHavePclmul) bytes_fold_hw(W.data() + k0, al, k1 - k0, c, out + k0);
      else bytes_fold_sw(W.data() + k0, al, k1 - k0, c, out + k0);
    });
  }
  // The folded vectors of the four roles (from element 2 on): as prover with r, as L of next
  // with r_next, as R of previous with r_prev (the second step's challenges).
  void fold_all(u64 r, u64 r_next, u64 r_prev, u64* pa, u64* pb, u64* la, u64* rb) const {
    u64 ca[64], cb[64];
    coefs(r1, &r, ca, cb);
    fold(px, &alpha, ca, pa);
    fold(py, nullptr, cb, pb);
    coefs(r1_next, &r_next, ca, cb);
    fold(lx, &alpha, ca, la);
    coefs(r1_prev, &r_prev, ca, cb);
    fold(ry, nullptr, cb, rb);
  }
};

// The first step of the elementwise products' proof (GR): a K-ary step on words (K = kEwGroup),
// the counterpart of BitFirst. Prover P's cross terms lie in groups of K (each item's block of
// terms padded with zeros to whole groups); term Kg + s of a block has the coefficient
// alpha_g beta_s (alpha per group, beta per slot, from the coin), so P's statement is
//   sum_g alpha_g sum_s beta_s X_g[s] Y_g[s] = c        (X at P and L, Y at P and R: words)
// (a non-zero error in P's messages survives this compression with probability <= 2 / 2^48: it
// is a polynomial of degree 2 in the coins). With f_g(Z) = alpha_g sum_s beta_s X_g[s] Z^s and
// h_g(Z) = sum_t Y_g[t] Z^(K-1-t), c is the coefficient of Z^(K-1) of p = sum_g f_g h_g (degree
// 2K - 2). The prover sends its other 2K - 2 coefficients
//   P_m = sum_{s - t = m - K + 1} beta_s N_{s,t},   N_{s,t} = sum_g alpha_g X_g[s] Y_g[t]
// (word products added up by the coins' bits: no product of ring elements per term), the
// verifiers take p(r) as the next claim (a wrong p survives with probability
// <= (2K - 2) / (2^48 - 2)) and the vectors become f_g(r) and h_g(r): one element per group,
// K times shorter.
struct EwFirst {
  static constexpr int kK = kEwGroup, kVals = 2 * kK - 2;
  Vec px, py, lx, ry;  // words in groups of K: prover's X and Y, L's X (next's), R's Y (previous')
  Vec pal, lal;        // alpha per group of px (and py), of lx
  u64 beta[kK] = {};
  u64 lshare[kVals * D] = {};  // as L of next: its shares of the values sent

  size_t out_len() const { return std::max({px.size(), lx.size(), ry.size()}) / kK; }
  bool more(u64, u64, u64) { return false; }  // one step
  // Appends a block of n words, padded with zeros to whole groups.
  static void append(Vec& v, const Vec& w) {
    v.insert(v.end(), w.begin(), w.end());
    v.resize(v.size() + (kK - w.size() % kK) % kK, 0);
  }
  void prover_values(u64* vals) const {
    Vec N(D * kK * kK);
    std::fill(N.begin(), N.end(), 0);
    {
      const size_t G = px.size() / kK, NW = N.size();
      Vec parts(kChunks * NW);
      const size_t c = parallel_ranges(G, kGrainGR, kChunks, [&](size_t i, size_t g0, size_t g1) {
        u64* Ni = parts.data() + i * NW;
        std::memset(Ni, 0, NW * sizeof(u64));
        gr::moments<kK>(px.data() + g0 * kK, py.data() + g0 * kK, pal.data() + g0, g1 - g0, Ni);
      });
      for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < NW; ++j) N[j] += parts[i * NW + j];
    }
    for (int m = 0, k = 0; m < 2 * kK - 1; ++m) {
      if (m == kK - 1) continue;
      u64 acc[gr::kWide] = {};
      for (int s = 0; s < kK; ++s) {
        const int t = s - m + kK - 1;
        if (t < 0 || t >= kK) continue;
        u64 e[D];
        for (int c = 0; c < D; ++c) e[c] = N[(c * kK + s) * kK + t];
        gr::mac_a(acc, beta[s], e);
      }
      gr::reduce(acc, vals + k * D);
      ++k;
    }
  }
  // c <- p(r) = sum_{m != K-1} v_m r^m + c r^(K-1) (v: the shares of the values sent, in order).
  void next_claim(u64* c, const u64* v, u64 rbits) const {
    u64 r[D], acc[D], t[D];
    GRF::from_challenge(rbits, r);
    std::memcpy(acc, v + (kVals - 1) * D, sizeof acc);  // m = 2K - 2
    for (int m = 2 * kK - 3; m >= 0; --m) {
      gr::mul(acc, r, t);
      gr::add(t, m == kK - 1 ? c : v + (m < kK - 1 ? m : m - 1) * D);
      std::memcpy(acc, t, sizeof acc);
    }
    std::memcpy(c, acc, sizeof acc);
  }
  // ca_s = beta_s r^s (the X side), cb_t = r^(K-1-t) (the Y side).
  void coefs(u64 rbits, u64* ca, u64* cb) const {
    u64 r[D], pw[kK][D];
    GRF::from_challenge(rbits, r);
    std::memset(pw[0], 0, sizeof pw[0]);
    pw[0][0] = 1;
    for (int j = 1; j < kK; ++j) gr::mul(pw[j - 1], r, pw[j]);
    for (int s = 0; s < kK; ++s) {
      u64 acc[gr::kWide] = {};
      gr::mac_a(acc, beta[s], pw[s]);
      gr::reduce(acc, ca + s * D);
      std::memcpy(cb + s * D, pw[kK - 1 - s], D * sizeof(u64));
    }
  }
  void fold_all(u64 r, u64 r_next, u64 r_prev, u64* pa, u64* pb, u64* la, u64* rb) const {
    const size_t L = out_len();
    auto put = [&](const Vec& w, const Vec* al, const u64* coef, u64* out) {
      const size_t G = w.size() / kK;
      parallel_ranges(G, kGrainGR, kChunks, [&](size_t, size_t g0, size_t g1) {
        gr::combine<kK>(w.data() + g0 * kK, g1 - g0, coef, al ? al->data() + g0 : nullptr, out + g0 * D);
      });
      std::memset(out + G * D, 0, (L - G) * D * sizeof(u64));
    };
    u64 ca[kK * D], cb[kK * D];
    coefs(r, ca, cb);
    put(px, &pal, ca, pa);
    put(py, nullptr, cb, pb);
    coefs(r_next, ca, cb);
    put(lx, &lal, ca, la);
    coefs(r_prev, ca, cb);
    put(ry, nullptr, cb, rb);
  }
};

template <class F>
u64 draw_challenge(Prg& g) {  // uniform over the challenge set minus {0, 1}: prod(1 - r) stays a unit
  u64 r = 0;
  while (r <= 1) {
    g.fill(&r, 1);
    r = F::mask(r);
  }
  return r;
}

// A verifier's share of the claim after a step: p(r) = p0 + p1 r + p2 r^2 with
// p1 = c - 2 p0 - p2 (the prover's claim is p(0) + p(1) = c; the verifiers derive p1).
template <class F>
void next_claim(u64* c, const u64* p0, const u64* p2, u64 rbits) {
  constexpr int W = F::W;
  u64 p1[W], r[W], t[W], u[W];
  std::memcpy(p1, c, sizeof p1);
  F::sub(p1, p0);
  F::sub(p1, p0);
  F::sub(p1, p2);
  F::from_challenge(rbits, r);
  F::mul(p2, r, t);  // Horner: (p2 r + p1) r + p0
  F::add(t, p1);
  F::mul(t, r, u);
  F::add(u, p0);
  std::memcpy(c, u, sizeof u);
}

// One prover's statement as this party sees it in its three roles, and the streams each
// role shares (see verify()).
template <class F>
struct Proof {
  static constexpr int W = F::W;
  Vec pa, pb, la, rb;  // prover: a (also at L), b (also at R); L of next: a; R of previous: b
  u64 cl[W] = {}, cr[W] = {};
  size_t len = 0;
  Prg pl_p, pl_l, pr_p, pr_r, lr_r, lr_l;
  using First = typename F::First;
  std::unique_ptr<First> bf;  // a k-ary first step on words (BitFirst, EwFirst), until it is taken
  u64 r_prev = 0;  // the challenge sent to the previous party (as its R) this step
  u64 lp0[W], lp2[W];

  Proof(Prg& next_key, Prg& prev_key, int me) {
    Key kn[3], kp[3];
    for (auto& k : kn) k = key_from(next_key);
    for (auto& k : kp) k = key_from(prev_key);
    pl_p = Prg(kp[0]);
    pl_l = Prg(kn[0]);
    pr_p = Prg(kn[1]);
    pr_r = Prg(kp[1]);
    lr_r = Prg(kn[2]);
    lr_l = Prg(kp[2]);
    for (Prg* g : {&pl_p, &pl_l, &pr_p, &pr_r, &lr_r, &lr_l}) g->set_owner(me);
  }
  // m elements, uninitialised but the masks' (0 and 1, zero until mask()): the caller writes
  // every other element of the four vectors (zero where a role has fewer, see zero_from).
  void resize(size_t m) {
    len = m;
    for (Vec* v : {&pa, &pb, &la, &rb}) {
      *v = Vec();
      v->reserve((m + 1) * W);  // an odd length gains a zero element in place (step_send)
      v->resize(m * W);
      std::memset(v->data(), 0, std::min<size_t>(m, 2) * W * 8);
    }
  }
  static void zero_from(Vec& v, size_t k) { std::memset(v.data() + k * W, 0, (v.size() - k * W) * 8); }
  // Elements 0 and 1: the masks, a = (alpha, 0) with alpha from PL and b = (0, beta) with beta
  // from PR. Their inner product is zero, so the claim stays the verifiers' own (nothing in it
  // comes from the prover), while the last a and b, which L and R open to each other, carry
  // alpha and beta with unit weights (prod(1 - r), r prod(1 - r): r is in A minus {0, 1}).
  void mask() {
    Vec alpha = pl_p.next(W), beta = pr_p.next(W);
    std::memcpy(pa.data(), alpha.data(), W * 8);
    std::memcpy(pb.data() + W, beta.data(), W * 8);
    Vec a_l = pl_l.next(W), b_r = pr_r.next(W);
    std::memcpy(la.data(), a_l.data(), W * 8);
    std::memcpy(rb.data() + W, b_r.data(), W * 8);
  }
  bool active() const { return bf || len > 1; }
  size_t step_words() const { return bf ? First::kVals * W : 2 * W; }
  // The prover's message of this step (R's shares of p0, p2).
  void step_send(Vec& msg) {
    if (bf) {  // R's shares of the first step's values (L's come from the stream PL)
      constexpr size_t n = First::kVals * W;
      Vec vals(n);
      bf->prover_values(vals.data());
      Vec lp = pl_p.next(n), ll = pl_l.next(n);
      for (int i = 0; i < First::kVals; ++i) F::sub(vals.data() + i * W, lp.data() + i * W);
      msg.insert(msg.end(), vals.begin(), vals.end());
      std::memcpy(bf->lshare, ll.data(), n * sizeof(u64));
      return;
    }
    if (len % 2) {  // an odd length gets a zero element (the same at every party: len is public)
      for (Vec* v : {&pa, &pb, &la, &rb}) v->resize((len + 1) * W, 0);
      ++len;
    }
    const size_t h = len / 2;
    u64 p0[W], p2[W];
    F::inner(pa.data(), pb.data(), h, p0);
    F::inner_diff(pa.data(), pa.data() + h * W, pb.data(), pb.data() + h * W, h, p2);
    Vec l0 = pl_p.next(W), l2 = pl_p.next(W);
    F::sub(p0, l0.data());
    F::sub(p2, l2.data());
    msg.insert(msg.end(), p0, p0 + W);
    msg.insert(msg.end(), p2, p2 + W);
    Vec a = pl_l.next(W), b = pl_l.next(W);  // as L of next: its shares come from our stream
    std::memcpy(lp0, a.data(), W * 8);
    std::memcpy(lp2, b.data(), W * 8);
  }
  // As R of the previous party: its message, then this step's challenge for it.
  const u64* rp = nullptr;
  void step_recv(const u64* msg) {
    rp = msg;
    r_prev = draw_challenge<F>(lr_r);
  }
  void step_finish(u64 r_from_next, const u64* rmsg) {
    if (bf) {
      const u64 r_next = draw_challenge<F>(lr_l), r = F::mask(r_from_next);
      bf->next_claim(cl, bf->lshare, r_next);
      bf->next_claim(cr, rmsg, r_prev);
      if (bf->more(r, r_next, r_prev)) return;
      resize(2 + bf->out_len());
      bf->fold_all(r, r_next, r_prev, pa.data() + 2 * W, pb.data() + 2 * W, la.data() + 2 * W, rb.data() + 2 * W);
      mask();
      bf.reset();
      return;
    }
    const size_t h = len / 2;
    const u64 r_next = draw_challenge<F>(lr_l);  // as L of next: the challenge R sent it
    next_claim<F>(cl, lp0, lp2, r_next);
    F::fold(la, h, r_next);
    next_claim<F>(cr, rmsg, rmsg + W, r_prev);
    F::fold(rb, h, r_prev);
    const u64 r = F::mask(r_from_next);  // out-of-set bits would only fail the check
    F::fold(pa, h, r);
    F::fold(pb, h, r);
    len = h;
  }
  // The last a * b: L sends (a, c_L) to R (its previous party), R sends (b, c_R) to L.
  void open_msgs(Vec& to_prev, Vec& to_next) const {
    to_prev.insert(to_prev.end(), la.begin(), la.begin() + W);
    to_prev.insert(to_prev.end(), cl, cl + W);
    to_next.insert(to_next.end(), rb.begin(), rb.begin() + W);
    to_next.insert(to_next.end(), cr, cr + W);
  }
  static bool holds(const u64* a, const u64* b, const u64* c1, const u64* c2) {
    u64 prod[W], sum[W];
    F::mul(a, b, prod);
    std::memcpy(sum, c1, sizeof sum);
    F::add(sum, c2);
    return std::memcmp(prod, sum, sizeof sum) == 0;
  }
  // from_prev: R's (b, c_R) for next's proof; from_next: L's (a, c_L) for previous' proof.
  bool next_holds(const u64* from_prev) const { return holds(la.data(), from_prev, cl, from_prev + W); }
  bool prev_holds(const u64* from_next) const { return holds(from_next, rb.data(), from_next + W, cr); }
};


}  // namespace

// ------------------------------------------------------------------ setup
Mal3::Mal3(Comm& comm) : Rep3(comm) {
  balanced_ = false;  // the proofs take each product's sent word as component a (Rep3::reshare)
  MsgKind kind(comm_, "setup");
  OpScope s(stats(), "setup");
  u64 msg[4];
  commit_next_seed(msg);
  comm_.send(next_, msg, 4);
  comm_.send(prev_, msg, 4);
  for (int from : {next_, prev_}) {
    comm_.recv(from, msg, 4);
    std::memcpy(peer_commit_[from], msg, 32);
  }
  comm_.round();
}

void Mal3::commit_next_seed(u64 out[4]) {
  os_random_bytes(seed_, sizeof seed_);
  uint8_t c[32];
  commitment(seed_, me_, c);
  std::memcpy(out, c, 32);
}

// ------------------------------------------------------------------ opening
Vec Mal3::reveal(const Share& x, int to) {
  if (to < -1 || to > 2) throw ArgError("reveal target must be -1 (all), 0, 1 or 2");
  verify();  // nothing is opened before every product so far is proven
  MsgKind kind(comm_, "reveal");
  OpScope s(stats(), "reveal");
  const size_t n = x.size();
  // Party i lacks x_{i+2}: its next party holds it as b, its previous party as a.
  if (to == -1 || to == prev_) comm_.send(prev_, x.b);
  if (to == -1 || to == next_) comm_.send(next_, x.a);
  comm_.round();
  if (to != -1 && to != me_) return {};
  Vec out = comm_.recv(next_, n), other = comm_.recv(prev_, n);
  if (out != other)
    throw CheatingDetected("reveal: the two parties holding a share component sent different values");
  for (size_t i = 0; i < n; ++i) out[i] += x.a[i] + x.b[i];
  return out;
}

// ------------------------------------------------------------------ products
std::vector<Share> Mal3::products(const std::vector<Product>& list) { return products_with(list, 0, 0); }

std::vector<Share> Mal3::products_with(const std::vector<Product>& list, uint8_t zx, uint8_t zy) {
  size_t per = 0;  // the most cross terms any prover has per element
  for (int P = 0; P < 3; ++P) {
    const auto [t1, t2] = cross_terms(zx, zy, P);
    per = std::max<size_t>(per, t1 + t2);
  }
  size_t eterms = 0;
  for (auto& p : list) eterms += p.kind == Product::kElementwise ? per * p.x->size() : 0;
  if (eterms > kMaxPendingTerms) {
    // One call this large would hold its whole proof in memory at once: its elementwise items
    // run as chunks of elements (a resharing round each), proven as the bound is reached.
    std::vector<Share> out(list.size());
    std::vector<Product> rest;
    std::vector<size_t> rest_at;
    for (size_t t = 0; t < list.size(); ++t)
      if (list[t].kind != Product::kElementwise) {
        rest.push_back(list[t]);
        rest_at.push_back(t);
      }
    if (!rest.empty()) {
      std::vector<Share> r = products_with(rest, zx, zy);
      for (size_t i = 0; i < rest.size(); ++i) out[rest_at[i]] = std::move(r[i]);
    }
    const size_t chunk = std::max<size_t>(1, kMaxPendingTerms / std::max<size_t>(per, 1));
    auto part = [](const Share& v, size_t e0, size_t e1) {
      Share c{{static_cast<int64_t>(e1 - e0)}, Vec(v.a.begin() + e0, v.a.begin() + e1),
              Vec(v.b.begin() + e0, v.b.begin() + e1)};
      c.a_zero = v.a_zero;
      c.b_zero = v.b_zero;
      return c;
    };
    for (size_t t = 0; t < list.size(); ++t) {
      if (list[t].kind != Product::kElementwise) continue;
      const Share &x = *list[t].x, &y = *list[t].y;
      const size_t n = x.size();
      out[t] = Share{x.shape, Vec(n), Vec(n)};
      for (size_t e0 = 0; e0 < n; e0 += chunk) {
        const size_t e1 = std::min(n, e0 + chunk);
        const Share xc = part(x, e0, e1), yc = part(y, e0, e1);
        Share z = std::move(products_with({{Product::kElementwise, &xc, &yc, {}}}, zx, zy)[0]);
        std::copy(z.a.begin(), z.a.end(), out[t].a.begin() + e0);
        std::copy(z.b.begin(), z.b.end(), out[t].b.begin() + e0);
      }
    }
    return out;
  }
  if (pending_terms_ && pending_terms_ + eterms > kMaxPendingTerms) verify();  // before the PRG offsets
  Record r;
  r.zx = zx;
  r.zy = zy;
  r.blk_next = prg_next_.blocks_used();
  r.blk_prev = prg_prev_.blocks_used();
  std::vector<Share> out = Rep3::products(list);
  r.xs.reserve(list.size());
  r.ys.reserve(list.size());
  for (size_t t = 0; t < list.size(); ++t) {
    r.xs.push_back(*list[t].x);
    r.ys.push_back(*list[t].y);
    Product p = list[t];
    p.x = &r.xs.back();
    p.y = &r.ys.back();
    r.items.push_back(p);
    r.offset.push_back(r.total);
    r.size.push_back(out[t].size());
    r.total += out[t].size();
  }
  r.mine.reserve(r.total);
  r.got.reserve(r.total);
  for (auto& o : out) {
    r.mine.insert(r.mine.end(), o.a.begin(), o.a.end());
    r.got.insert(r.got.end(), o.b.begin(), o.b.end());
  }
  pending_terms_ += eterms;
  if (r.total) pending_.push_back(std::move(r));
  if (pending_terms_ >= kMaxPendingTerms) verify();  // bounds the proof's memory
  return out;
}

// ------------------------------------------------------------------ verification
void Mal3::verify() {
  if (pending_.empty() && ands_.empty() && zeros_.empty()) return;
  prove();
  if (zeros_.empty()) return;
  // Input ranges: every pending z (computed from what was just proven) opens to zero. Each
  // party gets the component it lacks from both parties holding it, as in reveal().
  std::vector<const Share*> zs;
  for (const Share& z : zeros_) zs.push_back(&z);
  const Share z = concat(zs);
  zeros_.clear();
  MsgKind kind(comm_, "reveal");
  comm_.send(prev_, z.b);
  comm_.send(next_, z.a);
  comm_.round();
  const size_t n = z.size();
  Vec out = comm_.recv(next_, n), other = comm_.recv(prev_, n);
  if (out != other)
    throw CheatingDetected("input range check: the two parties holding a share component sent different values");
  for (size_t i = 0; i < n; ++i)
    if (out[i] + z.a[i] + z.b[i] != 0)
      throw CheatingDetected("input range check: a party shared an input outside its tensor's type range");
}

void Mal3::prove() {
  if (pending_.empty() && ands_.empty()) return;
  OpScope scope(stats(), "verify");
  std::vector<Record> recs = std::move(pending_);
  std::vector<AndRecord> ands = std::move(ands_);
  pending_.clear();
  ands_.clear();
  pending_and_words_ = pending_terms_ = 0;
  std::string failed;  // the first check that failed here

  // 1. Common coin: open the committed seeds, commit to the next ones.
  u64 coin_key[2] = {seed_[0], seed_[1]};
  {
    MsgKind kind(comm_, "coin");
    u64 msg[6] = {seed_[0], seed_[1]};
    commit_next_seed(msg + 2);
    comm_.send(next_, msg, 6);
    comm_.send(prev_, msg, 6);
    comm_.round();
    for (int from : {next_, prev_}) {
      u64 in[6];
      comm_.recv(from, in, 6);
      uint8_t c[32];
      commitment(in, from, c);
      if (std::memcmp(c, peer_commit_[from], 32) != 0 && failed.empty())
        failed = "coin: party " + std::to_string(from) + " opened a seed it had not committed to";
      std::memcpy(peer_commit_[from], in + 2, 32);
      coin_key[0] ^= in[0];
      coin_key[1] ^= in[1];
    }
  }
  Key ck;
  std::memcpy(ck.data(), coin_key, 16);
  Prg coin(ck);

  // Pairwise streams of this verification (each key is held by exactly two parties, who draw
  // from it in the same order). For prover P with previous party L and next party R:
  // PL (P and L: L's shares of the proof, the mask a), PR (P and R: the mask b) and LR (L and
  // R: the challenges, unknown to P). One set per proof (products in GR, ANDs in GF).
  // The coins of every product item (in the order of the records: the same at every party),
  // then beta for the elementwise ones.
  std::vector<std::vector<Item>> items(recs.size());
  bool any_ew = false, any_r1 = false;
  for (size_t i = 0; i < recs.size(); ++i)
    for (auto& p : recs[i].items) {
      items[i].emplace_back(p, coin);
      (p.kind == Product::kElementwise ? any_ew : any_r1) = true;
    }
  std::unique_ptr<Proof<GRF>> gp, ep;  // rank-one products; elementwise products
  std::unique_ptr<Proof<GF>> bp;
  if (any_r1) gp = std::make_unique<Proof<GRF>>(prg_next_, prg_prev_, me_);
  if (any_ew) {
    ep = std::make_unique<Proof<GRF>>(prg_next_, prg_prev_, me_);
    ep->bf = std::make_unique<EwFirst>();
    Vec beta = coin.next(EwFirst::kK);
    for (int s = 0; s < EwFirst::kK; ++s) ep->bf->beta[s] = beta[s] & gr::kAMask;
  }
  if (!ands.empty()) bp = std::make_unique<Proof<GF>>(prg_next_, prg_prev_, me_);

  // 2a. Products. This party is the prover of its own messages (pa at L, pb at R), L of its
  // next party's (la: its b components; claim share cl) and R of its previous party's (rb: its
  // a components; claim share cr). Rank-one items: elements 0 and 1 are the masks, then each
  // item's two cross terms; elementwise items: words in groups (EwFirst), each present cross
  // term a block.
  if (!recs.empty()) {
    // The cross terms of prover P's messages: (1) Fx(x_P) . Gy(y_{P+1}), (2) Fy(y_P) . Gx(x_{P+1}),
    // elementwise ones left out when a factor is publicly zero; every role lays out P's terms in
    // the same order, the vectors padded with zeros to the longest prover's.
    size_t len[3] = {2, 2, 2};
    for (size_t i = 0; i < recs.size(); ++i)
      for (auto& it : items[i])
        if (it.kind != Product::kElementwise)
          for (int P = 0; P < 3; ++P) len[P] += 2 * it.K;
    if (gp) gp->resize(std::max({len[0], len[1], len[2]}));
    EwFirst* ef = ep ? ep->bf.get() : nullptr;
    u64 cl_acc[gr::kWide] = {}, cr_acc[gr::kWide] = {};
    constexpr int KE = EwFirst::kK;
    Vec TL(D * KE), TR(D * KE);  // elementwise claims: sum_g alpha_g z_g[s], element s (before beta)
    std::fill(TL.begin(), TL.end(), 0);
    std::fill(TR.begin(), TR.end(), 0);
    size_t apr = 2, alr = 2, arr = 2;  // rank-one cursors: as prover, as L of next, as R of previous
    for (size_t i = 0; i < recs.size(); ++i) {
      const Record& rec = recs[i];
      Vec r2(rec.total), r1(rec.total);  // the zero shares of next's and of previous' messages
      prg_next_.fill_at(rec.blk_next, r2.data(), rec.total);
      prg_prev_.fill_at(rec.blk_prev, r1.data(), rec.total);
      for (size_t t = 0; t < items[i].size(); ++t) {
        const Item& it = items[i][t];
        const Share &x = rec.xs[t], &y = rec.ys[t];
        const size_t K = it.K, o = rec.offset[t], n = rec.size[t];
        Vec zl(n);
        for (size_t k = 0; k < n; ++k) zl[k] = rec.got[o + k] + r2[o + k];
        if (it.kind == Product::kElementwise) {
          const auto [p1, p2] = cross_terms(rec.zx, rec.zy, me_);
          const auto [l1, l2] = cross_terms(rec.zx, rec.zy, next_);
          const auto [q1, q2] = cross_terms(rec.zx, rec.zy, prev_);
          // prover: (x_me, y_next), (y_me, x_next); L of next: x_next, y_next; R of previous:
          // y_me, x_me
          const size_t G = it.groups();
          auto alphas = [&](Vec& v) { v.insert(v.end(), it.u.begin(), it.u.end()); };
          if (p1) {
            EwFirst::append(ef->px, x.a);
            EwFirst::append(ef->py, y.b);
            alphas(ef->pal);
          }
          if (p2) {
            EwFirst::append(ef->px, y.a);
            EwFirst::append(ef->py, x.b);
            alphas(ef->pal);
          }
          if (l1) {
            EwFirst::append(ef->lx, x.b);
            alphas(ef->lal);
          }
          if (l2) {
            EwFirst::append(ef->lx, y.b);
            alphas(ef->lal);
          }
          if (q1) EwFirst::append(ef->ry, y.a);
          if (q2) EwFirst::append(ef->ry, x.a);
          // c_L = sum(coeff * (z_next + r2 - x_next y_next)) - <terms>, c_R = -sum(coeff * r1)
          for (size_t k = 0; k < n; ++k) zl[k] -= x.b[k] * y.b[k];
          Vec neg(KE * G);
          for (size_t k = 0; k < n; ++k) neg[k] = 0 - r1[o + k];
          std::fill(neg.begin() + n, neg.end(), 0);
          zl.resize(KE * G, 0);
          gr::spread_acc<KE>(it.u.data(), zl.data(), G, TL.data());
          gr::spread_acc<KE>(it.u.data(), neg.data(), G, TR.data());
          continue;
        }
        Proof<GRF>& g = *gp;
        u64* pa1 = g.pa.data() + apr * D;  // Fx(x_me), then Fy(y_me)
        u64* pa2 = pa1 + K * D;
        u64* pb1 = g.pb.data() + apr * D;  // Gy(y_next), then Gx(x_next)
        u64* pb2 = pb1 + K * D;
        u64* la1 = g.la.data() + alr * D;  // L of next: Fx(x_next), Fy(y_next)
        u64* la2 = la1 + K * D;
        u64* rb1 = g.rb.data() + arr * D;  // R of previous: Gy(y_me), Gx(x_me)
        u64* rb2 = rb1 + K * D;
        it.fx(x.a, pa1);
        it.fy(y.a, pa2);
        it.fx(x.b, la1);
        it.fy(y.b, la2);
        it.gy(y.b, la2, pb1);
        it.gx(x.b, la1, pb2);
        it.gy(y.a, pa2, rb1);
        it.gx(x.a, pa1, rb2);
        apr += 2 * K;
        alr += 2 * K;
        arr += 2 * K;
        it.zc(zl.data(), cl_acc);
        u64 local[D];
        gr::inner(la1, la2, K, local);
        for (int j = 0; j < D; ++j) cl_acc[j] -= local[j];
        Vec neg(n);
        for (size_t k = 0; k < n; ++k) neg[k] = 0 - r1[o + k];
        it.zc(neg.data(), cr_acc);
      }
    }
    if (apr != len[me_] || alr != len[next_] || arr != len[prev_]) throw Error("internal: mal3 proof layout");
    if (gp) {
      gr::reduce(cl_acc, gp->cl);
      gr::reduce(cr_acc, gp->cr);
      gp->mask();
    }
    if (ep) {  // the claims: sum_s beta_s T_s
      u64 al[gr::kWide] = {}, ar[gr::kWide] = {};
      for (int s = 0; s < EwFirst::kK; ++s) {
        u64 el[D], er[D];
        for (int c = 0; c < D; ++c) {
          el[c] = TL[KE * c + s];
          er[c] = TR[KE * c + s];
        }
        gr::mac_a(al, ef->beta[s], el);
        gr::mac_a(ar, ef->beta[s], er);
      }
      gr::reduce(al, ep->cl);
      gr::reduce(ar, ep->cr);
    }
  }
  recs.clear();

  // 2b. ANDs: z_me ^ x_me y_me ^ r1 ^ r2 = x_me y_next ^ x_next y_me per bit, combined with the
  // coefficient alpha_w beta_b (word w, bit b): word pairs (x_me, y_next) and (y_me, x_next),
  // proven by a bit-sliced first step (BitFirst), then by folding.
  if (bp) {
    Proof<GF>& g = *bp;
    auto bf = std::make_unique<BitFirst>();
    Vec beta = coin.next(64);
    std::memcpy(bf->beta, beta.data(), sizeof bf->beta);
    size_t words = 0;
    for (auto& r : ands) words += r.xa.size();
    for (Vec* v : {&bf->px, &bf->py, &bf->lx, &bf->ry, &bf->alpha}) v->reserve(2 * words);
    u64 SL[64] = {}, SR[64] = {};
    for (const AndRecord& r : ands) {
      const size_t n = r.xa.size();
      Vec al = coin.next(n), r2(n), r1(n);
      prg_next_.fill_at(r.blk_next, r2.data(), n);
      prg_prev_.fill_at(r.blk_prev, r1.data(), n);
      for (size_t w = 0; w < n; ++w) {
        bf->px.push_back(r.xa[w]);
        bf->py.push_back(r.yb[w]);
        bf->px.push_back(r.ya[w]);
        bf->py.push_back(r.xb[w]);
        bf->lx.push_back(r.xb[w]);
        bf->lx.push_back(r.yb[w]);
        bf->ry.push_back(r.ya[w]);
        bf->ry.push_back(r.xa[w]);
        bf->alpha.push_back(al[w]);
        bf->alpha.push_back(al[w]);
        r2[w] ^= r.got[w] ^ (r.xb[w] & r.yb[w]);
      }
      gr::xor_spread(SL, r2.data(), nullptr, al.data(), n);  // z_next ^ x_next y_next ^ r2
      gr::xor_spread(SR, r1.data(), nullptr, al.data(), n);
    }
    for (int b = 0; b < 64; ++b) {
      g.cl[0] ^= gf_mul(bf->beta[b], SL[b]);
      g.cr[0] ^= gf_mul(bf->beta[b], SR[b]);
    }
    g.bf = std::move(bf);
  }
  ands.clear();

  // 3. Folding: per step each prover sends R its shares of p0 = <a0, b0>, p2 = <a1 - a0, b1 - b0>
  // (a first step: of its polynomial's values or coefficients); R answers with the challenge;
  // everybody folds. The proofs share the rounds.
  auto on = [](const auto& p) { return p && p->active(); };
  while (on(gp) || on(ep) || on(bp)) {
    const bool g_on = on(gp), e_on = on(ep), b_on = on(bp);
    const size_t gw = g_on ? gp->step_words() : 0, ew = e_on ? ep->step_words() : 0,
                 bw = b_on ? bp->step_words() : 0;
    Vec in;
    {
      MsgKind kind(comm_, "proof");
      Vec msg;
      if (g_on) gp->step_send(msg);
      if (e_on) ep->step_send(msg);
      if (b_on) bp->step_send(msg);
      comm_.send(next_, std::move(msg));
      comm_.round();
      in = comm_.recv(prev_, gw + ew + bw);
    }
    if (g_on) gp->step_recv(in.data());
    if (e_on) ep->step_recv(in.data() + gw);
    if (b_on) bp->step_recv(in.data() + gw + ew);
    u64 rs[3];
    {
      MsgKind kind(comm_, "challenge");
      size_t nr = 0;
      if (g_on) rs[nr++] = gp->r_prev;
      if (e_on) rs[nr++] = ep->r_prev;
      if (b_on) rs[nr++] = bp->r_prev;
      comm_.send(prev_, rs, nr);
      comm_.round();
      comm_.recv(next_, rs, nr);
    }
    size_t k = 0;
    if (g_on) gp->step_finish(rs[k++], gp->rp);
    if (e_on) ep->step_finish(rs[k++], ep->rp);
    if (b_on) bp->step_finish(rs[k++], bp->rp);
  }

  // 4. L and R open the last a, b and their claim shares to each other and check a * b.
  {
    MsgKind kind(comm_, "open");
    Vec to_prev, to_next;
    if (gp) gp->open_msgs(to_prev, to_next);
    if (ep) ep->open_msgs(to_prev, to_next);
    if (bp) bp->open_msgs(to_prev, to_next);
    const size_t words = to_prev.size();
    comm_.send(prev_, to_prev);
    comm_.send(next_, to_next);
    comm_.round();
    Vec from_prev = comm_.recv(prev_, words), from_next = comm_.recv(next_, words);
    auto note = [&](bool ok, const char* what, int prover) {
      if (!ok && failed.empty())
        failed = std::string(what) + ": the proof for party " + std::to_string(prover) + "'s messages failed";
    };
    size_t off = 0;
    if (gp) {
      note(gp->next_holds(from_prev.data() + off), "products", next_);
      note(gp->prev_holds(from_next.data() + off), "products", prev_);
      off += 2 * GRF::W;
    }
    if (ep) {
      note(ep->next_holds(from_prev.data() + off), "elementwise products", next_);
      note(ep->prev_holds(from_next.data() + off), "elementwise products", prev_);
      off += 2 * GRF::W;
    }
    if (bp) {
      note(bp->next_holds(from_prev.data() + off), "ANDs", next_);
      note(bp->prev_holds(from_next.data() + off), "ANDs", prev_);
    }
  }

  // 5. Verdicts: every party tells both others whether its checks held.
  {
    MsgKind kind(comm_, "verdict");
    const u64 mine = failed.empty() ? kVerdictOk : 0;
    comm_.send(next_, &mine, 1);
    comm_.send(prev_, &mine, 1);
    comm_.round();
    for (int from : {next_, prev_}) {
      u64 v = 0;
      comm_.recv(from, &v, 1);
      if (v != kVerdictOk && failed.empty()) failed = "party " + std::to_string(from) + " reported a failed check";
    }
  }
  if (!failed.empty()) throw CheatingDetected("mal3 verification: " + failed);
}
// ------------------------------------------------------------------ Boolean layer
// Non-linear steps are Boolean circuits on bit-sliced XOR sharings (plane j, word w: bit j of
// elements 64w..64w+63). A value's three arithmetic components are each known to two parties,
// so each is a Boolean sharing for free (the bits in its own slot, zeros elsewhere); their sum
// is a carry-save layer (one AND round) and a parallel prefix circuit (one AND round for the
// generates, then one per doubling of the distance; Sklansky's prefix, k/2 positions a level),
// or, where only the carries out of the top are needed (msb, truncation), a tree over the
// (generate, propagate) pairs (carry3). Every AND is rep3's one-round AND, recorded and proven
// in GF(2^64) at the next verify(). Bits return to arithmetic sharings through two products
// (b0 xor b1 xor b2 with a xor b = a + b - 2ab), proven in GR.
namespace {

using BShare = Rep3::BShare;

BShare bzero(size_t planes, size_t W) { return BShare{planes, W, Vec(planes * W, 0), Vec(planes * W, 0)}; }

BShare bxor(const BShare& x, const BShare& y) {
  BShare z = bzero(x.planes, x.W);
  vxor(z.a.data(), x.a.data(), y.a.data(), z.a.size());
  vxor(z.b.data(), x.b.data(), y.b.data(), z.b.size());
  return z;
}

// Planes [p0, p0 + np) of x.
BShare planes_of(const BShare& x, size_t p0, size_t np) {
  BShare z = bzero(np, x.W);
  std::memcpy(z.a.data(), x.a.data() + p0 * x.W, np * x.W * 8);
  std::memcpy(z.b.data(), x.b.data() + p0 * x.W, np * x.W * 8);
  return z;
}

BShare cat(const BShare& x, const BShare& y) {
  BShare z = bzero(x.planes + y.planes, x.W);
  std::memcpy(z.a.data(), x.a.data(), x.a.size() * 8);
  std::memcpy(z.a.data() + x.a.size(), y.a.data(), y.a.size() * 8);
  std::memcpy(z.b.data(), x.b.data(), x.b.size() * 8);
  std::memcpy(z.b.data() + x.b.size(), y.b.data(), y.b.size() * 8);
  return z;
}

// Plane i of the result is plane i - s of x (the low s planes zero).
BShare shift_planes(const BShare& x, size_t s) {
  BShare z = bzero(x.planes, x.W);
  if (s < x.planes) {
    std::memcpy(z.a.data() + s * x.W, x.a.data(), (x.planes - s) * x.W * 8);
    std::memcpy(z.b.data() + s * x.W, x.b.data(), (x.planes - s) * x.W * 8);
  }
  return z;
}

void to_planes(const Vec& v, size_t k, size_t W, u64* out) {
  // out |= the k low bit planes of v (bit_planes: no branch on the share bits)
  Vec t(k * W);
  bit_planes(v.data(), v.size(), k, W, t.data());
  vxor(out, out, t.data(), k * W);  // the callers' planes start zero: ^ is |
}


// Plane p of dst = plane q of src.
void copy_plane(BShare& dst, size_t p, const BShare& src, size_t q) {
  std::memcpy(dst.a.data() + p * dst.W, src.a.data() + q * src.W, src.W * 8);
  std::memcpy(dst.b.data() + p * dst.W, src.b.data() + q * src.W, src.W * 8);
}

}  // namespace

Rep3::BShare Mal3::band(const BShare& x, const BShare& y) {
  if (pending_and_words_ && pending_and_words_ + x.a.size() > kMaxPendingAndWords) verify();
  AndRecord r;
  r.blk_next = prg_next_.blocks_used();
  r.blk_prev = prg_prev_.blocks_used();
  BShare z = bool_and(x, y);
  comm_.round();
  r.xa = x.a;
  r.xb = x.b;
  r.ya = y.a;
  r.yb = y.b;
  r.got = z.b;
  pending_and_words_ += r.xa.size();
  ands_.push_back(std::move(r));
  if (pending_and_words_ >= kMaxPendingAndWords) verify();  // bounds the proof's memory
  return z;
}

// The Boolean sharing of component j's low k bits.
Rep3::BShare Mal3::comp_bits(const Share& x, int k, int j) const {
  const size_t W = words_for(x.size());
  BShare out = bzero(k, W);
  if (j == me_) to_planes(x.a, k, W, out.a.data());
  else if (j == next_) to_planes(x.b, k, W, out.b.data());
  return out;
}

Mal3::Sum Mal3::add3(const Share& x, int k) {
  BShare c0 = comp_bits(x, k, 0), c1 = comp_bits(x, k, 1), c2 = comp_bits(x, k, 2);
  Sum s;
  // carry-save: x0 + x1 + x2 = sum + 2 cy with sum = x0 ^ x1 ^ x2, cy = maj = ((x0^x2) & (x1^x2)) ^ x2
  s.cy = bxor(band(bxor(c0, c2), bxor(c1, c2)), c2);
  BShare sum = bxor(bxor(c0, c1), c2), B = shift_planes(s.cy, 1);
  s.p0 = bxor(sum, B);
  BShare G = band(sum, B), P = s.p0;
  // Sklansky prefix: at distance 2^l, every position i in the upper half of its 2^(l+1) block
  // takes (G, P) of the last position of the lower half: G_i ^= P_i G_j, P_i = P_i P_j. Same
  // depth as Kogge-Stone, k/2 positions per level instead of k - 2^l.
  const size_t W = G.W;
  for (int dist = 1; dist < k; dist *= 2) {
    std::vector<size_t> up, low;
    for (int i = 0; i < k; ++i)
      if (i & dist) {
        up.push_back(i);
        low.push_back((i & ~(2 * dist - 1)) + dist - 1);
      }
    const bool need_p = 2 * dist < k;
    const size_t u = up.size(), np = need_p ? 2 * u : u;
    BShare X = bzero(np, W), Y = bzero(np, W);
    for (size_t q = 0; q < u; ++q) {
      for (size_t h = 0; h < (need_p ? 2u : 1u); ++h) {
        const size_t dst = (q + h * u) * W;
        std::memcpy(X.a.data() + dst, P.a.data() + up[q] * W, W * 8);
        std::memcpy(X.b.data() + dst, P.b.data() + up[q] * W, W * 8);
        const BShare& src = h == 0 ? G : P;
        std::memcpy(Y.a.data() + dst, src.a.data() + low[q] * W, W * 8);
        std::memcpy(Y.b.data() + dst, src.b.data() + low[q] * W, W * 8);
      }
    }
    BShare Z = band(X, Y);
    for (size_t q = 0; q < u; ++q) {
      vxor(G.a.data() + up[q] * W, G.a.data() + up[q] * W, Z.a.data() + q * W, W);
      vxor(G.b.data() + up[q] * W, G.b.data() + up[q] * W, Z.b.data() + q * W, W);
      if (need_p) {
        std::memcpy(P.a.data() + up[q] * W, Z.a.data() + (u + q) * W, W * 8);
        std::memcpy(P.b.data() + up[q] * W, Z.b.data() + (u + q) * W, W * 8);
      }
    }
  }
  s.g = std::move(G);
  return s;
}

Mal3::CarrySave Mal3::carry_save(const Share& x, const std::vector<int>& w, int k) {
  const size_t n = x.size(), W = words_for(n);
  // Component j's planes, every element aligned to the top: (x_j mod 2^w) << (k - w).
  auto aligned = [&](int j) {
    BShare out = bzero(k, W);
    if (j != me_ && j != next_) return out;
    const Vec& src = j == me_ ? x.a : x.b;
    Vec v(n);
    for (size_t e = 0; e < n; ++e) {
      const int we = w[e];
      v[e] = we == 0 ? 0 : (we >= 64 ? src[e] : src[e] & ((u64{1} << we) - 1)) << (k - we);
    }
    to_planes(v, k, W, (j == me_ ? out.a : out.b).data());
    return out;
  };
  CarrySave cs;
  {
    BShare c0 = aligned(0), c1 = aligned(1), c2 = aligned(2);
    cs.cy = bxor(band(bxor(c0, c2), bxor(c1, c2)), c2);  // carry-save: majority
    cs.p = bxor(bxor(c0, c1), c2);                        // the sum, for now
  }
  if (k == 1) {  // B_0 = 0: sum_0 + B_0 never carries
    cs.g = bzero(1, W);
    return cs;
  }
  // (G, P) per position of sum + B, B = cy << 1 (G_0 = 0)
  const BShare B = shift_planes(cs.cy, 1);
  cs.g = cat(bzero(1, W), band(planes_of(cs.p, 1, k - 1), planes_of(B, 1, k - 1)));
  cs.p = bxor(cs.p, B);
  return cs;
}

Mal3::Carry Mal3::carry3(const Share& x, const std::vector<int>& w) {
  const size_t W = words_for(x.size());
  int k = 1;
  for (int we : w) k = std::max(k, we);
  CarrySave cs = carry_save(x, w, k);
  Carry out{planes_of(cs.cy, k - 1, 1), bzero(1, W)};
  if (k == 1) return out;
  BShare G = std::move(cs.g), P = std::move(cs.p);
  cs.cy = BShare();
  // Pairs merge upwards: (G, P)[2i+1 : 2i] = (G_{2i+1} ^ P_{2i+1} G_{2i}, P_{2i+1} P_{2i}),
  // the lowest group's P never needed.
  for (size_t m = k; m > 1;) {
    const size_t pairs = m / 2, np = 2 * pairs - 1;
    BShare X = bzero(np, W), Y = bzero(np, W);
    for (size_t i = 0; i < pairs; ++i) {
      copy_plane(X, i, P, 2 * i + 1);
      copy_plane(Y, i, G, 2 * i);
      if (i) {
        copy_plane(X, pairs + i - 1, P, 2 * i + 1);
        copy_plane(Y, pairs + i - 1, P, 2 * i);
      }
    }
    BShare Z = band(X, Y);
    const size_t nm = pairs + (m & 1);
    BShare G2 = bzero(nm, W), P2 = bzero(nm, W);
    for (size_t i = 0; i < pairs; ++i) {
      copy_plane(G2, i, G, 2 * i + 1);
      vxor(G2.a.data() + i * W, G2.a.data() + i * W, Z.a.data() + i * W, W);
      vxor(G2.b.data() + i * W, G2.b.data() + i * W, Z.b.data() + i * W, W);
      if (i) copy_plane(P2, i, Z, pairs + i - 1);
    }
    if (m & 1) {
      copy_plane(G2, pairs, G, m - 1);
      copy_plane(P2, pairs, P, m - 1);
    }
    G = std::move(G2);
    P = std::move(P2);
    m = nm;
  }
  out.g = std::move(G);
  return out;
}

Mal3::Carry2 Mal3::carry3_pair(const Share& x, const std::vector<int>& w, int r) {
  const size_t W = words_for(x.size());
  int k = r + 1;
  for (int we : w) k = std::max(k, we);
  const int p1 = k - r;  // the low boundary's plane, the same for every element
  CarrySave cs = carry_save(x, w, k);
  Carry2 out;
  out.low.cy = planes_of(cs.cy, p1 - 1, 1);
  out.all.cy = planes_of(cs.cy, k - 1, 1);
  cs.cy = BShare();
  BShare G = std::move(cs.g), P = std::move(cs.p);
  // Segments reduced in lockstep, each by merging pairs upwards:
  //   (G, P)[2i+1 : 2i] = (G_{2i+1} ^ P_{2i+1} G_{2i}, P_{2i+1} P_{2i});
  // base [0, 2^a) (2^a the largest power of two <= p1; its P is never needed), mid [2^a, p1),
  // top [p1, k). Then midtop = top o mid, and G_low = mid o base, G_all = midtop o base (one
  // AND each), every merge in the first level where its operands are ready.
  struct Seg {
    BShare g, p;
    bool need_p;
    size_t m() const { return g.planes; }
  };
  size_t base_n = 1;
  while (2 * base_n <= static_cast<size_t>(p1)) base_n *= 2;
  Seg seg[3] = {{planes_of(G, 0, base_n), planes_of(P, 0, base_n), false},
                {planes_of(G, base_n, p1 - base_n), planes_of(P, base_n, p1 - base_n), true},
                {planes_of(G, p1, r), planes_of(P, p1, r), true}};
  G = P = BShare();
  const bool has_mid = seg[1].m() > 0;
  BShare mt_g, mt_p;  // midtop, once merged
  bool have_mt = false, done = false;
  if (!has_mid && seg[2].m() == 1) {
    mt_g = seg[2].g;
    mt_p = seg[2].p;
    have_mt = true;
  }
  while (!done) {
    // This level's ANDs: X and Y plane sources, and where each product goes.
    std::vector<std::pair<const BShare*, size_t>> xs, ys;
    auto want = [&](const BShare& a, size_t pa, const BShare& b, size_t pb) {
      xs.push_back({&a, pa});
      ys.push_back({&b, pb});
      return xs.size() - 1;
    };
    struct Job {
      int seg;
      size_t pairs, gz, pz;  // first product slots of the G and P merges
    };
    std::vector<Job> jobs;
    for (int q = 0; q < 3; ++q) {
      const Seg& sg = seg[q];
      if (sg.m() <= 1) continue;
      Job j{q, sg.m() / 2, xs.size(), 0};
      for (size_t i = 0; i < j.pairs; ++i) want(sg.p, 2 * i + 1, sg.g, 2 * i);
      j.pz = xs.size();
      for (size_t i = (sg.need_p ? 0 : 1); i < j.pairs; ++i) want(sg.p, 2 * i + 1, sg.p, 2 * i);
      jobs.push_back(j);
    }
    const bool mt_now = !have_mt && has_mid && seg[1].m() == 1 && seg[2].m() == 1;
    size_t mt_slot = 0;
    if (mt_now) {
      mt_slot = want(seg[2].p, 0, seg[1].g, 0);
      want(seg[2].p, 0, seg[1].p, 0);
    }
    const bool fin_now = have_mt && seg[0].m() == 1;
    size_t fin_slot = 0;
    if (fin_now) {
      fin_slot = want(mt_p, 0, seg[0].g, 0);
      if (has_mid) want(seg[1].p, 0, seg[0].g, 0);
    }
    if (xs.empty()) throw Error("internal: carry3_pair made no progress");
    BShare X = bzero(xs.size(), W), Y = bzero(xs.size(), W);
    for (size_t t = 0; t < xs.size(); ++t) {
      copy_plane(X, t, *xs[t].first, xs[t].second);
      copy_plane(Y, t, *ys[t].first, ys[t].second);
    }
    const BShare Z = band(X, Y);
    auto zx = [&](BShare& dst, size_t p, const BShare& src, size_t q, size_t slot) {  // dst[p] = src[q] ^ Z[slot]
      copy_plane(dst, p, src, q);
      vxor(dst.a.data() + p * W, dst.a.data() + p * W, Z.a.data() + slot * W, W);
      vxor(dst.b.data() + p * W, dst.b.data() + p * W, Z.b.data() + slot * W, W);
    };
    if (fin_now) {  // before the segments change: the operands were this level's
      BShare gl = bzero(1, W), ga = bzero(1, W);
      zx(ga, 0, mt_g, 0, fin_slot);
      if (has_mid) zx(gl, 0, seg[1].g, 0, fin_slot + 1);
      else gl = seg[0].g;
      out.low.g = std::move(gl);
      out.all.g = std::move(ga);
      done = true;
    }
    if (mt_now) {
      mt_g = bzero(1, W);
      zx(mt_g, 0, seg[2].g, 0, mt_slot);
      mt_p = planes_of(Z, mt_slot + 1, 1);
      have_mt = true;
    }
    for (const Job& j : jobs) {
      Seg& sg = seg[j.seg];
      const size_t m = sg.m(), nm = j.pairs + (m & 1);
      Seg nx{bzero(nm, W), bzero(nm, W), sg.need_p};
      for (size_t i = 0; i < j.pairs; ++i) {
        zx(nx.g, i, sg.g, 2 * i + 1, j.gz + i);
        if (sg.need_p) copy_plane(nx.p, i, Z, j.pz + i);
        else if (i) copy_plane(nx.p, i, Z, j.pz + i - 1);
      }
      if (m & 1) {
        copy_plane(nx.g, j.pairs, sg.g, m - 1);
        copy_plane(nx.p, j.pairs, sg.p, m - 1);
      }
      sg = std::move(nx);
    }
    if (!have_mt && !has_mid && seg[2].m() == 1) {
      mt_g = seg[2].g;
      mt_p = seg[2].p;
      have_mt = true;
    }
  }
  return out;
}

Share Mal3::trunc_low(const Share& y, const std::vector<int>& d, const std::vector<int>& B) {
  // y mod 2^B = sum_j (y_j mod 2^B) - 2^B wraps and floor(y / 2^d) = sum_j floor((y_j mod 2^B)
  // / 2^d) + c_low - 2^(B-d) wraps for y in [0, 2^B): c_low and wraps are the carry counts out
  // of the low d and B bits, found together (one carry3 over both).
  // With B - d the same for every element (the requantization's span), one carry-save layer
  // and one tree give both (carry3_pair); otherwise two elements per value (carry3).
  const size_t n = y.size();
  const int span = n ? B[0] - d[0] : 1;
  bool pair = span >= 1;
  int k = span + 1;
  for (size_t e = 0; e < n && pair; ++e) {
    pair = B[e] - d[e] == span;
    k = std::max(k, B[e]);
  }
  if (pair) {  // only where it takes no more AND rounds than one tree over k planes (carry3_pair)
    auto lv = [](size_t m) {
      int l = 0;
      while ((size_t{1} << l) < m) ++l;
      return l;
    };
    const size_t p1 = k - span;
    size_t base = 1;
    while (2 * base <= p1) base *= 2;
    const int mt = p1 > base ? std::max(lv(p1 - base), lv(span)) + 1 : lv(span);
    pair = std::max(lv(base), mt) + 1 <= lv(k);
  }
  BShare counts;  // planes of n bits: cy (low, wrap), g (low, wrap)
  if (pair) {
    Carry2 c = carry3_pair(y, B, span);
    counts = cat(cat(c.low.cy, c.all.cy), cat(c.low.g, c.all.g));
  } else {
    Share both = concat({&y, &y});
    std::vector<int> w(2 * n);
    for (size_t e = 0; e < n; ++e) {
      w[e] = d[e];
      w[n + e] = B[e];
    }
    Carry c = carry3(both, w);
    counts = cat(c.cy, c.g);  // 2n bits each: (low, wrap)
  }
  Share cnt = bit_to_arith(counts, n * 4 / counts.planes);  // planes x n values, plane-major
  std::vector<Share> v = split(cnt, {y.shape, y.shape, y.shape, y.shape});
  Share r = y;
  std::vector<u64> scale(n);
  for (size_t e = 0; e < n; ++e) {
    const u64 m = B[e] >= 64 ? ~u64{0} : (u64{1} << B[e]) - 1;
    r.a[e] = (r.a[e] & m) >> d[e];
    r.b[e] = (r.b[e] & m) >> d[e];
    scale[e] = B[e] - d[e] >= 64 ? 0 : u64{1} << (B[e] - d[e]);
  }
  r.a_zero = r.b_zero = false;
  r = add(add(r, v[0]), v[2]);
  return sub(r, mul_public(add(v[1], v[3]), Pub(scale)));
}

Share Mal3::bit_to_arith(const BShare& c, size_t n) {
  const size_t total = c.planes * n;
  auto unpack = [&](const Vec& planes, Vec& out) {
    for (size_t p = 0; p < c.planes; ++p)
      for (size_t e = 0; e < n; ++e) out[p * n + e] = (planes[p * c.W + (e >> 6)] >> (e & 63)) & 1;
  };
  auto arith = [&](int j) {
    Share s{{static_cast<int64_t>(total)}, Vec(total, 0), Vec(total, 0)};
    if (j == me_) {
      unpack(c.a, s.a);
      s.b_zero = true;
    } else if (j == next_) {
      unpack(c.b, s.b);
      s.a_zero = true;
    } else {
      s.a_zero = s.b_zero = true;
    }
    return s;
  };
  // Component j alone is non-zero in s_j: s0 s1 is party 0's message alone (x_0 y_1), t s2 is
  // parties 1's and 2's (x_1 y_2; x_2 y_2 + x_0 y_2): one cross term per bit and prover.
  auto only = [](int j) { return static_cast<uint8_t>(7 & ~(1u << j)); };
  Share s0 = arith(0), s1 = arith(1), s2 = arith(2);
  Share t = sub(add(s0, s1), mul_public(products_with({{Product::kElementwise, &s0, &s1, {}}}, only(0), only(1))[0], 2));
  Share t2 = products_with({{Product::kElementwise, &t, &s2, {}}}, 0, only(2))[0];
  return sub(add(t, s2), mul_public(t2, 2));
}

void Mal3::check_ranges(const std::vector<RangeCheck>& list) {
  OpScope scope(stats(), "input range");
  for (const RangeCheck& c : list)
    if (c.bits < 1 || c.bits > 63) throw ArgError("check_ranges: bits must be in [1, 63]");
  // Two passes, 8-bit types and the wider ones: a carry circuit spans its widest element's
  // planes, so the weights (8 bits, most of the elements) do not pay for the biases' 32.
  for (const bool narrow : {true, false}) {
    std::vector<const Share*> xs;
    std::vector<u64> neg_lo;
    std::vector<int> w;
    for (const RangeCheck& c : list) {
      if ((c.bits <= 8) != narrow) continue;
      xs.push_back(c.x);
      neg_lo.insert(neg_lo.end(), c.x->size(), 0 - static_cast<u64>(c.lo));
      w.insert(w.end(), c.x->size(), c.bits);
    }
    const size_t n = w.size();
    if (n == 0) continue;
    const Share y = add_public(concat(xs), Pub(std::move(neg_lo)));
    // y mod 2^bits = sum_j (y_j mod 2^bits) - 2^bits (cy + g), the carries out of the low bits
    Carry c = carry3(y, w);
    std::vector<Share> cnt = split(bit_to_arith(cat(c.cy, c.g), n), {y.shape, y.shape});
    Share low = y;
    std::vector<u64> scale(n);
    for (size_t e = 0; e < n; ++e) {
      const u64 m = (u64{1} << w[e]) - 1;
      low.a[e] &= m;
      low.b[e] &= m;
      scale[e] = u64{1} << w[e];
    }
    low.a_zero = low.b_zero = false;
    low = sub(low, mul_public(add(cnt[0], cnt[1]), Pub(std::move(scale))));
    zeros_.push_back(sub(y, low));
  }
}

Share Mal3::msb(const Share& x, int bits) {
  OpScope s(stats(), "msb");
  if (bits < 2 || bits > 64) throw ArgError("msb: bit width must be in [2, 64], got " + std::to_string(bits));
  if (debug_checks) check_range(x, bits, "msb");
  const size_t n = x.size(), W = words_for(n);
  // bit (bits - 1) of x0 + x1 + x2: the components' bits there, xor the parity of the carries
  // out of the low bits - 1 bits.
  Carry c = carry3(x, std::vector<int>(n, bits - 1));
  BShare top = bzero(1, W);
  for (size_t e = 0; e < n; ++e) {  // no branch on share bits
    top.a[e >> 6] |= ((x.a[e] >> (bits - 1)) & 1) << (e & 63);
    top.b[e >> 6] |= ((x.b[e] >> (bits - 1)) & 1) << (e & 63);
  }
  Share r = bit_to_arith(bxor(top, bxor(c.cy, c.g)), n);
  r.shape = x.shape;
  return r;
}

std::vector<Share> Mal3::bits(const Share& x, int k) {
  OpScope s(stats(), "bits");
  if (k < 1 || k > 64) throw ArgError("bits: bit count must be in [1, 64], got " + std::to_string(k));
  const size_t n = x.size();
  Sum sm = add3(x, k);
  Share all = bit_to_arith(bxor(sm.p0, shift_planes(sm.g, 1)), n);  // sum_i = p0_i ^ G_{i-1}
  std::vector<Shape> shapes(k, x.shape);
  return split(all, shapes);
}

// floor(x / 2^d) = floor(x' / 2^d) - 2^(62-d) with x' = x + 2^62 in [0, 2^63): trunc_low on
// all 64 bits.
Share Mal3::trunc(const Share& x, const Shifts& d) {
  OpScope s(stats(), "trunc");
  const size_t n = x.size();
  d.check(n, 0, 62, "trunc");
  if (debug_checks) check_range(x, 63, "trunc");
  std::vector<int> de(n), B(n, 64);
  std::vector<u64> offset(n);
  for (size_t e = 0; e < n; ++e) {
    de[e] = d.at(e);
    offset[e] = 0 - (u64{1} << (62 - de[e]));
  }
  Share y = trunc_low(add_public(x, Pub(u64{1} << 62)), de, B);
  y.shape = x.shape;
  return add_public(y, Pub(offset));
}

// Round to nearest: floor((x + 2^(d-1)) / 2^d) is floor(x / 2^d) or one more, as the contract
// asks, and carries no bias from layer to layer. It is deterministic: no party can predict a
// rounding it could not compute from what it already knows (the exact value is secret).
Share Mal3::trunc_pr(const Share& x, const Shifts& d) {
  const size_t n = x.size();
  d.check(n, 0, 62, "trunc_pr");
  std::vector<u64> half(d.v.size());
  for (size_t i = 0; i < half.size(); ++i) half[i] = d.v[i] > 0 ? u64{1} << (d.v[i] - 1) : 0;
  return trunc(add_public(x, Pub(half)), d);
}

// Fused requantization. With v = acc * mult + add and
//   f(acc) = floor((v - adj [v < 2^(d-1)]) / 2^d)   (non-decreasing in acc: mult >= 0, adj <= 2^(d-1)),
// the clamp and the tie correction are comparisons of the narrow accumulator with public
// thresholds (found by bisection on f, per channel):
//   below = [acc < T(lo)], lt_hi = [acc < T(hi + 1)], neg = [acc < T_neg]  (T(L) = min f >= L)
// on acc_bits + 1 bits, and the in-range value comes from y = v - adj neg - lo 2^d, which lies
// in [0, 2^B), B = d + rbits, whenever lo <= f <= hi: only its low B bits are added up
// (trunc_low). out = lo + (lt_hi - below) floor(y / 2^d) + (1 - lt_hi)(hi - lo): one product.
// Probabilistic mode rounds to nearest (add + 2^(d-1), no tie correction), as trunc_pr.
Share Mal3::requant(const Share& acc, const RequantSpec& spec) {
  OpScope scope(stats(), "requant");
  const size_t n = acc.size();
  spec.check(n);
  if (debug_checks) check_range(acc, spec.acc_bits, "requant");
  if (n == 0) return acc;
  // The parameters' period: every vector broadcasts as v[i % size] (sizes 1, n or channels).
  size_t c = 1;
  for (size_t z : {spec.mult.v.size(), spec.add.v.size(), spec.adj.v.size(), spec.d.v.size(), spec.lo.v.size(),
                   spec.hi.v.size()})
    if (z > 1) c = std::lcm(c, z);
  c = std::min(c, n);
  using i128 = __int128;
  const int ab = spec.acc_bits;
  const i128 amax = i128{1} << (ab - 1);
  struct Ch {
    i128 mult, add, adj;
    int d;
    i128 lo, hi;
    i64 t_lo, t_hi, t_neg;
  };
  std::vector<Ch> ch(c);
  int rbits = 1;
  bool any_adj = false;
  for (size_t i = 0; i < c; ++i) {
    Ch& h = ch[i];
    h.mult = spec.mult.at(i);
    h.d = spec.d.at(i);
    h.add = static_cast<i64>(spec.add.at(i));
    h.adj = spec.adj.v.empty() || spec.stochastic ? 0 : static_cast<i128>(spec.adj.at(i));
    if (spec.stochastic) h.add += i128{1} << (h.d - 1);
    h.lo = static_cast<i64>(spec.lo.at(i));
    h.hi = static_cast<i64>(spec.hi.at(i));
    if (h.lo > h.hi || h.hi - h.lo >= (i128{1} << 16))
      throw ArgError("requant: clamp bounds must satisfy lo <= hi < lo + 2^16");
    if (h.mult >= (i128{1} << 62)) throw ArgError("requant: multiplier must be below 2^62");
    if (h.adj > (i128{1} << (h.d - 1))) throw ArgError("requant: adj must be at most 2^(d-1)");
    while ((i128{1} << rbits) < h.hi - h.lo + 1) ++rbits;
    // The tie correction only lowers a value f0 = floor(v / 2^d) <= 0 by at most one (it
    // applies where v < 2^(d-1), and adj <= 2^(d-1)): with lo >= min(0, hi) both clamp to lo
    // (or lo = hi), so the clamped result is the same without it (ReLU and ReLU6 layers), and
    // such channels need no third comparison.
    if (h.lo >= std::min<i128>(0, h.hi)) h.adj = 0;
    any_adj |= h.adj != 0;
  }
  for (auto& h : ch)
    if (h.d + rbits > 64) {
      // The in-range value does not fit the ring: the composition, exact while v - adj stays
      // in [-2^62, 2^63) (mal3's truncation offsets by 2^62); parameters that could leave that
      // range are refused rather than computed wrongly.
      RequantSpec s = spec;
      s.stochastic = false;
      s.add.v.resize(c);
      s.adj.v.resize(c);
      for (size_t i = 0; i < c; ++i) {
        s.add.v[i] = static_cast<u64>(ch[i].add);
        s.adj.v[i] = static_cast<u64>(ch[i].adj);
        const i128 vmax = (amax - 1) * ch[i].mult + ch[i].add, vmin = -amax * ch[i].mult + ch[i].add - ch[i].adj;
        if (vmin < -(i128{1} << 62) || vmax >= (i128{1} << 63))
          throw ArgError("mal3: requantization with multiplier " + std::to_string(spec.mult.at(i)) + ", shift " +
                         std::to_string(ch[i].d) + " and a clamp range of " + std::to_string(rbits) + " bits on " +
                         std::to_string(ab) + "-bit accumulators is not supported (the in-range value needs more "
                         "than 64 bits and the composition's exact truncation range [-2^62, 2^63) can be left)");
      }
      return requant_composed(acc, s);
    }
  // Thresholds: the least accumulator in [-amax, amax) with the property, amax if none.
  auto least = [&](auto&& ok) -> i64 {
    i128 lo = -amax, hi = amax;  // ok(hi) holds by convention
    while (lo < hi) {
      const i128 mid = lo + ((hi - lo) >> 1);
      if (ok(mid)) hi = mid;
      else lo = mid + 1;
    }
    return static_cast<i64>(lo);
  };
  for (auto& h : ch) {
    auto v = [&](i128 a) { return a * h.mult + h.add; };
    auto f = [&](i128 a) {
      const i128 x = v(a), half = i128{1} << (h.d - 1);
      return (x - (x < half ? h.adj : 0)) >> h.d;  // floor: arithmetic shift
    };
    h.t_lo = least([&](i128 a) { return f(a) >= h.lo; });
    h.t_hi = least([&](i128 a) { return f(a) >= h.hi + 1; });
    h.t_neg = least([&](i128 a) { return v(a) >= (i128{1} << (h.d - 1)); });
  }
  const int ncmp = any_adj ? 3 : 2;
  std::vector<u64> negt(ncmp * c);
  for (size_t i = 0; i < c; ++i) {
    negt[i] = 0 - static_cast<u64>(ch[i].t_lo);
    negt[c + i] = 0 - static_cast<u64>(ch[i].t_hi);
    if (any_adj) negt[2 * c + i] = 0 - static_cast<u64>(ch[i].t_neg);
  }
  std::vector<Share> cs;
  for (int t = 0; t < ncmp; ++t)
    cs.push_back(add_public(acc, Pub(std::vector<u64>(negt.begin() + t * c, negt.begin() + (t + 1) * c))));
  std::vector<const Share*> cp;
  for (auto& x : cs) cp.push_back(&x);
  const Share all = concat(cp);
  std::vector<Share> lt = split(msb(all, ab + 1), std::vector<Shape>(ncmp, acc.shape));  // [acc < T]
  // y = v - lo 2^d - adj neg
  std::vector<u64> ymul(c), yadd(c), adj(c);
  for (size_t i = 0; i < c; ++i) {
    ymul[i] = static_cast<u64>(ch[i].mult);
    yadd[i] = static_cast<u64>(ch[i].add) - (static_cast<u64>(ch[i].lo) << ch[i].d);
    adj[i] = static_cast<u64>(ch[i].adj);
  }
  Share y = add_public(mul_public(acc, Pub(ymul)), Pub(yadd));
  if (any_adj) y = sub(y, mul_public(lt[2], Pub(adj)));
  std::vector<int> de(n), B(n);
  std::vector<u64> span(c), lo(c);
  for (size_t e = 0; e < n; ++e) {
    de[e] = ch[e % c].d;
    B[e] = de[e] + rbits;
  }
  for (size_t i = 0; i < c; ++i) {
    span[i] = static_cast<u64>(ch[i].hi - ch[i].lo);
    lo[i] = static_cast<u64>(ch[i].lo);
  }
  Share t = trunc_low(y, de, B);
  t.shape = acc.shape;
  Share inr = sub(lt[1], lt[0]);
  Share sel = mul(inr, t);
  // lo + sel + (1 - lt_hi)(hi - lo) = (lo + hi - lo) + sel - lt_hi (hi - lo)
  Share out = sub(sel, mul_public(lt[1], Pub(span)));
  std::vector<u64> base(c);
  for (size_t i = 0; i < c; ++i) base[i] = lo[i] + span[i];
  return add_public(out, Pub(base));
}

}  // namespace mpc
