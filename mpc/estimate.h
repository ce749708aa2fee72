// Cost estimation without evaluating the model under MPC (delegate option estimate=true,
// `tflite-mpc inspect`). Each party's kernels run against an EstimateProtocol whose shares are
// all zero: local work (linear maps, layouts) runs as it would, and every primitive that
// communicates is measured instead on a sample in an in-process session of the real protocol:
//   - trunc, trunc_pr, msb, bits, requant: zero-valued shares of at most
//     kSample elements (whole periods of the call's public parameters, at least three, so
//     per-channel parameters and chunking are those of the full call; the full size when it
//     is smaller), bytes scaled by n / sample, time extrapolated from the sample and a
//     second measurement on a few periods (so the fixed part of a call is not scaled);
//   - products: the whole list at full size (their bytes are the output size; their time is
//     the GEMMs, which no sample represents); input and reveal: at full size too (cheap per
//     element: a sample's timing noise, scaled up, would exceed them).
// Rounds and critical-path depth are the real protocol's (they never depend on the size; the
// measuring runs continue one another's critical path, as the calls of one real run do); bytes are within the
// rounding of bit-packed planes to 64-bit words at the sample size (< 1% here); seconds are
// this machine's compute with the three parties sharing its cores, as in local mode.
// The three parties run side by side and meet at every call that communicates; the last to
// arrive measures it, each real party with its own party's operands (so that, e.g., the zero
// components of input sharings are skipped in products as in a real run), in call order (so
// the protocol's internal state, e.g. rep3's rotating OT sender, evolves as in a real run).
#pragma once
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "local.h"
#include "session.h"

namespace mpc {

class EstimateSession : public Session {
 public:
  static constexpr size_t kSample = 16384;
  explicit EstimateSession(const std::string& protocol);
  ~EstimateSession() override;
  int parties() const override { return 3; }
  bool is_local(int) const override { return true; }
  Protocol& party(int i) override;
  Stats& stats(int i) override { return stats_[i]; }
  // Runs fn for the three parties, one thread each (as local mode does); they meet at every
  // call that communicates, which the last to arrive measures.
  void run(const std::function<void(int, Protocol&)>& fn) override;

  using Replay = std::function<std::vector<Share>(Protocol&, size_t)>;

 private:
  friend class EstimateProtocol;
  void measure(size_t n, size_t period);  // the current call, lock held, every party arrived
  std::unique_ptr<Transport> null_[3];
  Stats stats_[3];
  std::unique_ptr<Comm> comm_[3];
  std::unique_ptr<Protocol> proto_[3];
  LocalSession real_;
  LocalSession timing_;  // times sampled calls at a second, small size (time = a + b n)
  // The call the parties meet at (EstimateProtocol::measure).
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0, finished_ = 0;
  std::exception_ptr cause_;  // the first failure of a run (rethrown by run())
  const char* whats_[3] = {"", "", ""};  // the primitive each party called
  unsigned long gen_ = 0;
  bool broken_ = false;
  const Replay* replays_[3] = {nullptr, nullptr, nullptr};
  size_t sizes_[3] = {0, 0, 0};
  std::vector<Share> outs_[3];
  OpCost cost_[3];
  double measure_seconds_ = 0;
};

}  // namespace mpc
