// Run-time CPU feature detection: the installed binary is portable
// (baseline x86-64); fast paths are selected here once per process.
#pragma once
#include <string>

namespace mpc {

struct CpuFeatures {
  bool aesni = false, avx2 = false, avx512 = false /* F+DQ+BW+VL */, vaes512 = false;
  bool vbmi512 = false;  // avx512 + VBMI (byte permutes)
};

const CpuFeatures& cpu();
// "avx512", "avx2" or "scalar": the GEMM/elementwise path in use.
std::string simd_level();
// Force a lower level (for tests and benchmarks); "" restores autodetection.
void force_simd_level(const std::string& level);
int simd_rank();  // 2 = avx512, 1 = avx2, 0 = scalar

}  // namespace mpc
