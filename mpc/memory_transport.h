// In-memory transport: all parties are threads of this process.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport.h"

namespace mpc {

class MemoryNetwork {
 public:
  explicit MemoryNetwork(int parties, double timeout_seconds = 120.0);
  // Wakes every blocked receiver with an error (a party failed).
  void abort(const std::string& why);
  void reset();  // clears queues and the abort flag (between independent runs)
  std::unique_ptr<Transport> endpoint(int party);
  int parties() const { return n_; }

 private:
  friend class MemoryTransport;
  struct Msg {
    Vec data;
    size_t bytes;
  };
  struct Channel {
    std::deque<Msg> q;
  };
  int n_;
  double timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Channel> ch_;  // ch_[from * n + to]
  bool aborted_ = false;
  std::string why_;
};

}  // namespace mpc
