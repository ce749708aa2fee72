// A session runs one or more parties of a protocol in this process: all of
// them (LocalSession, in-memory transport) or just one (RemoteSession, TCP/TLS
// to the other parties' processes). The delegate runs its plans on either.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol.h"
#include "tcp_transport.h"

namespace mpc {

class Session {
 public:
  virtual ~Session() = default;
  virtual int parties() const = 0;
  virtual bool is_local(int party) const = 0;
  virtual Protocol& party(int i) = 0;
  virtual Stats& stats(int i) = 0;
  // Runs fn for every party hosted here (concurrently if several).
  virtual void run(const std::function<void(int, Protocol&)>& fn) = 0;
  // Ends the session for good (a distributed session says goodbye to the other
  // parties); later runs fail. Idempotent.
  virtual void end() {}

 private:
  // Destroyed after the derived session's members (its buffers are back in the
  // pool by then): wipes the pool's cached blocks when a session ends.
  struct WipeOnEnd {
    ~WipeOnEnd() { pool_wipe(); }
  } wipe_on_end_;
};

class RemoteSession : public Session {
 public:
  // Connects, authenticates and checks the hello with every other party, then
  // sets up the protocol (one more round). Throws Error on any failure.
  RemoteSession(const std::string& protocol, const TcpOptions& opt);
  // Ends the session (end()).
  ~RemoteSession() override;
  int parties() const override { return n_; }
  bool is_local(int p) const override { return p == me_; }
  Protocol& party(int i) override;
  Stats& stats(int i) override;
  void run(const std::function<void(int, Protocol&)>& fn) override;
  // Goodbye "finished", or "after an error" once a run failed here.
  void end() override;

 private:
  int me_, n_;
  bool broken_ = false;   // a run failed: the parties may be out of step
  bool failed_ = false;   // ... because of an error here (not a peer that left)
  std::string why_;       // that error's (or the peer's leaving) first line, told to the peers at the end
  bool ended_ = false;
  std::unique_ptr<TcpNetwork> net_;
  std::unique_ptr<Transport> tr_;
  Stats stats_;
  std::unique_ptr<Comm> comm_;
  std::unique_ptr<Protocol> proto_;
};

}  // namespace mpc
