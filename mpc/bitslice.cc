#include "bitslice.h"

#include <algorithm>
#include <cstring>

#include "cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace mpc {
namespace {

// In-place 64x64 bit-matrix transpose: bit j of a[i] <-> bit i of a[j].
void transpose64(u64* a) {
  u64 m = 0x00000000FFFFFFFFULL;
  for (int j = 32; j != 0; j >>= 1, m ^= (m << j)) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      u64 t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

void planes_portable(const u64* v, size_t n, size_t planes, size_t W, u64* out) {
  u64 blk[64];
  for (size_t w = 0; w < W; ++w) {
    const size_t base = w * 64, cnt = base < n ? std::min<size_t>(64, n - base) : 0;
    if (cnt) std::memcpy(blk, v + base, cnt * 8);
    std::memset(blk + cnt, 0, (64 - cnt) * 8);
    transpose64(blk);
    for (size_t j = 0; j < planes; ++j) out[j * W + w] = blk[j];
  }
}

#if defined(__x86_64__)
// Per block of 64 values (eight registers of eight): vpermb gathers byte b of a register's
// eight values into its 64-bit lane b; an 8 x 8 transpose of 64-bit lanes (three rounds of
// two-source permutes) gives R[b], whose byte i is byte b of value i; plane 8b + t is then
// the mask of R[b]'s bytes with bit t set (vptestmb).
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void planes_vbmi(const u64* v, size_t n, size_t planes,
                                                                       size_t W, u64* out) {
  alignas(64) uint8_t bidx[64];
  for (int b = 0; b < 8; ++b)
    for (int k = 0; k < 8; ++k) bidx[8 * b + k] = static_cast<uint8_t>(8 * k + b);
  const __m512i by_byte = _mm512_load_si512(bidx);
  const __m512i i_lo = _mm512_setr_epi64(0, 8, 2, 10, 4, 12, 6, 14), i_hi = _mm512_setr_epi64(1, 9, 3, 11, 5, 13, 7, 15);
  const __m512i j_lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), j_hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  const __m512i k_lo = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), k_hi = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  __m512i bit[8];
  for (int t = 0; t < 8; ++t) bit[t] = _mm512_set1_epi8(static_cast<char>(1 << t));
  const size_t nb = (planes + 7) / 8;
  alignas(64) u64 tmp[64];
  for (size_t w = 0; w < W; ++w) {
    const size_t base = w * 64;
    const u64* src = v + base;
    if (base + 64 > n) {
      const size_t cnt = base < n ? n - base : 0;
      if (cnt) std::memcpy(tmp, v + base, cnt * 8);
      std::memset(tmp + cnt, 0, (64 - cnt) * 8);
      src = tmp;
    }
    __m512i z[8], s[8], u[8], r[8];
    for (int k = 0; k < 8; ++k) z[k] = _mm512_permutexvar_epi8(by_byte, _mm512_loadu_si512(src + 8 * k));
    for (int k = 0; k < 8; k += 2) {
      s[k] = _mm512_permutex2var_epi64(z[k], i_lo, z[k + 1]);
      s[k + 1] = _mm512_permutex2var_epi64(z[k], i_hi, z[k + 1]);
    }
    // u0 = (s0, s2) lo, u2 = (s0, s2) hi, u1 = (s1, s3) lo, u3 = (s1, s3) hi; likewise 4..7
    for (int h = 0; h < 8; h += 4) {
      u[h] = _mm512_permutex2var_epi64(s[h], j_lo, s[h + 2]);
      u[h + 2] = _mm512_permutex2var_epi64(s[h], j_hi, s[h + 2]);
      u[h + 1] = _mm512_permutex2var_epi64(s[h + 1], j_lo, s[h + 3]);
      u[h + 3] = _mm512_permutex2var_epi64(s[h + 1], j_hi, s[h + 3]);
    }
    for (int b = 0; b < 4; ++b) {
      r[b] = _mm512_permutex2var_epi64(u[b], k_lo, u[b + 4]);
      r[b + 4] = _mm512_permutex2var_epi64(u[b], k_hi, u[b + 4]);
    }
    for (size_t b = 0; b < nb; ++b)
      for (int t = 0; t < 8 && 8 * b + t < planes; ++t)
        out[(8 * b + t) * W + w] = _mm512_test_epi8_mask(r[b], bit[t]);
  }
}

#endif

}  // namespace

void bit_planes(const u64* v, size_t n, size_t planes, size_t W, u64* out) {
  if (W * 64 < n) throw ArgError("internal: bit planes narrower than the values");
  if (planes > 64) {  // a value has 64 bits: the planes above are zero
    std::memset(out + 64 * W, 0, (planes - 64) * W * 8);
    planes = 64;
  }
#if defined(__x86_64__)
  if (cpu().vbmi512 && simd_rank() >= 2) return planes_vbmi(v, n, planes, W, out);
#endif
  planes_portable(v, n, planes, W, out);
}

}  // namespace mpc
