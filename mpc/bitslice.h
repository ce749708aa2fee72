// Bit slicing: values to bit planes (the Boolean circuits' layout).
#pragma once

#include <cstddef>

#include "common.h"

namespace mpc {

// out[j * W + w] = bit plane j of the values v[64 w .. 64 w + 63]: its bit i is bit j of
// v[64 w + i] (values at or past n count as zero; planes from 64 on are zero), for j < planes
// and w < W, W >= the words n values need. No branch or memory access depends on the values. AVX-512 VBMI
// where the CPU has it and the SIMD level is not forced lower (force_simd_level), else a
// portable 64 x 64 transpose.
void bit_planes(const u64* v, size_t n, size_t planes, size_t W, u64* out);

}  // namespace mpc
