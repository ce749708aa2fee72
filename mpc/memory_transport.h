// In-memory transport: all parties are threads of this process.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "netem.h"
#include "transport.h"

namespace mpc {

class MemoryNetwork {
 public:
  // net: emulated links (a message is receivable only from its emulated arrival time).
  explicit MemoryNetwork(int parties, double timeout_seconds = 120.0, const NetEmu& net = NetEmu());
  // Wakes every blocked receiver with an error (a party failed).
  void abort(const std::string& why);
  void reset();  // clears queues and the abort flag (between independent runs)
  // Every party starts the next run together (a local barrier, not a message):
  // their critical-path depths restart from the same value. Call while no party runs.
  void align_depth();
  std::unique_ptr<Transport> endpoint(int party);
  int parties() const { return n_; }

 private:
  friend class MemoryTransport;
  struct Msg {
    Vec data;
    size_t bytes;
    EmulatedLink::Clock::time_point due;  // emulated arrival (emulation only)
    u64 depth;                            // the sender's critical-path depth when sent
  };
  struct Channel {
    std::deque<Msg> q;
    EmulatedLink link;
  };
  int n_;
  double timeout_;
  NetEmu emu_;
  bool emulate_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Channel> ch_;  // ch_[from * n + to]
  std::vector<u64> depth_;   // per party: Lamport clock of message hops (its own thread only, or align_depth)
  bool aborted_ = false;
  std::string why_;
};

}  // namespace mpc
