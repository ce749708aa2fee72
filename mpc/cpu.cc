#include "cpu.h"

#include "common.h"

namespace mpc {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.aesni = __builtin_cpu_supports("aes");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  f.vaes512 = f.avx512 && __builtin_cpu_supports("vaes");
  f.vbmi512 = f.avx512 && __builtin_cpu_supports("avx512vbmi");
#endif
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures f = detect();
  return f;
}

static int forced = -1;

int simd_rank() {
  int best = cpu().avx512 ? 2 : cpu().avx2 ? 1 : 0;
  return forced >= 0 && forced < best ? forced : best;
}

std::string simd_level() {
  static const char* names[] = {"scalar", "avx2", "avx512"};
  return names[simd_rank()];
}

void force_simd_level(const std::string& level) {
  if (level.empty()) forced = -1;
  else if (level == "scalar") forced = 0;
  else if (level == "avx2") forced = 1;
  else if (level == "avx512") forced = 2;
  else throw ArgError("unknown SIMD level '" + level + "' (valid: avx512, avx2, scalar)");
}

}  // namespace mpc
