#include "ops.h"

#include <algorithm>
#include <cstring>

namespace mpc {

Share concat(const std::vector<const Share*>& xs) {
  Share out;
  size_t n = 0;
  for (auto* x : xs) n += x->size();
  out.shape = {static_cast<int64_t>(n)};
  out.a.reserve(n);
  out.b.reserve(n);
  for (auto* x : xs) {
    out.a.insert(out.a.end(), x->a.begin(), x->a.end());
    out.b.insert(out.b.end(), x->b.begin(), x->b.end());
  }
  return out;
}

std::vector<Share> split(const Share& x, const std::vector<Shape>& shapes) {
  std::vector<Share> out;
  size_t off = 0;
  for (auto& s : shapes) {
    size_t n = shape_size(s);
    if (off + n > x.size()) throw ArgError("split: sizes exceed the tensor");
    Share y;
    y.shape = s;
    y.a.assign(x.a.begin() + off, x.a.begin() + off + n);
    y.b.assign(x.b.begin() + off, x.b.begin() + off + n);
    off += n;
    out.push_back(std::move(y));
  }
  return out;
}

Shifts expand_shifts(const std::vector<std::pair<size_t, Shifts>>& parts) {
  Shifts out;
  for (auto& [n, s] : parts)
    for (size_t i = 0; i < n; ++i) out.v.push_back(s.at(i));
  return out;
}

Pub expand_pub(const std::vector<std::pair<size_t, Pub>>& parts) {
  Pub out;
  for (auto& [n, c] : parts)
    for (size_t i = 0; i < n; ++i) out.v.push_back(c.at(i));
  return out;
}

Share select(Protocol& p, const Share& bit, const Share& x, const Share& y) {
  OpScope s(p.stats(), "select");
  return p.add(y, p.mul(bit, p.sub(x, y)));
}

Share relu(Protocol& p, const Share& x, int bits) {
  OpScope s(p.stats(), "relu");
  Share neg = p.msb(x, bits);
  return p.sub(x, p.mul(neg, x));
}

Share max(Protocol& p, const Share& x, const Share& y, int bits) {
  OpScope s(p.stats(), "max");
  Share d = p.sub(x, y);
  Share lt = p.msb(d, bits);  // x < y
  return p.sub(x, p.mul(lt, d));
}

Share clamp(Protocol& p, const Share& x, const Pub& lo, const Pub& hi, int bits) {
  OpScope s(p.stats(), "clamp");
  const size_t n = x.size();
  lo.check(n, "clamp(lo)");
  hi.check(n, "clamp(hi)");
  // x - lo < 0  and  hi - x < 0, in one comparison.
  std::vector<u64> neg_lo(lo.v.size());
  for (size_t i = 0; i < lo.v.size(); ++i) neg_lo[i] = 0 - lo.v[i];
  Share d_lo = p.add_public(x, Pub(neg_lo));         // x - lo
  Share d_hi = p.add_public(p.neg(x), hi);           // hi - x
  Share both = concat({&d_lo, &d_hi});
  auto bitsv = split(p.msb(both, bits), {x.shape, x.shape});
  // y = x + [x<lo](lo - x) + [x>hi](hi - x); the two products share a round.
  Share lo_minus_x = p.neg(d_lo), hi_minus_x = d_hi;
  auto prods = p.products({{Product::kElementwise, &bitsv[0], &lo_minus_x, {}},
                           {Product::kElementwise, &bitsv[1], &hi_minus_x, {}}});
  return p.add(x, p.add(prods[0], prods[1]));
}

Share round_div_pot(Protocol& p, const Share& x, const Shifts& e, int bits) {
  OpScope s(p.stats(), "round_div_pot");
  const size_t n = x.size();
  e.check(n, 0, 62, "round_div_pot");
  // RoundingDivideByPOT(x, e) = floor((x + 2^(e-1) - [x < 0]) / 2^e), e > 0.
  Share neg = p.msb(x, bits);
  std::vector<u64> half(e.v.size());
  for (size_t i = 0; i < e.v.size(); ++i) half[i] = e.v[i] > 0 ? u64(1) << (e.v[i] - 1) : 0;
  std::vector<u64> keep(e.v.size());  // e == 0: no rounding term at all
  for (size_t i = 0; i < e.v.size(); ++i) keep[i] = e.v[i] > 0 ? 1 : 0;
  Share t = p.sub(p.add_public(x, Pub(half)), p.mul_public(neg, Pub(keep)));
  return p.trunc(t, e);
}

static void split_shift(const Shifts& shift, std::vector<int>& ls, std::vector<int>& rs) {
  ls.resize(shift.v.size());
  rs.resize(shift.v.size());
  for (size_t i = 0; i < shift.v.size(); ++i) {
    ls[i] = shift.v[i] > 0 ? shift.v[i] : 0;
    rs[i] = shift.v[i] > 0 ? 0 : -shift.v[i];
  }
}

static Pub scaled_mult(const Pub& mult, const std::vector<int>& ls, size_t n) {
  // x * 2^ls * mult as one public factor per element (pattern length = lcm of sizes)
  size_t period = std::max(mult.v.size(), ls.size());
  if (period != 1 && (n % period) != 0) throw ArgError("requantize: multiplier/shift do not broadcast");
  if (mult.v.size() != 1 && ls.size() != 1 && mult.v.size() != ls.size())
    throw ArgError("requantize: multiplier and shift vectors differ in length");
  std::vector<u64> f(period);
  for (size_t i = 0; i < period; ++i) f[i] = mult.at(i) << ls[ls.size() == 1 ? 0 : i];
  return Pub(f);
}

Share requantize_exact(Protocol& p, const Share& x, const Pub& mult, const Shifts& shift) {
  OpScope s(p.stats(), "requantize");
  const size_t n = x.size();
  mult.check(n, "requantize(mult)");
  shift.check(n, -31, 31, "requantize(shift)");
  std::vector<int> ls, rs;
  split_shift(shift, ls, rs);
  // SaturatingRoundingDoublingHighMul: floor((x*2^ls*M + 2^30) / 2^31) (no saturation:
  // M > 0), then RoundingDivideByPOT by the right shift.
  Share prod = p.add_public(p.mul_public(x, scaled_mult(mult, ls, n)), Pub(u64(1) << 30));
  Share hi = p.trunc(prod, Shifts(31));
  return round_div_pot(p, hi, Shifts(rs), 32);
}

Share requantize_nearest(Protocol& p, const Share& x, const Pub& mult, const Shifts& shift, int bits) {
  if (bits < 1 || bits > 32) throw ArgError("requantize: bits must be in [1, 32]");
  const size_t n = x.size();
  mult.check(n, "requantize(mult)");
  shift.check(n, -31, 31, "requantize(shift)");
  std::vector<int> ls, rs;
  split_shift(shift, ls, rs);
  const Pub f = scaled_mult(mult, ls, n);
  using i128 = __int128;
  for (size_t i = 0, period = std::max(f.v.size(), rs.size()); i < period; ++i) {
    const i128 top = (i128(1) << (bits - 1)) * i128(f.at(i)) + (i128(1) << (30 + rs[i % rs.size()]));
    if (top >= (i128(1) << 62)) return requantize_exact(p, x, mult, shift);
  }
  OpScope s(p.stats(), "requantize");
  std::vector<int> total(rs.size());
  std::vector<u64> half(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    total[i] = 31 + rs[i];
    half[i] = u64(1) << (30 + rs[i]);
  }
  // x*2^ls*M / 2^(31+rs) rounded to nearest: within 1 of the exact (double-rounded) result.
  return p.trunc(p.add_public(p.mul_public(x, f), Pub(half)), Shifts(total));
}

}  // namespace mpc

namespace mpc {

std::vector<Share> lookup256(Protocol& p, const Share& x, const std::vector<std::vector<u64>>& tables) {
  OpScope s(p.stats(), "lookup256");
  for (auto& t : tables)
    if (t.size() != 256) throw ArgError("lookup256: every table needs 256 entries");
  const size_t n = x.size(), nt = tables.size();
  const int64_t ni = static_cast<int64_t>(n);
  // Peak memory matters for large tensors (a 1M-element table lookup): every
  // intermediate is released as soon as its last reader is done.
  std::vector<Share> oh;  // oh[0..16): low-nibble one-hot, oh[16..32): high-nibble one-hot
  {
    Share flat = p.linear(x, {ni}, [n](const u64* in, u64* out) { std::copy(in, in + n, out); });
    std::vector<Share> b = p.bits(flat, 8);
    flat = Share();
    std::vector<Share> pairs = p.products({{Product::kElementwise, &b[0], &b[1], {}},
                                           {Product::kElementwise, &b[2], &b[3], {}},
                                           {Product::kElementwise, &b[4], &b[5], {}},
                                           {Product::kElementwise, &b[6], &b[7], {}}});
    // one-hot of two bits (u, v) from u, v and uv: [(1-u)(1-v), u(1-v), (1-u)v, uv]
    auto onehot4 = [&](const Share& u, const Share& v, const Share& uv) {
      return std::vector<Share>{p.add(p.sub(p.add_public(p.neg(u), Pub(1)), v), uv), p.sub(u, uv), p.sub(v, uv), uv};
    };
    std::vector<Share> l01 = onehot4(b[0], b[1], pairs[0]), l23 = onehot4(b[2], b[3], pairs[1]);
    std::vector<Share> h45 = onehot4(b[4], b[5], pairs[2]), h67 = onehot4(b[6], b[7], pairs[3]);
    b.clear();
    pairs.clear();
    std::vector<Product> prods;
    for (int hi = 0; hi < 4; ++hi)
      for (int lo = 0; lo < 4; ++lo) prods.push_back({Product::kElementwise, &l23[hi], &l01[lo], {}});
    for (int hi = 0; hi < 4; ++hi)
      for (int lo = 0; lo < 4; ++lo) prods.push_back({Product::kElementwise, &h67[hi], &h45[lo], {}});
    oh = p.products(prods);
  }
  // inner[t][h] = sum_l L_l * T_t[16h + l]: public-linear in the low one-hot
  Share low;
  {
    std::vector<const Share*> ptrs;
    for (int l = 0; l < 16; ++l) ptrs.push_back(&oh[l]);
    low = concat(ptrs);
    for (int l = 0; l < 16; ++l) oh[l] = Share();
  }
  Share inner = p.linear(low, {static_cast<int64_t>(16 * nt) * ni}, [&](const u64* in, u64* out) {
    for (size_t i = 0; i < n; ++i) {
      u64 lo[16];
      for (int l = 0; l < 16; ++l) lo[l] = in[l * n + i];
      for (size_t t = 0; t < nt; ++t)
        for (int h = 0; h < 16; ++h) {
          const u64* tab = tables[t].data() + 16 * h;
          u64 acc = 0;
          for (int l = 0; l < 16; ++l) acc += lo[l] * tab[l];
          out[(t * 16 + h) * n + i] = acc;
        }
    }
  });
  low = Share();
  std::vector<Share> parts = split(inner, std::vector<Shape>(16 * nt, Shape{ni}));
  inner = Share();
  std::vector<Product> prods;
  for (size_t t = 0; t < nt; ++t)
    for (int h = 0; h < 16; ++h) prods.push_back({Product::kElementwise, &oh[16 + h], &parts[t * 16 + h], {}});
  std::vector<Share> looked = p.products(prods);
  parts.clear();
  oh.clear();
  std::vector<Share> out;
  for (size_t t = 0; t < nt; ++t) {
    Share r = looked[t * 16];
    for (int h = 1; h < 16; ++h) r = p.add(r, looked[t * 16 + h]);
    r.shape = x.shape;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace mpc
