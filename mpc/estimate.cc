#include "estimate.h"

#include <cstring>
#include <numeric>
#include <thread>

namespace mpc {

namespace {

class NullTransport : public Transport {
 public:
  explicit NullTransport(int me) : me_(me) {}
  int party() const override { return me_; }
  int parties() const override { return 3; }
  void send(int, const void*, size_t) override { throw Error("internal: an estimate sends no message"); }
  void recv(int, void*, size_t) override { throw Error("internal: an estimate receives no message"); }

 private:
  int me_;
};

Share zeros(const Shape& shape) {
  const size_t n = shape_size(shape);
  return Share{shape, Vec(n, 0), Vec(n, 0)};
}

size_t lcm_of(size_t a, size_t b) { return a / std::gcd(a, b) * b; }

// Sample size for a call on n elements whose public parameters repeat every `period`.
size_t sample_size(size_t n, size_t period) {
  if (n <= EstimateSession::kSample || period == 0 || n % period != 0) return n;
  size_t k = std::max<size_t>(3, (EstimateSession::kSample + period - 1) / period);
  return std::min(n, k * period);
}

}  // namespace

class EstimateProtocol : public Protocol {
 public:
  EstimateProtocol(Comm& c, EstimateSession& s) : Protocol(c), s_(s) {}
  const char* name() const override { return s_.real_.party(0).name(); }

  Share input(int owner, const Shape& shape, const u64*) override {
    // At full size (cheap per element: a sample's timing noise, scaled up, would exceed it); the
    // real sharing of zeros is this party's share, with the protocol's zero components.
    auto out = measure(shape_size(shape), 0, [&](Protocol& p, size_t ns) {
      Vec v(p.party() == owner ? ns : 0, 0);
      return one(p.input(owner, shape, p.party() == owner ? v.data() : nullptr));
    });
    return std::move(out.at(0));
  }
  Vec reveal(const Share& x, int to) override {
    measure(x.size(), 0, [&](Protocol& p, size_t ns) {  // full size (outputs are small)
      p.reveal(zeros({static_cast<int64_t>(ns)}), to);
      return std::vector<Share>{};
    });
    if (to != -1 && to != party()) return {};
    return Vec(x.size(), 0);
  }
  // Local operations: the real protocol's own (its party object is idle outside a
  // measurement), so zero components are kept or cleared exactly as in a real run.
  Share add(const Share& x, const Share& y) override { return real().add(x, y); }
  Share sub(const Share& x, const Share& y) override { return real().sub(x, y); }
  Share neg(const Share& x) override { return real().neg(x); }
  Share add_public(const Share& x, const Pub& c) override { return real().add_public(x, c); }
  Share mul_public(const Share& x, const Pub& c) override { return real().mul_public(x, c); }
  Share linear(const Share& x, const Shape& out_shape,
               const std::function<void(const u64*, u64*)>& f) override {
    return real().linear(x, out_shape, f);
  }
  std::vector<Share> products(const std::vector<Product>& list) override {
    size_t n = 0;
    for (auto& pr : list) n += pr.x ? pr.x->size() : 0;
    // At full size, each party with its own operands (their zero components are the real ones).
    return measure(n, 0, [&](Protocol& p, size_t) { return p.products(list); });
  }
  Share trunc_pr(const Share& x, const Shifts& d) override {
    measure(x.size(), d.v.size(), [&](Protocol& p, size_t ns) { return one(p.trunc_pr(sample(ns), d)); });
    return zeros(x.shape);
  }
  Share trunc(const Share& x, const Shifts& d) override {
    measure(x.size(), d.v.size(), [&](Protocol& p, size_t ns) { return one(p.trunc(sample(ns), d)); });
    return zeros(x.shape);
  }
  Share msb(const Share& x, int bits) override {
    measure(x.size(), 1, [&](Protocol& p, size_t ns) { return one(p.msb(sample(ns), bits)); });
    return zeros(x.shape);
  }
  std::vector<Share> bits(const Share& x, int k) override {
    measure(x.size(), 1, [&](Protocol& p, size_t ns) { return p.bits(sample(ns), k); });
    return std::vector<Share>(static_cast<size_t>(std::max(k, 0)), zeros(x.shape));
  }
  Share requant(const Share& acc, const RequantSpec& s) override {
    size_t period = 1;
    for (size_t len : {s.mult.v.size(), s.add.v.size(), s.d.v.size(), s.adj.v.size(), s.lo.v.size(), s.hi.v.size()})
      if (len > 0) period = lcm_of(period, len);
    measure(acc.size(), period, [&](Protocol& p, size_t ns) { return one(p.requant(sample(ns), s)); });
    return zeros(acc.shape);
  }

 private:
  EstimateSession& s_;

  Protocol& real() { return s_.real_.party(party()); }
  static Share sample(size_t ns) { return zeros({static_cast<int64_t>(ns)}); }
  static std::vector<Share> one(Share&& x) {
    std::vector<Share> v;
    v.push_back(std::move(x));
    return v;
  }

  // The next call, made by the three parties in lockstep: the last to arrive measures it in
  // the real protocol's session, each real party with its own party's operands (replay; on a
  // sample of ns elements, or at full size when period is 0), and every party adds its
  // scaled cost. Returns what this party's replay returned.
  std::vector<Share> measure(size_t n, size_t period, const EstimateSession::Replay& replay,
                             const char* what = __builtin_FUNCTION()) {
    EstimateSession& S = s_;
    const int me = party();
    std::unique_lock<std::mutex> g(S.mu_);
    if (S.broken_) throw Error("estimate: another party failed");
    S.replays_[me] = &replay;
    S.sizes_[me] = n;
    S.whats_[me] = what;
    const unsigned long gen = S.gen_;
    if (++S.arrived_ == 3) {
      try {
        if (S.sizes_[0] != S.sizes_[1] || S.sizes_[0] != S.sizes_[2] || std::strcmp(S.whats_[0], S.whats_[1]) != 0 ||
            std::strcmp(S.whats_[0], S.whats_[2]) != 0)
          throw Error("internal: the parties' calls differ");
        S.measure(n, period);
      } catch (...) {
        if (!S.cause_) S.cause_ = std::current_exception();
        S.broken_ = true;
        S.cv_.notify_all();
        throw;
      }
      S.arrived_ = 0;
      ++S.gen_;
      S.cv_.notify_all();
    } else {
      // every other party arrives, or fails, or (a bug: calls differ) finishes without arriving
      S.cv_.wait(g, [&] { return S.gen_ != gen || S.broken_ || S.arrived_ + S.finished_ == 3; });
      if (S.gen_ == gen) {
        S.broken_ = true;
        S.cv_.notify_all();
        throw Error(S.arrived_ + S.finished_ == 3 ? "internal: a party finished while the others wait at a call"
                                                  : "estimate: another party failed");
      }
    }
    const OpCost& d = S.cost_[me];
    OpCost& cur = stats().current();
    cur.bytes_sent += d.bytes_sent;
    cur.bytes_recv += d.bytes_recv;
    for (int j = 0; j < 3; ++j) cur.bytes_to[j] += d.bytes_to[j];
    cur.rounds += d.rounds;
    cur.depth += d.depth;
    // What the full-size call would take, in place of the time spent measuring it.
    cur.adjust_seconds += d.seconds - S.measure_seconds_;
    return std::move(S.outs_[me]);
  }
};

void EstimateSession::measure(size_t n, size_t period) {
  const size_t ns = period == 0 ? n : sample_size(n, period);
  const double scale = ns == 0 ? 1.0 : static_cast<double>(n) / static_cast<double>(ns);
  OpCost before[3];
  for (int i = 0; i < 3; ++i) before[i] = real_.stats(i).total();
  const double t0 = now_seconds();
  real_.run_continuing([&](int i, Protocol& p) { outs_[i] = (*replays_[i])(p, ns); });
  const double wall = now_seconds() - t0;
  // Time: a sampled call's fixed part (dispatch, rounds) must not be scaled with the size, so
  // the same call is also timed on a few periods in a second session (whose protocol state
  // does not matter), and the time is extrapolated along the line through both points.
  double full = wall * scale;
  const size_t n0 = period == 0 ? 0 : std::max<size_t>(1, 64 / period) * period;
  if (ns < n && n0 < ns) {
    const double t1 = now_seconds();
    timing_.run([&](int i, Protocol& p) { (*replays_[i])(p, n0); });
    const double w0 = now_seconds() - t1;
    full = w0 + std::max(0.0, wall - w0) * static_cast<double>(n - n0) / static_cast<double>(ns - n0);
  }
  for (int i = 0; i < 3; ++i) {
    const OpCost after = real_.stats(i).total();
    OpCost& d = cost_[i];
    d = OpCost{};
    auto sc = [&](u64 a, u64 b) { return static_cast<u64>(static_cast<double>(a - b) * scale + 0.5); };
    d.bytes_sent = sc(after.bytes_sent, before[i].bytes_sent);
    d.bytes_recv = sc(after.bytes_recv, before[i].bytes_recv);
    for (int j = 0; j < 3; ++j) d.bytes_to[j] = sc(after.bytes_to[j], before[i].bytes_to[j]);
    d.rounds = after.rounds - before[i].rounds;
    d.depth = after.depth - before[i].depth;
    d.seconds = full;
  }
  measure_seconds_ = now_seconds() - t0;
}

EstimateSession::EstimateSession(const std::string& protocol) : real_(protocol), timing_(protocol) {
  for (int i = 0; i < 3; ++i) {
    null_[i] = std::make_unique<NullTransport>(i);
    comm_[i] = std::make_unique<Comm>(*null_[i], stats_[i]);
    proto_[i] = std::make_unique<EstimateProtocol>(*comm_[i], *this);
  }
}

EstimateSession::~EstimateSession() = default;

Protocol& EstimateSession::party(int i) {
  if (i < 0 || i > 2) throw ArgError("party must be 0, 1 or 2");
  return *proto_[i];
}

void EstimateSession::run(const std::function<void(int, Protocol&)>& fn) {
  real_.align_depth();  // as a real run starts: the parties' critical paths restart together
  broken_ = false;
  arrived_ = finished_ = 0;
  cause_ = nullptr;
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      try {
        fn(i, *proto_[i]);
        std::lock_guard<std::mutex> g(mu_);
        ++finished_;
        cv_.notify_all();
      } catch (...) {
        std::lock_guard<std::mutex> g(mu_);
        if (!cause_) cause_ = std::current_exception();  // the first failure, not a waiter's echo
        broken_ = true;
        cv_.notify_all();
      }
    });
  for (auto& t : threads) t.join();
  if (cause_) std::rethrow_exception(cause_);
}

}  // namespace mpc
