#include "protocol.h"

#include <algorithm>

#include "ops.h"
#include "mal3/mal3.h"
#include "rep3/rep3.h"

namespace mpc {

Share Protocol::mul(const Share& x, const Share& y) {
  return std::move(products({{Product::kElementwise, &x, &y, {}}})[0]);
}
Share Protocol::matmul(const Share& x, const Share& y) {
  return std::move(products({{Product::kMatmul, &x, &y, {}}})[0]);
}
Share Protocol::conv2d(const Share& x, const Share& w, const ConvGeom& g) {
  return std::move(products({{Product::kConv2d, &x, &w, g}})[0]);
}
Share Protocol::depthwise(const Share& x, const Share& w, const ConvGeom& g) {
  return std::move(products({{Product::kDepthwise, &x, &w, g}})[0]);
}

Share Protocol::linear(const Share& x, const Shape& out_shape, const std::function<void(const u64*, u64*)>& f) {
  const size_t n = shape_size(out_shape);
  Share y{out_shape, Vec(n), Vec(n)};
  f(x.a.data(), y.a.data());
  f(x.b.data(), y.b.data());
  y.a_zero = x.a_zero;  // a linear map of a zero component is zero
  y.b_zero = x.b_zero;
  return y;
}

void RequantSpec::check(size_t n) const {
  mult.check(n, "requant(mult)");
  add.check(n, "requant(add)");
  d.check(n, 1, 62, "requant(d)");
  lo.check(n, "requant(lo)");
  hi.check(n, "requant(hi)");
  if (!adj.v.empty()) adj.check(n, "requant(adj)");
  if (acc_bits < 2 || acc_bits > 48) throw ArgError("requant: acc_bits must be in [2, 48], got " + std::to_string(acc_bits));
  if (out_bits < 1 || out_bits > 64) throw ArgError("requant: out_bits must be in [1, 64], got " + std::to_string(out_bits));
}

int requant_reads(const std::string& protocol, const RequantSpec& s) {
  if (protocol == "rep3") return Rep3::requant_reads(s);
  return 64;
}

Share Protocol::requant(const Share& acc, const RequantSpec& s) { return requant_composed(acc, s); }

Share Protocol::requant_composed(const Share& acc, const RequantSpec& s) {
  OpScope sc(stats(), "requant");
  s.check(acc.size());
  Share v = add_public(mul_public(acc, s.mult), s.add);
  Share r;
  bool any_adj = false;
  for (u64 a : s.adj.v) any_adj |= a != 0;
  if (s.stochastic) {
    r = trunc_pr(v, s.d);
  } else if (!any_adj) {
    r = trunc(v, s.d);
  } else {
    std::vector<u64> half(s.d.v.size());
    for (size_t i = 0; i < half.size(); ++i) half[i] = 0 - (u64(1) << (s.d.v[i] - 1));
    Share neg = msb(add_public(v, Pub(half)), 64);  // [v < 2^(d-1)]
    r = trunc(sub(v, mul_public(neg, s.adj)), s.d);
  }
  // |R| <= 2^(64 - d) and |lo|, |hi| <= 2^16: R - lo and hi - R fit max(66 - d, 19) signed bits
  return clamp(*this, r, s.lo, s.hi, std::min(64, std::max(19, 66 - *std::min_element(s.d.v.begin(), s.d.v.end()))));
}

void Protocol::check_range(const Share& x, int bits, const char* what) {
  Vec v = reveal(x, -1);
  const i64 lo = bits >= 64 ? INT64_MIN : -(i64(1) << (bits - 1));
  const i64 hi = bits >= 64 ? INT64_MAX : (i64(1) << (bits - 1)) - 1;
  for (size_t i = 0; i < v.size(); ++i) {
    const i64 s = static_cast<i64>(v[i]);
    if (s < lo || s > hi)
      throw ArgError(std::string(what) + ": debug check failed: element " + std::to_string(i) +
                     " does not fit in " + std::to_string(bits) + " signed bits");
  }
}

std::vector<std::string> protocol_names() { return {"rep3", "mal3"}; }

std::unique_ptr<Protocol> make_protocol(const std::string& name, Comm& comm) {
  if (name == "rep3") return std::make_unique<Rep3>(comm);
  if (name == "mal3") return std::make_unique<Mal3>(comm);
  std::string valid;
  for (auto& p : protocol_names()) valid += (valid.empty() ? "" : ", ") + p;
  throw ArgError("unknown protocol '" + name + "' (valid: " + valid + ")");
}

}  // namespace mpc
