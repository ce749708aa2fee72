// Local (per-party) linear algebra over Z_2^64: the hot loops behind secure
// products. All arithmetic wraps mod 2^64. The GEMM path (AVX-512, AVX2 or
// scalar) is chosen at run time; elementwise loops are compiled per ISA.
#pragma once
#include <cstddef>

#include "common.h"

#define MPC_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))

namespace mpc {

// C[M x N] (+)= A[M x K] * B[K x N], row-major with leading dimensions.
void gemm_u64(size_t M, size_t N, size_t K, const u64* A, size_t lda, const u64* B, size_t ldb, u64* C,
              size_t ldc, bool accumulate);

struct ConvGeom {
  int64_t n = 1, h = 0, w = 0, c = 0;   // input NHWC
  int64_t kh = 1, kw = 1;               // filter spatial size
  int64_t oc = 0;                       // output channels
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t oh = 0, ow = 0;
  int64_t depth_multiplier = 1;         // depthwise only
  // TFLite padding: SAME (pad != 0) or VALID. Fills pads and output size.
  static ConvGeom make(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t oc,
                       int64_t sh, int64_t sw, int64_t dh, int64_t dw, bool same);
  void validate(const char* what) const;
};

// Rows = n*oh*ow, cols = kh*kw*c; padded positions are zero.
void im2col(const u64* x, const ConvGeom& g, u64* out);

// out[n,oh,ow,oc] (+)= sum_taps x[..] * w[kh,kw,oc] (TFLite depthwise layout [1,KH,KW,OC]).
void depthwise_acc(const u64* x, const u64* w, const ConvGeom& g, u64* out, bool accumulate);

// Elementwise helpers (vectorised per ISA).
void vadd(u64* out, const u64* a, const u64* b, size_t n);
void vsub(u64* out, const u64* a, const u64* b, size_t n);
void vmul(u64* out, const u64* a, const u64* b, size_t n);
void vxor(u64* out, const u64* a, const u64* b, size_t n);
void vand(u64* out, const u64* a, const u64* b, size_t n);

}  // namespace mpc
