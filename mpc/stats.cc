#include "stats.h"

#include <chrono>

namespace mpc {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

OpScope::OpScope(Stats& s, const char* name) : s_(s), outer_(s.cur == nullptr) {
  if (outer_) {
    s_.cur = &s_.ops[name];
    s_.cur->calls++;
    t0_ = now_seconds();
  }
}

OpScope::~OpScope() {
  if (outer_) {
    s_.cur->seconds += now_seconds() - t0_;
    s_.cur = nullptr;
  }
}

}  // namespace mpc
