#include "session.h"

#include "wire.h"

namespace mpc {

RemoteSession::RemoteSession(const std::string& protocol, const TcpOptions& opt)
    : me_(opt.me), n_(static_cast<int>(opt.parties.size())) {
  net_ = std::make_unique<TcpNetwork>(opt);
  tr_ = net_->endpoint();
  comm_ = std::make_unique<Comm>(*tr_, stats_);
  try {
    proto_ = make_protocol(protocol, *comm_);  // one round with the other parties
  } catch (const SessionEnded&) {
    throw;
  } catch (...) {
    net_->close("after an error");
    throw;
  }
}

RemoteSession::~RemoteSession() { end(); }

void RemoteSession::end() {
  if (ended_) return;
  ended_ = true;
  // The peers learn why (the first line of our error, e.g. which party left first), so
  // that a data owner waiting on us hears the cause and not only that we stopped.
  std::string reason = "finished";
  if (failed_) reason = why_.empty() ? std::string("after an error") : "after an error: " + printable(why_, 120);
  else if (broken_ && !why_.empty()) reason = "because " + printable(why_, 120);  // a peer left first
  net_->close(reason);
}

Protocol& RemoteSession::party(int i) {
  if (i != me_) throw Error("party " + std::to_string(i) + " is not hosted in this process");
  return *proto_;
}

Stats& RemoteSession::stats(int i) {
  if (i != me_) throw Error("party " + std::to_string(i) + " is not hosted in this process");
  return stats_;
}

void RemoteSession::run(const std::function<void(int, Protocol&)>& fn) {
  if (ended_) throw Error("party " + std::to_string(me_) + ": the session has ended; create a new one");
  if (broken_) throw Error("the session with the other parties failed earlier; create a new one");
  try {
    fn(me_, *proto_);
  } catch (const ArgError&) {
    throw;
  } catch (const SessionEnded& e) {
    broken_ = true;  // a peer left: no failure of ours
    why_ = e.what();
    why_ = why_.substr(0, why_.find('\n'));
    throw;
  } catch (const std::exception& e) {
    failed_ = true;
    broken_ = true;  // the parties may be out of step now
    why_ = e.what();
    why_ = why_.substr(0, why_.find('\n'));
    throw;
  } catch (...) {
    failed_ = true;
    broken_ = true;
    throw;
  }
}

}  // namespace mpc
