#include "fault.h"

#include <atomic>
#include <cstring>
#include <mutex>

namespace mpc::fault {

namespace {
std::atomic<bool> g_armed{false};
std::mutex g_mu;
Plan g_plan;
long g_seen = 0, g_done = 0;
u64 g_state = 0;

u64 next_random() {  // splitmix64: test randomness, reproducible from the plan's seed
  u64 z = (g_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

void arm(const Plan& p) {
  if (p.party < 0 || p.party > 2) throw ArgError("fault plan: party must be 0, 1 or 2");
  if (p.kind.empty()) throw ArgError("fault plan: empty kind");
  if (p.skip < 0 || p.count == 0 || p.count < -1) throw ArgError("fault plan: skip >= 0, count >= 1 or -1");
  std::lock_guard<std::mutex> g(g_mu);
  g_plan = p;
  g_seen = g_done = 0;
  g_state = p.seed;
  g_armed.store(true, std::memory_order_relaxed);
}

void disarm() {
  std::lock_guard<std::mutex> g(g_mu);
  g_armed.store(false, std::memory_order_relaxed);
}

bool armed() { return g_armed.load(std::memory_order_relaxed); }

long tampered() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_done;
}

bool maybe_tamper(int me, int to, const char* kind, u64* data, size_t words) {
  if (!armed() || words == 0 || kind == nullptr) return false;
  std::lock_guard<std::mutex> g(g_mu);
  if (!g_armed.load(std::memory_order_relaxed) || me != g_plan.party || g_plan.kind != kind) return false;
  // inconsistent: the copy to the previous party goes out unaltered (and is not counted)
  if (g_plan.mode == Mode::kInconsistent && to >= 0 && to != (me + 1) % 3) return false;
  const long k = g_seen++;
  if (k < g_plan.skip || (g_plan.count != -1 && k >= g_plan.skip + g_plan.count)) return false;
  const size_t i = next_random() % words;
  if (g_plan.mode == Mode::kFlip) {
    data[i] ^= u64(1) << (next_random() % 64);
  } else {
    u64 r;
    do r = next_random();
    while (r == 0);
    data[i] += r;
  }
  ++g_done;
  return true;
}

}  // namespace mpc::fault
