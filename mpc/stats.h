// Per-party cost accounting: bytes and rounds per operation kind.
#pragma once
#include <map>
#include <string>

#include "common.h"

namespace mpc {

struct OpCost {
  u64 bytes_sent = 0, bytes_recv = 0, rounds = 0, calls = 0;
  // Critical-path depth: how many message hops the longest chain of dependent
  // messages ending at this party grew by (>= rounds when a counted round hides a
  // second hop). Tracked by the in-memory transport only (0 over TCP).
  u64 depth = 0;
  // Bytes sent to each party (index = receiver): the load of each outgoing link, which is
  // what a per-link bandwidth limit acts on.
  u64 bytes_to[3] = {0, 0, 0};
  double seconds = 0;
  // Estimates only (mpc/estimate.h): seconds to add to the wall-clock time of what ran
  // (the full-size cost of the calls measured on samples, less the time spent measuring).
  double adjust_seconds = 0;
  void add(const OpCost& o) {
    bytes_sent += o.bytes_sent; bytes_recv += o.bytes_recv; rounds += o.rounds; depth += o.depth;
    calls += o.calls; seconds += o.seconds; adjust_seconds += o.adjust_seconds;
    for (int i = 0; i < 3; ++i) bytes_to[i] += o.bytes_to[i];
  }
};

struct Stats {
  std::map<std::string, OpCost> ops;
  OpCost* cur = nullptr;  // innermost open scope; nested scopes charge the outermost
  OpCost& current() { return cur ? *cur : ops["other"]; }
  OpCost total() const {
    OpCost t;
    for (auto& kv : ops) t.add(kv.second);
    return t;
  }
  void reset() { ops.clear(); cur = nullptr; }
};

// Charges everything done while it lives to `name`, unless an outer scope is open.
class OpScope {
 public:
  OpScope(Stats& s, const char* name);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  Stats& s_;
  bool outer_;
  double t0_ = 0;
};

double now_seconds();

}  // namespace mpc
