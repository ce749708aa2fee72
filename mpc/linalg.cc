#include "linalg.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu.h"

namespace mpc {

// ------------------------------------------------------------------ scalar GEMM
static void gemm_scalar(size_t M, size_t N, size_t K, const u64* A, size_t lda, const u64* B, size_t ldb,
                        u64* C, size_t ldc) {
  for (size_t i = 0; i < M; ++i) {
    u64* c = C + i * ldc;
    for (size_t k = 0; k < K; ++k) {
      const u64 a = A[i * lda + k];
      const u64* b = B + k * ldb;
      for (size_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

// ------------------------------------------------------------------ AVX-512 GEMM
// B is packed per K-block into panels of 16 columns; a 6x16 tile of C lives in
// twelve registers while the K-block streams through (vpmullq + vpaddq).
namespace {
constexpr size_t KC = 256, NR = 16, MR = 6;

template <int R>
__attribute__((target("avx512f,avx512dq"))) inline void tile512(size_t kc, const u64* A, size_t lda,
                                                               const u64* Bp, u64* C, size_t ldc,
                                                               size_t ncols, bool overwrite) {
  __m512i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (size_t k = 0; k < kc; ++k) {
    __m512i b0 = _mm512_loadu_si512(Bp + k * NR), b1 = _mm512_loadu_si512(Bp + k * NR + 8);
    for (int r = 0; r < R; ++r) {
      __m512i a = _mm512_set1_epi64(static_cast<long long>(A[r * lda + k]));
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_mullo_epi64(a, b0));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_mullo_epi64(a, b1));
    }
  }
  if (ncols == NR && overwrite) {
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_si512(C + r * ldc, acc[r][0]);
      _mm512_storeu_si512(C + r * ldc + 8, acc[r][1]);
    }
  } else if (ncols == NR) {
    for (int r = 0; r < R; ++r) {
      u64* c = C + r * ldc;
      _mm512_storeu_si512(c, _mm512_add_epi64(_mm512_loadu_si512(c), acc[r][0]));
      _mm512_storeu_si512(c + 8, _mm512_add_epi64(_mm512_loadu_si512(c + 8), acc[r][1]));
    }
  } else {
    const __m512i keep = overwrite ? _mm512_setzero_si512() : _mm512_set1_epi64(-1);
    __mmask8 m0 = static_cast<__mmask8>(ncols >= 8 ? 0xff : (1u << ncols) - 1);
    __mmask8 m1 = static_cast<__mmask8>(ncols <= 8 ? 0 : (1u << (ncols - 8)) - 1);
    for (int r = 0; r < R; ++r) {
      u64* c = C + r * ldc;
      _mm512_mask_storeu_epi64(c, m0, _mm512_add_epi64(_mm512_and_si512(_mm512_maskz_loadu_epi64(m0, c), keep), acc[r][0]));
      _mm512_mask_storeu_epi64(c + 8, m1, _mm512_add_epi64(_mm512_and_si512(_mm512_maskz_loadu_epi64(m1, c + 8), keep), acc[r][1]));
    }
  }
}

// AVX2 has no 64-bit multiply: a*b mod 2^64 = lo*lo + ((hi_a*lo_b + lo_a*hi_b) << 32).
// B's high halves are packed beside it, so a k-step costs three vpmuludq per vector.
template <int R>
__attribute__((target("avx2"))) inline void tile256(size_t kc, const u64* A, size_t lda, const u64* Bp,
                                                    const u64* Bh, u64* C, size_t ldc, size_t ncols, bool overwrite) {
  __m256i lo[R][2], cr[R][2];
  for (int r = 0; r < R; ++r) lo[r][0] = lo[r][1] = cr[r][0] = cr[r][1] = _mm256_setzero_si256();
  for (size_t k = 0; k < kc; ++k) {
    __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Bp + k * 8));
    __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Bp + k * 8 + 4));
    __m256i h0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Bh + k * 8));
    __m256i h1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Bh + k * 8 + 4));
    for (int r = 0; r < R; ++r) {
      u64 av = A[r * lda + k];
      __m256i a = _mm256_set1_epi64x(static_cast<long long>(av));
      __m256i ah = _mm256_set1_epi64x(static_cast<long long>(av >> 32));
      lo[r][0] = _mm256_add_epi64(lo[r][0], _mm256_mul_epu32(a, b0));
      lo[r][1] = _mm256_add_epi64(lo[r][1], _mm256_mul_epu32(a, b1));
      cr[r][0] = _mm256_add_epi64(cr[r][0], _mm256_add_epi64(_mm256_mul_epu32(ah, b0), _mm256_mul_epu32(a, h0)));
      cr[r][1] = _mm256_add_epi64(cr[r][1], _mm256_add_epi64(_mm256_mul_epu32(ah, b1), _mm256_mul_epu32(a, h1)));
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) u64 t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_add_epi64(lo[r][0], _mm256_slli_epi64(cr[r][0], 32)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(t + 4), _mm256_add_epi64(lo[r][1], _mm256_slli_epi64(cr[r][1], 32)));
    u64* c = C + r * ldc;
    for (size_t j = 0; j < ncols; ++j) c[j] = (overwrite ? 0 : c[j]) + t[j];
  }
}
}  // namespace

// accumulate=false: the first K-block stores instead of adding (C need not be zeroed).
static void gemm_simd(size_t M, size_t N, size_t K, const u64* A, size_t lda, const u64* B, size_t ldb, u64* C,
                      size_t ldc, bool avx512, bool accumulate) {
  const size_t nr = avx512 ? NR : 8;
  const size_t panels = (N + nr - 1) / nr;
  std::vector<u64> Bp(panels * KC * nr), Bh(avx512 ? 0 : panels * KC * nr);
  for (size_t k0 = 0; k0 < K; k0 += KC) {
    const size_t kc = std::min(KC, K - k0);
    const bool ow = !accumulate && k0 == 0;
    for (size_t p = 0; p < panels; ++p) {  // pack B[k0:k0+kc, p*nr : p*nr+nr]
      u64* dst = Bp.data() + p * KC * nr;
      const size_t j0 = p * nr, nc = std::min(nr, N - j0);
      for (size_t k = 0; k < kc; ++k) {
        const u64* src = B + (k0 + k) * ldb + j0;
        for (size_t j = 0; j < nc; ++j) dst[k * nr + j] = src[j];
        for (size_t j = nc; j < nr; ++j) dst[k * nr + j] = 0;
      }
      if (!avx512) {
        u64* h = Bh.data() + p * KC * nr;
        for (size_t t = 0; t < kc * nr; ++t) h[t] = dst[t] >> 32;
      }
    }
    for (size_t i0 = 0; i0 < M; i0 += MR) {
      const size_t mr = std::min(MR, M - i0);
      const u64* a = A + i0 * lda + k0;
      for (size_t p = 0; p < panels; ++p) {
        const size_t j0 = p * nr, nc = std::min(nr, N - j0);
        u64* c = C + i0 * ldc + j0;
        const u64* bp = Bp.data() + p * KC * nr;
        if (avx512) {
          switch (mr) {
            case 6: tile512<6>(kc, a, lda, bp, c, ldc, nc, ow); break;
            case 5: tile512<5>(kc, a, lda, bp, c, ldc, nc, ow); break;
            case 4: tile512<4>(kc, a, lda, bp, c, ldc, nc, ow); break;
            case 3: tile512<3>(kc, a, lda, bp, c, ldc, nc, ow); break;
            case 2: tile512<2>(kc, a, lda, bp, c, ldc, nc, ow); break;
            default: tile512<1>(kc, a, lda, bp, c, ldc, nc, ow); break;
          }
        } else {
          const u64* bh = Bh.data() + p * KC * nr;
          for (size_t r = 0; r < mr; r += 2) {
            if (mr - r >= 2) tile256<2>(kc, a + r * lda, lda, bp, bh, c + r * ldc, ldc, nc, ow);
            else tile256<1>(kc, a + r * lda, lda, bp, bh, c + r * ldc, ldc, nc, ow);
          }
        }
      }
    }
  }
}

void gemm_u64(size_t M, size_t N, size_t K, const u64* A, size_t lda, const u64* B, size_t ldb, u64* C,
              size_t ldc, bool accumulate) {
  const int rank = simd_rank();
  if (!accumulate && (rank == 0 || K == 0))
    for (size_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, N * sizeof(u64));
  if (M == 0 || N == 0 || K == 0) return;
  if (rank == 0) gemm_scalar(M, N, K, A, lda, B, ldb, C, ldc);
  else gemm_simd(M, N, K, A, lda, B, ldb, C, ldc, rank == 2, accumulate);
}

// ------------------------------------------------------------------ convolution geometry
ConvGeom ConvGeom::make(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t oc,
                        int64_t sh, int64_t sw, int64_t dh, int64_t dw, bool same) {
  ConvGeom g;
  g.n = n; g.h = h; g.w = w; g.c = c; g.kh = kh; g.kw = kw; g.oc = oc;
  g.sh = sh; g.sw = sw; g.dh = dh; g.dw = dw;
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) throw ArgError("conv: strides and dilations must be >= 1");
  const int64_t ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dw + 1;
  if (same) {
    g.oh = (h + sh - 1) / sh;
    g.ow = (w + sw - 1) / sw;
  } else {
    g.oh = h >= ekh ? (h - ekh + sh) / sh : 0;
    g.ow = w >= ekw ? (w - ekw + sw) / sw : 0;
  }
  g.pad_top = std::max<int64_t>(0, ((g.oh - 1) * sh + ekh - h)) / 2;
  g.pad_left = std::max<int64_t>(0, ((g.ow - 1) * sw + ekw - w)) / 2;
  if (!same) g.pad_top = g.pad_left = 0;
  g.validate("conv");
  return g;
}

void ConvGeom::validate(const char* what) const {
  if (n < 1 || h < 1 || w < 1 || c < 1 || kh < 1 || kw < 1 || oc < 1 || oh < 1 || ow < 1)
    throw ArgError(std::string(what) + ": empty or invalid geometry (input " + std::to_string(h) + "x" +
                   std::to_string(w) + "x" + std::to_string(c) + ", filter " + std::to_string(kh) + "x" +
                   std::to_string(kw) + ", output " + std::to_string(oh) + "x" + std::to_string(ow) + ")");
}

void im2col(const u64* x, const ConvGeom& g, u64* out) {
  const int64_t cols = g.kh * g.kw * g.c;
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        u64* row = out + ((b * g.oh + oy) * g.ow + ox) * cols;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = ox * g.sw - g.pad_left + kx * g.dw;
            u64* dst = row + (ky * g.kw + kx) * g.c;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) std::memset(dst, 0, g.c * sizeof(u64));
            else std::memcpy(dst, x + ((b * g.h + iy) * g.w + ix) * g.c, g.c * sizeof(u64));
          }
        }
      }
}

MPC_CLONES static void madd_row(u64* __restrict out, const u64* __restrict x, const u64* __restrict w,
                                size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] += x[i] * w[i];
}

void depthwise_acc(const u64* x, const u64* w, const ConvGeom& g, u64* out, bool accumulate) {
  const int64_t OC = g.oc, m = g.depth_multiplier;
  std::vector<u64> expanded(m == 1 ? 0 : static_cast<size_t>(OC));
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        u64* o = out + ((b * g.oh + oy) * g.ow + ox) * OC;
        if (!accumulate) std::memset(o, 0, OC * sizeof(u64));
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = ox * g.sw - g.pad_left + kx * g.dw;
            if (ix < 0 || ix >= g.w) continue;
            const u64* xi = x + ((b * g.h + iy) * g.w + ix) * g.c;
            if (m != 1) {
              for (int64_t k = 0; k < OC; ++k) expanded[k] = xi[k / m];
              xi = expanded.data();
            }
            madd_row(o, xi, w + (ky * g.kw + kx) * OC, OC);
          }
        }
      }
}

MPC_CLONES void vadd(u64* out, const u64* a, const u64* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
MPC_CLONES void vsub(u64* out, const u64* a, const u64* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}
MPC_CLONES void vmul(u64* out, const u64* a, const u64* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
MPC_CLONES void vxor(u64* out, const u64* a, const u64* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] ^ b[i];
}
MPC_CLONES void vand(u64* out, const u64* a, const u64* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] & b[i];
}

}  // namespace mpc
