// A session of all parties inside this process, one thread each, over the
// in-memory transport: the embedded default. run() executes one function on
// every party concurrently and rethrows the first failure (after waking the
// other parties, so a failure never leaves a thread blocked).
#pragma once
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "memory_transport.h"
#include "protocol.h"
#include "session.h"

namespace mpc {

class LocalSession : public Session {
 public:
  // net: emulated links between the parties (NetEmu(): none).
  LocalSession(const std::string& protocol, double timeout_seconds = 120.0, int parties = 3,
               const NetEmu& net = NetEmu());
  ~LocalSession() override;
  LocalSession(const LocalSession&) = delete;
  LocalSession& operator=(const LocalSession&) = delete;

  int parties() const override { return n_; }
  bool is_local(int) const override { return true; }
  Protocol& party(int i) override { return *proto_[i]; }
  Stats& stats(int i) override { return stats_[i]; }
  void run(const std::function<void(int, Protocol&)>& fn) override;
  // A run that continues the previous one's critical path (no depth alignment first): what
  // the estimate (mpc/estimate.h) uses to measure one run's calls as many runs.
  void run_continuing(const std::function<void(int, Protocol&)>& fn);
  void align_depth() { net_.align_depth(); }

 private:
  void worker(int i);
  int n_;
  MemoryNetwork net_;
  std::vector<Stats> stats_;
  std::vector<std::unique_ptr<Transport>> tr_;
  std::vector<std::unique_ptr<Comm>> comm_;
  std::vector<std::unique_ptr<Protocol>> proto_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  bool broken_ = false;
  const std::function<void(int)>* raw_job_ = nullptr;
  unsigned long gen_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<std::exception_ptr> errors_;
  void dispatch(const std::function<void(int)>& fn, bool align = true);
};

}  // namespace mpc
