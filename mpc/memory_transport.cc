#include "memory_transport.h"

#include <chrono>
#include <cstring>

namespace mpc {

class MemoryTransport : public Transport {
 public:
  MemoryTransport(MemoryNetwork& net, int party) : net_(net), me_(party) {}
  int party() const override { return me_; }
  int parties() const override { return net_.n_; }

  void send(int to, const void* data, size_t bytes) override {
    Vec v((bytes + 7) / 8);
    std::memcpy(v.data(), data, bytes);
    push(to, std::move(v), bytes);
  }
  void send_vec(int to, Vec&& v) override {
    const size_t bytes = v.size() * 8;
    push(to, std::move(v), bytes);
  }
  void recv(int from, void* data, size_t bytes) override {
    MemoryNetwork::Msg m = pop(from, bytes);
    std::memcpy(data, m.data.data(), bytes);
  }
  void recv_vec(int from, Vec& out, size_t words) override { out = std::move(pop(from, words * 8).data); }

 private:
  void push(int to, Vec&& v, size_t bytes) {
    {
      std::lock_guard<std::mutex> g(net_.mu_);
      if (net_.aborted_) throw Error("session aborted: " + net_.why_);
      net_.ch_[me_ * net_.n_ + to].q.push_back({std::move(v), bytes});
    }
    net_.cv_.notify_all();
  }

  MemoryNetwork::Msg pop(int from, size_t bytes) {
    std::unique_lock<std::mutex> g(net_.mu_);
    auto& c = net_.ch_[from * net_.n_ + me_];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(net_.timeout_);
    while (c.q.empty() && !net_.aborted_) {
      if (net_.cv_.wait_until(g, deadline) == std::cv_status::timeout && c.q.empty() && !net_.aborted_)
        throw Error("party " + std::to_string(me_) + ": timed out waiting for party " + std::to_string(from));
    }
    if (net_.aborted_) throw Error("session aborted: " + net_.why_);
    MemoryNetwork::Msg msg = std::move(c.q.front());
    c.q.pop_front();
    g.unlock();
    if (msg.bytes != bytes)
      throw Error("protocol desync: party " + std::to_string(me_) + " expected " + std::to_string(bytes) +
                  " bytes from party " + std::to_string(from) + ", got " + std::to_string(msg.bytes));
    return msg;
  }

  MemoryNetwork& net_;
  int me_;
};

MemoryNetwork::MemoryNetwork(int parties, double timeout_seconds)
    : n_(parties), timeout_(timeout_seconds), ch_(static_cast<size_t>(parties * parties)) {}

void MemoryNetwork::abort(const std::string& why) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!aborted_) why_ = why;
    aborted_ = true;
  }
  cv_.notify_all();
}

void MemoryNetwork::reset() {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& c : ch_) c.q.clear();
  aborted_ = false;
  why_.clear();
}

std::unique_ptr<Transport> MemoryNetwork::endpoint(int party) {
  return std::make_unique<MemoryTransport>(*this, party);
}

}  // namespace mpc
