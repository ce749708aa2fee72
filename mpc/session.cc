#include "session.h"

namespace mpc {

RemoteSession::RemoteSession(const std::string& protocol, const TcpOptions& opt)
    : me_(opt.me), n_(static_cast<int>(opt.parties.size())) {
  net_ = std::make_unique<TcpNetwork>(opt);
  tr_ = net_->endpoint();
  comm_ = std::make_unique<Comm>(*tr_, stats_);
  proto_ = make_protocol(protocol, *comm_);
}

RemoteSession::~RemoteSession() = default;

Protocol& RemoteSession::party(int i) {
  if (i != me_) throw Error("party " + std::to_string(i) + " is not hosted in this process");
  return *proto_;
}

Stats& RemoteSession::stats(int i) {
  if (i != me_) throw Error("party " + std::to_string(i) + " is not hosted in this process");
  return stats_;
}

void RemoteSession::run(const std::function<void(int, Protocol&)>& fn) {
  if (broken_) throw Error("the session with the other parties failed earlier; create a new one");
  try {
    fn(me_, *proto_);
  } catch (const ArgError&) {
    throw;
  } catch (...) {
    broken_ = true;  // the parties may be out of step now
    throw;
  }
}

}  // namespace mpc
