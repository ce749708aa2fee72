#include "estimate.h"

#include <numeric>

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
    const size_t n = shape_size(shape);
    measure(n, 1, [&](int i, Protocol& p, size_t ns) {
      Vec v(ns, 0);
      p.input(owner, {static_cast<int64_t>(ns)}, i == owner ? v.data() : nullptr);
      return std::vector<Shape>{};
    });
    return zeros(shape);
  }
  Vec reveal(const Share& x, int to) override {
    measure(x.size(), 1, [&](int, Protocol& p, size_t ns) {
      p.reveal(zeros({static_cast<int64_t>(ns)}), to);
      return std::vector<Shape>{};
    });
    if (to != -1 && to != party()) return {};
    return Vec(x.size(), 0);
  }
  Share add(const Share& x, const Share& y) override { return zip(x, y, vadd); }
  Share sub(const Share& x, const Share& y) override { return zip(x, y, vsub); }
  Share neg(const Share& x) override { return zip(x, x, [](u64* o, const u64* a, const u64*, size_t n) {
      for (size_t i = 0; i < n; ++i) o[i] = 0 - a[i];
    }); }
  Share add_public(const Share& x, const Pub& c) override {
    c.check(x.size(), "add_public");
    Share y = x;
    y.a_zero = y.b_zero = false;
    if (party() == 0)
      for (size_t i = 0; i < y.size(); ++i) y.a[i] += c.at(i);
    return y;
  }
  Share mul_public(const Share& x, const Pub& c) override {
    c.check(x.size(), "mul_public");
    Share y = x;
    for (size_t i = 0; i < y.size(); ++i) {
      y.a[i] *= c.at(i);
      y.b[i] *= c.at(i);
    }
    return y;
  }
  std::vector<Share> products(const std::vector<Product>& list) override {
    size_t n = 0;
    for (auto& pr : list) n += pr.x ? pr.x->size() : 0;
    const auto& call = measure(n, 0, [&](int, Protocol& p, size_t) {
      std::vector<Share> out = p.products(list);  // full size: zero operands of the real shapes
      std::vector<Shape> shapes;
      for (auto& o : out) shapes.push_back(o.shape);
      return shapes;
    });
    std::vector<Share> out;
    for (auto& sh : call.shapes) out.push_back(zeros(sh));
    return out;
  }
  Share trunc_pr(const Share& x, const Shifts& d) override {
    measure(x.size(), d.v.size(), [&](int, Protocol& p, size_t ns) {
      p.trunc_pr(zeros({static_cast<int64_t>(ns)}), d);
      return std::vector<Shape>{};
    });
    return zeros(x.shape);
  }
  Share trunc(const Share& x, const Shifts& d) override {
    measure(x.size(), d.v.size(), [&](int, Protocol& p, size_t ns) {
      p.trunc(zeros({static_cast<int64_t>(ns)}), d);
      return std::vector<Shape>{};
    });
    return zeros(x.shape);
  }
  Share msb(const Share& x, int bits) override {
    measure(x.size(), 1, [&](int, Protocol& p, size_t ns) {
      p.msb(zeros({static_cast<int64_t>(ns)}), bits);
      return std::vector<Shape>{};
    });
    return zeros(x.shape);
  }
  std::vector<Share> bits(const Share& x, int k) override {
    measure(x.size(), 1, [&](int, Protocol& p, size_t ns) {
      p.bits(zeros({static_cast<int64_t>(ns)}), k);
      return std::vector<Shape>{};
    });
    return std::vector<Share>(static_cast<size_t>(std::max(k, 0)), zeros(x.shape));
  }
  Share requant(const Share& acc, const RequantSpec& s) override {
    size_t period = 1;
    for (size_t len : {s.mult.v.size(), s.add.v.size(), s.d.v.size(), s.adj.v.size(), s.lo.v.size(), s.hi.v.size()})
      if (len > 0) period = lcm_of(period, len);
    measure(acc.size(), period, [&](int, Protocol& p, size_t ns) {
      p.requant(zeros({static_cast<int64_t>(ns)}), s);
      return std::vector<Shape>{};
    });
    return zeros(acc.shape);
  }

 private:
  EstimateSession& s_;
  size_t cursor_ = 0;

  template <class F>
  static Share zip(const Share& x, const Share& y, F f) {
    if (x.shape != y.shape)
      throw ArgError("shape mismatch " + shape_str(x.shape) + " vs " + shape_str(y.shape));
    Share z{x.shape, Vec(x.size()), Vec(x.size())};
    f(z.a.data(), x.a.data(), y.a.data(), x.size());
    f(z.b.data(), x.b.data(), y.b.data(), x.size());
    return z;
  }

  // The next call: measured on a sample (party 0; period 0: at full size) or replayed.
  template <class F>
  const EstimateSession::Call& measure(size_t n, size_t period, F replay) {
    const size_t k = cursor_++;
    if (party() == 0) {
      if (k != s_.calls_.size()) throw Error("internal: estimate call order");
      const size_t ns = period == 0 ? n : sample_size(n, period);
      const double scale = ns == 0 ? 1.0 : static_cast<double>(n) / static_cast<double>(ns);
      EstimateSession::Call c;
      OpCost before[3];
      for (int i = 0; i < 3; ++i) before[i] = s_.real_.stats(i).total();
      const double t0 = now_seconds();
      std::vector<Shape> shapes;
      s_.real_.run_continuing([&](int i, Protocol& p) {
        std::vector<Shape> sh = replay(i, p, ns);
        if (i == 0) shapes = std::move(sh);
      });
      const double wall = now_seconds() - t0;
      for (int i = 0; i < 3; ++i) {
        const OpCost after = s_.real_.stats(i).total();
        OpCost& d = c.cost[i];
        auto sc = [&](u64 a, u64 b) { return static_cast<u64>(static_cast<double>(a - b) * scale + 0.5); };
        d.bytes_sent = sc(after.bytes_sent, before[i].bytes_sent);
        d.bytes_recv = sc(after.bytes_recv, before[i].bytes_recv);
        for (int j = 0; j < 3; ++j) d.bytes_to[j] = sc(after.bytes_to[j], before[i].bytes_to[j]);
        d.rounds = after.rounds - before[i].rounds;
        d.depth = after.depth - before[i].depth;
        d.seconds = wall * scale;
      }
      c.measure_seconds = wall;
      c.shapes = std::move(shapes);
      s_.calls_.push_back(std::move(c));
    } else if (k >= s_.calls_.size()) {
      throw Error("internal: estimate replay beyond the measured calls");
    }
    const EstimateSession::Call& c = s_.calls_[k];
    OpCost& cur = stats().current();
    const OpCost& d = c.cost[party()];
    cur.bytes_sent += d.bytes_sent;
    cur.bytes_recv += d.bytes_recv;
    for (int j = 0; j < 3; ++j) cur.bytes_to[j] += d.bytes_to[j];
    cur.rounds += d.rounds;
    cur.depth += d.depth;
    // What the full-size call would take, in place of the time spent measuring it.
    cur.adjust_seconds += d.seconds - (party() == 0 ? c.measure_seconds : 0.0);
    return c;
  }
};

EstimateSession::EstimateSession(const std::string& protocol) : real_(protocol) {
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
  for (int i = 0; i < 3; ++i) fn(i, *proto_[i]);
}

}  // namespace mpc
