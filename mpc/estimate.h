// Cost estimation without evaluating the model under MPC (delegate option estimate=true,
// `tflite-mpc inspect`). Each party's kernels run against an EstimateProtocol whose shares are
// all zero: local work (linear maps, layouts) runs as it would, and every primitive that
// communicates is measured instead on a sample in an in-process session of the real protocol:
//   - input, reveal, trunc, trunc_pr, msb, bits, requant: zero-valued shares of at most
//     kSample elements (whole periods of the call's public parameters, at least three, so
//     per-channel parameters and chunking are those of the full call; the full size when it
//     is smaller), bytes and time scaled by n / sample;
//   - products: the whole list at full size (their bytes are the output size; their time is
//     the GEMMs, which no sample represents).
// Rounds and critical-path depth are the real protocol's (they never depend on the size; the
// measuring runs continue one another's critical path, as the calls of one real run do); bytes are within the
// rounding of bit-packed planes to 64-bit words at the sample size (< 1% here); seconds are
// this machine's compute with the three parties sharing its cores, as in local mode.
// The calls made by the three parties are the same, in the same order: party 0's run measures
// each one (in call order, so the protocol's internal state, e.g. rep3's rotating OT sender,
// evolves as in a real run) and parties 1 and 2 replay the recorded per-party figures.
#pragma once
#include <memory>
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
  // Runs fn for party 0, 1, 2 in turn.
  void run(const std::function<void(int, Protocol&)>& fn) override;

  // One measured call: per party its cost (time = seconds of the full-size call) and the
  // shapes of what it returned (party 0's; the same at every party).
  struct Call {
    OpCost cost[3];
    double measure_seconds = 0;  // wall time spent measuring (at party 0)
    std::vector<Shape> shapes;
  };

 private:
  friend class EstimateProtocol;
  std::unique_ptr<Transport> null_[3];
  Stats stats_[3];
  std::unique_ptr<Comm> comm_[3];
  std::unique_ptr<Protocol> proto_[3];
  LocalSession real_;
  std::vector<Call> calls_;
};

}  // namespace mpc
