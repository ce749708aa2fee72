#include "gr.h"

#include "../linalg.h"  // MPC_CLONES

#include <vector>

namespace mpc::gr {

MPC_CLONES void inner(const u64* a, const u64* b, size_t n, u64* out) {
  u64 acc[kWide] = {};
  for (size_t k = 0; k < n; ++k) mac(acc, a + k * D, b + k * D);
  reduce(acc, out);
}

MPC_CLONES void inner_diff(const u64* a0, const u64* a1, const u64* b0, const u64* b1, size_t n, u64* out) {
  u64 acc[kWide] = {};
  u64 da[D], db[D];
  for (size_t k = 0; k < n; ++k) {
    for (int i = 0; i < D; ++i) {
      da[i] = a1[k * D + i] - a0[k * D + i];
      db[i] = b1[k * D + i] - b0[k * D + i];
    }
    mac(acc, da, db);
  }
  reduce(acc, out);
}

MPC_CLONES void fold(const u64* v0, const u64* v1, const u64* r, size_t n, u64* out) {
  u64 d[D], t[D];
  for (size_t k = 0; k < n; ++k) {
    for (int i = 0; i < D; ++i) d[i] = v1[k * D + i] - v0[k * D + i];
    mul(r, d, t);
    for (int i = 0; i < D; ++i) out[k * D + i] = v0[k * D + i] + t[i];
  }
}

}  // namespace mpc::gr
