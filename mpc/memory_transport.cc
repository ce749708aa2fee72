#include "memory_transport.h"

#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace mpc {

class MemoryTransport : public Transport {
 public:
  MemoryTransport(MemoryNetwork& net, int party) : net_(net), me_(party) {}
  int party() const override { return me_; }
  u64 depth() const override { return net_.depth_[me_]; }
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
      auto& c = net_.ch_[me_ * net_.n_ + to];
      c.q.push_back({std::move(v), bytes, {}, net_.depth_[me_]});
      if (net_.emulate_) c.q.back().due = c.link.schedule(bytes, net_.emu_);
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
    // Emulated link: the message arrives at its due time (the sender did not wait).
    if (net_.emulate_) {
      // Linux delays timed waits by up to 50 us (timer slack) by default: as much as the
      // LAN profile's whole latency. Ask for precise wake-ups on this (party) thread.
      static thread_local bool precise = prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) == 0;
      (void)precise;
      while (!net_.aborted_ && net_.cv_.wait_until(g, c.q.front().due) != std::cv_status::timeout) {
      }
    }
    if (net_.aborted_) throw Error("session aborted: " + net_.why_);
    MemoryNetwork::Msg msg = std::move(c.q.front());
    c.q.pop_front();
    net_.depth_[me_] = std::max(net_.depth_[me_], msg.depth + 1);
    g.unlock();
    if (msg.bytes != bytes)
      throw Error("protocol desync: party " + std::to_string(me_) + " expected " + std::to_string(bytes) +
                  " bytes from party " + std::to_string(from) + ", got " + std::to_string(msg.bytes));
    return msg;
  }

  MemoryNetwork& net_;
  int me_;
};

MemoryNetwork::MemoryNetwork(int parties, double timeout_seconds, const NetEmu& net)
    : n_(parties), timeout_(timeout_seconds), emu_(net), emulate_(net.enabled()),
      ch_(static_cast<size_t>(parties * parties)), depth_(static_cast<size_t>(parties), 0) {}

void MemoryNetwork::abort(const std::string& why) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!aborted_) why_ = why;
    aborted_ = true;
  }
  cv_.notify_all();
}

void MemoryNetwork::align_depth() {
  std::lock_guard<std::mutex> g(mu_);
  u64 m = 0;
  for (u64 d : depth_) m = std::max(m, d);
  for (u64& d : depth_) d = m;
}

void MemoryNetwork::reset() {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& c : ch_) {
    c.q.clear();
    c.link.reset();
  }
  aborted_ = false;
  why_.clear();
}

std::unique_ptr<Transport> MemoryNetwork::endpoint(int party) {
  return std::make_unique<MemoryTransport>(*this, party);
}

}  // namespace mpc
