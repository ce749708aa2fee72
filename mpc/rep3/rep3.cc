#include "rep3.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <tuple>

#include "../bitslice.h"
#include "../linalg.h"
#include "../ops.h"

namespace mpc {

namespace {

inline u64 shl(u64 x, int s) { return s >= 64 ? 0 : x << s; }

// Bit planes of the low `planes` bits of v[0..n): plane j bit i = bit j of v[i].
Vec to_planes(const Vec& v, size_t planes, size_t W) {
  Vec out(planes * W);
  bit_planes(v.data(), v.size(), planes, W, out.data());
  return out;
}

// P0 and P2 both end an OT holding y0 (component 0) and their component shared with P1.
template <class S>
void place_ot_output(S& out, int me, Vec&& y0, Vec&& mine) {
  if (me == 0) {
    out.a = std::move(y0);
    out.b = std::move(mine);
  } else {
    out.a = std::move(mine);
    out.b = std::move(y0);
  }
}

// n values' low `bits` bits, packed end to end (bits < 64), and back (high bits zero).
Vec pack_low(const u64* v, size_t n, int bits) {
  Vec out(words_for(n * static_cast<size_t>(bits)), 0);
  const u64 m = mask_bits(bits);
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i, pos += static_cast<size_t>(bits)) {
    const u64 x = v[i] & m;
    const size_t w = pos >> 6;
    const int o = static_cast<int>(pos & 63);
    out[w] |= x << o;
    if (o + bits > 64) out[w + 1] |= x >> (64 - o);
  }
  return out;
}
Vec unpack_low(const Vec& in, size_t n, int bits) {
  Vec out(n);
  const u64 m = mask_bits(bits);
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i, pos += static_cast<size_t>(bits)) {
    const size_t w = pos >> 6;
    const int o = static_cast<int>(pos & 63);
    u64 x = in[w] >> o;
    if (o + bits > 64) x |= in[w + 1] << (64 - o);
    out[i] = x & m;
  }
  return out;
}
// Sends n words, or their low bits only; recv_low is its receiving side.
void send_low(Comm& comm, int to, Vec&& v, int bits) {
  if (bits >= 64) comm.send(to, std::move(v));
  else comm.send(to, pack_low(v.data(), v.size(), bits));
}
Vec recv_low(Comm& comm, int from, size_t n, int bits) {
  if (bits >= 64) return comm.recv(from, n);
  return unpack_low(comm.recv(from, words_for(n * static_cast<size_t>(bits))), n, bits);
}

constexpr size_t kChunk = 2048;  // elements per fused step (even: whole PRG blocks)

inline u64 bit_at(const u64* words, size_t i) { return (words[i >> 6] >> (i & 63)) & 1; }

}  // namespace

Rep3::Rep3(Comm& comm) : Protocol(comm), me_(comm.party()) {
  MsgKind kind(comm_, "setup");
  if (comm.parties() != 3) throw ArgError("rep3 needs exactly 3 parties");
  next_ = (me_ + 1) % 3;
  prev_ = (me_ + 2) % 3;
  OpScope s(stats(), "setup");
  Key mine = os_random_key(), theirs;
  u64 buf[2];
  std::memcpy(buf, mine.data(), 16);
  comm_.send(next_, buf, 2);
  comm_.recv(prev_, buf, 2);
  std::memcpy(theirs.data(), buf, 16);
  comm_.round();
  prg_next_ = Prg(mine);
  prg_prev_ = Prg(theirs);
  for (Prg* g : {&prg_next_, &prg_prev_, &prg_own_}) g->set_owner(me_);  // fault tests only (mpc/fault.h)
}

// ------------------------------------------------------------------ sharing
Share Rep3::input(int owner, const Shape& shape, const u64* data) {
  MsgKind kind(comm_, "input");
  OpScope s(stats(), "input");
  if (owner < 0 || owner > 2) throw ArgError("input owner must be 0, 1 or 2");
  const size_t n = shape_size(shape);
  Share x{shape, {}, {}};
  // Components: x_owner random (owner & its previous party), x_{owner+1} = v - x_owner
  // (sent to the next party), x_{owner+2} = 0.
  if (me_ == owner) {
    x.a = prg_prev_.next(n);
    x.b.resize(n);
    vsub(x.b.data(), data, x.a.data(), n);
    comm_.send(next_, x.b);
  } else if (me_ == (owner + 1) % 3) {
    x.a = comm_.recv(prev_, n);
    x.b.assign(n, 0);
    x.b_zero = true;
  } else {
    x.a.assign(n, 0);
    x.a_zero = true;
    x.b = prg_next_.next(n);
  }
  comm_.round();
  return x;
}

Vec Rep3::reveal(const Share& x, int to) {
  MsgKind kind(comm_, "reveal");
  OpScope s(stats(), "reveal");
  if (to < -1 || to > 2) throw ArgError("reveal target must be -1 (all), 0, 1 or 2");
  const size_t n = x.size();
  // Party i lacks x_{i+2}, which is the `b` component of party i+1.
  if (to == -1 || to == prev_) comm_.send(prev_, x.b);
  comm_.round();
  if (to != -1 && to != me_) return {};
  Vec out = comm_.recv(next_, n);
  for (size_t i = 0; i < n; ++i) out[i] += x.a[i] + x.b[i];
  return out;
}

// ------------------------------------------------------------------ linear
static void same_shape(const Share& x, const Share& y, const char* what) {
  if (x.shape != y.shape)
    throw ArgError(std::string(what) + ": shape mismatch " + shape_str(x.shape) + " vs " + shape_str(y.shape));
}

Share Rep3::add(const Share& x, const Share& y) {
  same_shape(x, y, "add");
  Share z{x.shape, Vec(x.size()), Vec(x.size())};
  vadd(z.a.data(), x.a.data(), y.a.data(), x.size());
  vadd(z.b.data(), x.b.data(), y.b.data(), x.size());
  return z;
}

Share Rep3::sub(const Share& x, const Share& y) {
  same_shape(x, y, "sub");
  Share z{x.shape, Vec(x.size()), Vec(x.size())};
  vsub(z.a.data(), x.a.data(), y.a.data(), x.size());
  vsub(z.b.data(), x.b.data(), y.b.data(), x.size());
  return z;
}

Share Rep3::neg(const Share& x) {
  Share z = x;
  for (auto& v : z.a) v = 0 - v;
  for (auto& v : z.b) v = 0 - v;
  return z;
}

Share Rep3::add_public(const Share& x, const Pub& c) {
  c.check(x.size(), "add_public");
  Share z = x;
  // Component x_0 is P0's `a` and P2's `b`.
  Vec* comp0 = me_ == 0 ? &z.a : me_ == 2 ? &z.b : nullptr;
  if (comp0) {
    for (size_t i = 0; i < z.size(); ++i) (*comp0)[i] += c.at(i);
    // The constant lands in component x_0: it is no longer publicly zero
    // (an input shared by party 1 has x_0 = 0; products would skip it).
    (me_ == 0 ? z.a_zero : z.b_zero) = false;
  }
  return z;
}

Share Rep3::mul_public(const Share& x, const Pub& c) {
  c.check(x.size(), "mul_public");
  Share z = x;
  for (size_t i = 0; i < z.size(); ++i) {
    const u64 f = c.at(i);
    z.a[i] *= f;
    z.b[i] *= f;
  }
  return z;
}

// ------------------------------------------------------------------ products
Share Rep3::reshare(Vec&& z, const Shape& shape, int bits) {
  MsgKind kind(comm_, "reshare");
  const size_t n = z.size();
  // Zero sharing: F(k_i,i+1) - F(k_i-1,i) sums to 0 over the parties and masks z.
  const u64 b1 = prg_next_.skip(n), b2 = prg_prev_.skip(n);
  u64 r1[kChunk], r2[kChunk];
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t len = std::min(kChunk, n - c0);
    prg_next_.fill_at(b1 + c0 / 2, r1, len);
    prg_prev_.fill_at(b2 + c0 / 2, r2, len);
    u64* zc = z.data() + c0;
    for (size_t j = 0; j < len; ++j) zc[j] += r1[j] - r2[j];
  }
  // Party i's masked value v_i becomes component i (kept as a, sent to the previous party,
  // which holds it as b) for the first h elements, component i + 1 (kept as b, sent to the
  // next party, which holds it as a) for the rest: either way every component is one party's
  // value, masked for its receiver by the PRG value the receiver lacks. Halving the tensor
  // this way loads both directions of every link alike (one-way, each link carried all of
  // it in one direction).
  const size_t h = balanced_ ? n / 2 : n;
  auto send_part = [&](int to, size_t from, size_t len) {
    if (len == 0) return;
    if (bits >= 64) comm_.send(to, z.data() + from, len);
    else comm_.send(to, pack_low(z.data() + from, len, bits));
  };
  send_part(prev_, 0, h);
  send_part(next_, h, n - h);
  Share out{shape, Vec(), Vec()};
  if (h == n) {
    out.b = recv_low(comm_, next_, n, bits);
    out.a = std::move(z);
    return out;
  }
  out.a = std::move(z);
  out.b = Vec(n);
  if (h) {
    const Vec got = recv_low(comm_, next_, h, bits);
    std::copy(got.begin(), got.end(), out.b.begin());
  }
  const Vec got = recv_low(comm_, prev_, n - h, bits);
  std::copy(out.a.begin() + h, out.a.end(), out.b.begin() + h);
  std::copy(got.begin(), got.end(), out.a.begin() + h);
  return out;
}

std::vector<Share> Rep3::products(const std::vector<Product>& list) {
  OpScope s(stats(), "mul");
  std::vector<Shape> shapes;
  std::vector<size_t> sizes;
  size_t total = 0;
  for (auto& p : list) {
    if (!p.x || !p.y) throw ArgError("products: missing operand");
    Shape sh;
    switch (p.kind) {
      case Product::kElementwise:
        same_shape(*p.x, *p.y, "mul");
        sh = p.x->shape;
        break;
      case Product::kMatmul:
        if (p.x->shape.size() != 2 || p.y->shape.size() != 2 || p.x->shape[1] != p.y->shape[0])
          throw ArgError("matmul: incompatible shapes " + shape_str(p.x->shape) + " x " + shape_str(p.y->shape));
        sh = {p.x->shape[0], p.y->shape[1]};
        break;
      case Product::kConv2d:
      case Product::kDepthwise: {
        const ConvGeom& g = p.geom;
        g.validate("conv");
        if (p.x->shape != Shape{g.n, g.h, g.w, g.c})
          throw ArgError("conv: input shape " + shape_str(p.x->shape) + " does not match the geometry");
        Shape ws = p.kind == Product::kConv2d ? Shape{g.oc, g.kh, g.kw, g.c} : Shape{1, g.kh, g.kw, g.oc};
        if (p.y->shape != ws)
          throw ArgError("conv: filter shape " + shape_str(p.y->shape) + ", expected " + shape_str(ws));
        if (p.kind == Product::kDepthwise && g.oc != g.c * g.depth_multiplier)
          throw ArgError("depthwise: output channels must equal input channels * depth_multiplier");
        sh = {g.n, g.oh, g.ow, g.oc};
        break;
      }
    }
    shapes.push_back(sh);
    sizes.push_back(shape_size(sh));
    total += sizes.back();
  }
  Vec z(total);
  size_t off = 0;
  for (size_t t = 0; t < list.size(); ++t) {
    const Product& p = list[t];
    const Share &x = *p.x, &y = *p.y;
    u64* out = z.data() + off;
    // z_i = x_i*y_i + x_i*y_{i+1} + x_{i+1}*y_i, grouped into at most two local
    // products and fewer when a component is publicly zero (input sharings):
    //   y_{i+1} = 0: (x_i + x_{i+1}) * y_i     x_{i+1} = 0: x_i * (y_i + y_{i+1})
    //   y_i = 0:     x_i * y_{i+1}             x_i = 0:     x_{i+1} * y_i
    struct Term { const Vec* l; const Vec* r; };
    Vec lsum, rsum;
    auto sum = [](Vec& dst, const Vec& u, const Vec& v) -> const Vec* {
      dst.resize(u.size());
      vadd(dst.data(), u.data(), v.data(), u.size());
      return &dst;
    };
    std::vector<Term> terms;
    if ((x.a_zero && x.b_zero) || (y.a_zero && y.b_zero)) {
    } else if (y.b_zero) {
      terms.push_back({x.b_zero ? &x.a : x.a_zero ? &x.b : sum(lsum, x.a, x.b), &y.a});
    } else if (y.a_zero) {
      if (!x.a_zero) terms.push_back({&x.a, &y.b});
    } else if (x.b_zero) {
      terms.push_back({&x.a, sum(rsum, y.a, y.b)});
    } else if (x.a_zero) {
      terms.push_back({&x.b, &y.a});
    } else {
      terms.push_back({&x.a, sum(rsum, y.a, y.b)});
      terms.push_back({&x.b, &y.a});
    }
    if (terms.empty()) std::fill(out, out + sizes[t], 0);
    auto run_term = [&](const Term& term, u64* out, bool acc) {
      const Vec &L = *term.l, &R = *term.r;
      switch (p.kind) {
        case Product::kElementwise: {
          const size_t n = x.size();
          if (acc) for (size_t i = 0; i < n; ++i) out[i] += L[i] * R[i];
          else vmul(out, L.data(), R.data(), n);
          break;
        }
        case Product::kMatmul: {
          const size_t M = x.shape[0], K = x.shape[1], N = y.shape[1];
          gemm_u64(M, N, K, L.data(), K, R.data(), N, out, N, acc);
          break;
        }
        case Product::kConv2d: {
          const ConvGeom& g = p.geom;
          const size_t K = g.kh * g.kw * g.c, N = g.oc, M = g.n * g.oh * g.ow;
          Vec w(K * N);  // filters [OC, KH, KW, C] -> GEMM operand [K, OC]
          for (size_t o = 0; o < N; ++o)
            for (size_t q = 0; q < K; ++q) w[q * N + o] = R[o * K + q];
          const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pad_top == 0 && g.pad_left == 0;
          if (direct) {
            gemm_u64(M, N, K, L.data(), K, w.data(), N, out, N, acc);
          } else {
            Vec cols(M * K);
            im2col(L.data(), g, cols.data());
            gemm_u64(M, N, K, cols.data(), K, w.data(), N, out, N, acc);
          }
          break;
        }
        case Product::kDepthwise:
          depthwise_acc(L.data(), R.data(), p.geom, out, acc);
          break;
      }
    };
    // A party holding two non-zero components (e.g. the owner of input-shared
    // weights) has two local products while its peers have one: run its second
    // product on a helper thread when it is large, so the parties stay balanced.
    const double work = static_cast<double>(sizes[t]) * (p.kind == Product::kMatmul ? x.shape[1]
                                                         : p.kind == Product::kConv2d ? p.geom.kh * p.geom.kw * p.geom.c
                                                         : 1);
    if (terms.size() == 2 && work > 4e6 && p.kind != Product::kElementwise) {
      Vec second(sizes[t]);
      std::thread helper([&] { run_term(terms[1], second.data(), false); });
      try {
        run_term(terms[0], out, false);
      } catch (...) {
        helper.join();
        throw;
      }
      helper.join();
      vadd(out, out, second.data(), sizes[t]);
    } else {
      for (size_t k = 0; k < terms.size(); ++k) run_term(terms[k], out, k > 0);
    }
    off += sizes[t];
  }
  int bits = 1;
  for (auto& p : list) bits = std::max(bits, std::min(64, std::max(1, p.out_bits)));
  Share all = reshare(std::move(z), {static_cast<int64_t>(total)}, bits);
  comm_.round();
  if (list.size() == 1) {
    all.shape = shapes[0];
    return {std::move(all)};
  }
  return split(all, shapes);
}

// ------------------------------------------------------------------ boolean layer
Rep3::BShare Rep3::bool_and(const BShare& x, const BShare& y) {
  MsgKind kind(comm_, "and");
  const size_t n = x.a.size();
  Vec z(n), r1 = prg_next_.next(n), r2 = prg_prev_.next(n);
  for (size_t i = 0; i < n; ++i)
    z[i] = (x.a[i] & y.a[i]) ^ (x.a[i] & y.b[i]) ^ (x.b[i] & y.a[i]) ^ r1[i] ^ r2[i];
  // As reshare(): the first half of the words go to the previous party, the rest to the next.
  const size_t h = balanced_ ? n / 2 : n;
  if (h == n) {
    comm_.send(prev_, z);
    BShare out{x.planes, x.W, std::move(z), comm_.recv(next_, n)};
    return out;
  }
  if (h) comm_.send(prev_, z.data(), h);
  comm_.send(next_, z.data() + h, n - h);
  BShare out{x.planes, x.W, std::move(z), Vec(n)};
  if (h) {
    const Vec got = comm_.recv(next_, h);
    std::copy(got.begin(), got.end(), out.b.begin());
  }
  const Vec got = comm_.recv(prev_, n - h);
  std::copy(out.a.begin() + h, out.a.end(), out.b.begin() + h);
  std::copy(got.begin(), got.end(), out.a.begin() + h);
  return out;
}

template <class Msg, class Choice>
Rep3::OTPending Rep3::ot_arith_send(size_t n, Msg&& msg, Choice&& choice) {
  MsgKind kind(comm_, "ot");
  // Output components: y1 = rho (P0,P1), y2 = sigma (P1,P2), y0 = m_c - rho - sigma (P0,P2).
  // P1 sends both table entries to P2 masked with (w0, w1) (key P0-P1) and to P0
  // masked with (v0, v1) (key P1-P2); each receiver gets the mask of its choice
  // from the other receiver, who knows the choice and the masks.
  OTPending p;
  p.n = n;
  p.role = role();
  Share& out = p.out;
  out.shape = {static_cast<int64_t>(n)};
  u64 r0[kChunk], r1[kChunk];
  if (p.role == 1) {
    const u64 bR = prg_prev_.skip(n), bW0 = prg_prev_.skip(n), bW1 = prg_prev_.skip(n);
    const u64 bS = prg_next_.skip(n), bV0 = prg_next_.skip(n), bV1 = prg_next_.skip(n);
    Vec rho(n), sigma(n), to2(2 * n), to0(2 * n);
    u64 q0[kChunk], q1[kChunk];
    for (size_t c0 = 0; c0 < n; c0 += kChunk) {
      const size_t len = std::min(kChunk, n - c0);
      prg_prev_.fill_at(bR + c0 / 2, rho.data() + c0, len);
      prg_next_.fill_at(bS + c0 / 2, sigma.data() + c0, len);
      prg_prev_.fill_at(bW0 + c0 / 2, r0, len);
      prg_prev_.fill_at(bW1 + c0 / 2, r1, len);
      prg_next_.fill_at(bV0 + c0 / 2, q0, len);
      prg_next_.fill_at(bV1 + c0 / 2, q1, len);
      for (size_t j = 0; j < len; ++j) {
        const size_t i = c0 + j;
        u64 m0, m1;
        msg(i, m0, m1);
        const u64 mask = rho[i] + sigma[i], t0 = m0 - mask, t1 = m1 - mask;
        to2[i] = t0 + r0[j];
        to2[n + i] = t1 + r1[j];
        to0[i] = t0 + q0[j];
        to0[n + i] = t1 + q1[j];
      }
    }
    comm_.send(party_of(2), std::move(to2));
    comm_.send(party_of(0), std::move(to0));
    out.a = std::move(rho);
    out.b = std::move(sigma);
    return p;
  }
  Prg& with1 = p.role == 0 ? prg_next_ : prg_prev_;
  const u64 bM = with1.skip(n), bW0 = with1.skip(n), bW1 = with1.skip(n);
  p.mine.resize(n);
  p.ch.resize(n);
  Vec& mine = p.mine;
  Vec help(n);
  std::vector<uint8_t>& ch = p.ch;
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t len = std::min(kChunk, n - c0);
    with1.fill_at(bM + c0 / 2, mine.data() + c0, len);
    with1.fill_at(bW0 + c0 / 2, r0, len);
    with1.fill_at(bW1 + c0 / 2, r1, len);
    for (size_t j = 0; j < len; ++j) {
      const u64 c = choice(c0 + j) & 1, sel = 0 - c;
      ch[c0 + j] = static_cast<uint8_t>(c);
      help[c0 + j] = (r0[j] & ~sel) | (r1[j] & sel);
    }
  }
  std::tie(p.from, p.other) = send_help(p.role, std::move(help));
  return p;
}

std::pair<int, int> Rep3::send_help(int role, Vec&& help) {
  MsgKind kind(comm_, "help");
  const int from = party_of(1), other = party_of(role == 0 ? 2 : 0);
  comm_.send(other, std::move(help));
  return {from, other};
}

Share Rep3::ot_arith_finish(OTPending& p) {
  if (p.role == 1) return std::move(p.out);
  const size_t n = p.n;
  Vec table = comm_.recv(p.from, 2 * n), y0 = comm_.recv(p.other, n);
  for (size_t i = 0; i < n; ++i) {
    const u64 sel = 0 - static_cast<u64>(p.ch[i]);
    y0[i] = ((table[i] & ~sel) | (table[n + i] & sel)) - y0[i];
  }
  place_ot_output(p.out, p.role, std::move(y0), std::move(p.mine));
  return std::move(p.out);
}

Rep3::BShare Rep3::carry(size_t planes, size_t W, const Vec& mine) {
  if (planes == 0) return BShare{1, W, Vec(W, 0), Vec(W, 0)};
  return carry_gp(planes, W, mine).g;
}

Share Rep3::b2a(const BShare& c, size_t n, const Vec* x1, const Vec* x02, const Pub& s) {
  B2APending p = b2a_send(c, n, x1, x02, s);
  Share out = b2a_finish(p);
  comm_.round();
  return out;
}

Rep3::B2APending Rep3::b2a_send(const BShare& c, size_t n, const Vec* x1, const Vec* x02, const Pub& s) {
  MsgKind kind(comm_, "b2a");
  // Bit v = g ^ e with g = c1 ^ c2 (^ x1) known to the sender P1 and e = c0 (^ x02)
  // known to P0 and P2: y0 = v*s - rho - sigma = e*s + (1 - 2e) * g*s - rho - sigma.
  // P1 sends A = g*s + sigma' to P0 and B = g*s + rho' to P2; P0 sends P2
  // (1 - 2e) rho' + rho, P2 sends P0 (1 - 2e) sigma' + sigma; then
  // y0 = e*s + (1 - 2e) A - h2 - rho = e*s + (1 - 2e) B - h0 - sigma. Each receiver
  // sees two words masked by two independent values it does not know.
  B2APending p;
  p.n = n;
  p.s = s;
  p.role = role();
  p.out.shape = {static_cast<int64_t>(n)};
  if (p.role == 1) {
    Vec rho = prg_prev_.next(n), rho2 = prg_prev_.next(n);
    Vec sigma = prg_next_.next(n), sigma2 = prg_next_.next(n);
    Vec to0(n), to2(n);
    for (size_t i = 0; i < n; ++i) {
      const u64 g = (c.a[i >> 6] ^ c.b[i >> 6] ^ (x1 ? (*x1)[i >> 6] : 0)) >> (i & 63) & 1;
      const u64 gs = (0 - g) & s.at(i);
      to0[i] = gs + sigma2[i];
      to2[i] = gs + rho2[i];
    }
    comm_.send(party_of(0), std::move(to0));
    comm_.send(party_of(2), std::move(to2));
    p.out.a = std::move(rho);
    p.out.b = std::move(sigma);
    return p;
  }
  const size_t W = words_for(n);
  const Vec& c0 = p.role == 0 ? c.a : c.b;
  p.ebits.resize(W);
  for (size_t w = 0; w < W; ++w) p.ebits[w] = c0[w] ^ (x02 ? (*x02)[w] : 0);
  Prg& with1 = p.role == 0 ? prg_next_ : prg_prev_;
  p.mine = with1.next(n);
  Vec mask2 = with1.next(n), h(n);
  for (size_t i = 0; i < n; ++i) h[i] = (bit_at(p.ebits.data(), i) ? 0 - mask2[i] : mask2[i]) + p.mine[i];
  std::tie(p.from, p.other) = send_help(p.role, std::move(h));
  return p;
}

Share Rep3::b2a_finish(B2APending& p) {
  if (p.role == 1) return std::move(p.out);
  Vec y0 = comm_.recv(p.from, p.n), h = comm_.recv(p.other, p.n);
  for (size_t i = 0; i < p.n; ++i)
    y0[i] = (bit_at(p.ebits.data(), i) ? p.s.at(i) - y0[i] : y0[i]) - h[i] - p.mine[i];
  place_ot_output(p.out, p.role, std::move(y0), std::move(p.mine));
  return std::move(p.out);
}

// ------------------------------------------------------------------ comparison
Vec Rep3::view_2of2(const Share& x, u64 mask) const {
  // The sender holds a = x_s + x_{s+1}; the other two both hold b = x_{s+2}.
  Vec v(x.size());
  if (role() == 1) vadd(v.data(), x.a.data(), x.b.data(), x.size());
  else v = role() == 0 ? x.a : x.b;
  if (mask != ~u64(0))
    for (auto& e : v) e &= mask;
  return v;
}

Share Rep3::msb(const Share& x, int bits) {
  OpScope s(stats(), "msb");
  if (bits < 2 || bits > 64) throw ArgError("msb: bit width must be in [2, 64], got " + std::to_string(bits));
  if (debug_checks) check_range(x, bits, "msb");
  const size_t n = x.size(), W = words_for(n), m = bits - 1;
  const u64 mk = mask_bits(bits);
  rotate_sender();
  Vec v = view_2of2(x, mk);
  Vec planes = to_planes(v, bits, W);
  Vec top(planes.begin() + m * W, planes.end());
  planes.resize(m * W);
  BShare c = carry(m, W, planes);
  Share r = b2a(c, n, role() == 1 ? &top : nullptr, role() == 1 ? nullptr : &top, Pub(1));
  r.shape = x.shape;
  return r;
}

std::vector<Share> Rep3::bits(const Share& x, int k) {
  OpScope s(stats(), "bits");
  if (k < 1 || k > 64) throw ArgError("bits: bit count must be in [1, 64], got " + std::to_string(k));
  const size_t n = x.size();
  const u64 mk = mask_bits(k);
  rotate_sender();
  Vec v = view_2of2(x, mk);
  // Bit j of a + b is a_j ^ b_j ^ c_j with c_j the carry into bit j. All carries
  // come from one carry circuit over k copies of the elements: copy j keeps the
  // low j bits and lets the carry propagate above them ((a, b) bits = (1, 0)).
  const size_t N = n * k, W = words_for(N), m = std::max(k - 1, 1);
  Vec planes(m * W, 0);
  for (int j = 0; j < k; ++j)
    for (size_t i = 0; i < n; ++i) {
      const size_t e = j * n + i;
      const u64 bit = u64(1) << (e & 63);
      for (size_t q = 0; q < m; ++q) {
        const bool low = static_cast<int>(q) < j;
        const bool val = low ? ((v[i] >> q) & 1) : (role() == 1);
        if (val) planes[q * W + (e >> 6)] |= bit;
      }
    }
  BShare c = carry(m, W, planes);
  // Copy 0 has no carry in: its (1, 0) padding propagates nothing only if bit 0
  // generates nothing; with all planes "propagate" the carry out is 0. (Checked.)
  Vec own(W, 0);  // this party's own bit of the 2-of-2 view, per (j, i)
  for (int j = 0; j < k; ++j)
    for (size_t i = 0; i < n; ++i)
      if ((v[i] >> j) & 1) own[(j * n + i) >> 6] |= u64(1) << ((j * n + i) & 63);
  Share all = b2a(c, N, role() == 1 ? &own : nullptr, role() == 1 ? nullptr : &own, Pub(1));
  std::vector<Shape> shapes(k, x.shape);
  return split(all, shapes);
}

// ------------------------------------------------------------------ truncation
void Rep3::pad_propagate(Vec& planes, int nplanes, size_t W, size_t N, const std::vector<int>& width) const {
  // Planes at or above an element's own width propagate the carry: (A, B) = (1, 0),
  // so the carry out of the top plane is the carry into that element's width.
  // Element e has width[e % width.size()] (per-channel widths, innermost axis).
  const bool sender = role() == 1;
  const size_t C = width.size();
  for (size_t e = 0, ch = 0; e < N; ++e, ch = ch + 1 == C ? 0 : ch + 1) {
    const u64 bit = u64(1) << (e & 63);
    u64* p = planes.data() + (e >> 6);
    for (int j = std::max(width[ch], 0); j < nplanes; ++j) {
      if (sender) p[j * W] |= bit;
      else p[j * W] &= ~bit;
    }
  }
}

void Rep3::set_round_bits(int k) {
  if (k < 1 || k > 62) throw ArgError("round_bits must be in [1, 62]");
  round_bits_ = k;
}

Share Rep3::trunc_pr(const Share& x, const Shifts& d) {
  OpScope s(stats(), "trunc_pr");
  const size_t n = x.size();
  d.check(n, 0, 62, "trunc_pr");
  if (debug_checks) check_range(x, 63, "trunc_pr");
  rotate_sender();
  // Stochastic rounding whose outcome no single party can predict, even knowing x:
  // out = floor((x + u) / 2^d) with a rounding offset u in [0, 2^d) that nobody knows.
  //
  // 2-of-2 view with offset: a (sender) + b (others) = z + w*2^64, z = x + 2^62 in
  // [0, 2^63), w = msb(a) | msb(b) (one OT, as before). Let k = min(d, round_bits_),
  // e = d - k. The low e bits (if any) are rounded by the split itself (the previous
  // one-round scheme: t = floor(z / 2^e) + B1, B1 ~ Bern((z mod 2^e) / 2^e), which a
  // party can predict), then t is rounded by its low k bits with a secret uniform
  // offset m = (m_A + m_B) mod 2^k: m_A is the sender's own randomness, m_B the two
  // others' shared randomness, so no single party knows m. That needs two carries
  // of k-bit values held by the two sides, computed in one carry circuit:
  //   c1 = [lo_A + lo_B >= 2^k] (lo_X = (T_X + m_X) mod 2^k), q = [m_A + m_B >= 2^k].
  // out = hi_A + hi_B + c1 - q - w*2^(64-d) - 2^(62-d), hi_X = floor((T_X + m_X) / 2^k).
  // P(out = floor(x/2^d) + 1) = (x mod 2^d) / 2^d exactly; a party's view changes the
  // probability of the outcome by less than 2^-k (only through B1, when e > 0).
  const int r = role();
  constexpr u64 kOff = u64(1) << 62;
  const size_t C = d.v.size();
  std::vector<int> kch(C);  // window per channel
  for (size_t c = 0; c < C; ++c) kch[c] = std::min(d.v[c], round_bits_);
  const int kmax = *std::max_element(kch.begin(), kch.end());
  // This side's random offset part: the sender's own, or the two others' shared stream.
  Vec m(n);
  if (kmax > 0) {
    Prg& g = r == 1 ? prg_own_ : r == 0 ? prg_prev_ : prg_next_;
    g.fill(m.data(), n);
  }
  const Vec& x0 = r == 0 ? x.a : x.b;  // others only
  Vec hi(n), lo(2 * n);
  std::vector<uint8_t> top(n);  // msb of this side's 2-of-2 value
  for (size_t i = 0, ch = 0; i < n; ++i, ch = ch + 1 == C ? 0 : ch + 1) {
    const int di = d.v[ch], ki = kch[ch], ei = di - ki;
    const u64 mk = mask_bits(ki);
    u64 v, t;
    if (r == 1) {
      v = x.a[i] + x.b[i];
      t = v >> ei;
    } else {
      v = x0[i] + (ei > 0 ? kOff - 1 : kOff);  // the split rounds z - 1, then adds 1
      t = (v >> ei) + (ei > 0 ? 1 : 0);
    }
    const u64 mi = m[i] & mk, low = (t & mk) + mi;
    top[i] = static_cast<uint8_t>(v >> 63);
    hi[i] = (ki >= 64 ? 0 : t >> ki) + (low >> ki);
    lo[i] = low & mk;
    lo[n + i] = mi;
  }
  // The wrap OT (independent of the carries) rides on the bit injection's round.
  auto wrap_ot = [&] {
    return ot_arith_send(
        n,
        [&](size_t i, u64& m0, u64& m1) {
          const int di = d.at(i);
          m0 = hi[i] - shl(top[i], 64 - di);
          m1 = hi[i] - shl(1, 64 - di);
        },
        [&](size_t i) -> u64 { return top[i]; });
  };
  auto finish_res = [&](OTPending& op) {
    Share res = ot_arith_finish(op);
    Vec* comp0 = r == 0 ? &res.a : r == 2 ? &res.b : nullptr;
    if (comp0)
      for (size_t i = 0; i < n; ++i) (*comp0)[i] += hi[i] - (u64(1) << (62 - d.at(i)));
    res.shape = x.shape;
    return res;
  };
  if (kmax == 0) {
    OTPending op = wrap_ot();
    Share res = finish_res(op);
    comm_.round();
    return res;
  }
  const size_t N = 2 * n, W = words_for(N);
  Vec planes = to_planes(lo, kmax, W);
  if (d.v.size() != 1) pad_propagate(planes, kmax, W, N, kch);
  BShare c = carry(kmax, W, planes);
  OTPending op = wrap_ot();
  B2APending bp = b2a_send(c, N, nullptr, nullptr, Pub(1));
  Share res = finish_res(op);
  Share cb = b2a_finish(bp);
  comm_.round();
  for (size_t i = 0; i < n; ++i) {
    res.a[i] += cb.a[i] - cb.a[n + i];
    res.b[i] += cb.b[i] - cb.b[n + i];
  }
  return res;
}

Share Rep3::trunc(const Share& x, const Shifts& d) {
  OpScope s(stats(), "trunc");
  const size_t n = x.size();
  d.check(n, 0, 62, "trunc");
  if (debug_checks) check_range(x, 63, "trunc");
  rotate_sender();
  // x' = x + 2^62 in [0, 2^63); a = x1 + x2 (P1), b = x0 + 2^62 (P0, P2), a + b = x' + w*2^64
  // with w = msb(a) | msb(b). floor(x'/2^d) = (a>>d) + (b>>d) + c - w*2^(64-d),
  // c = [a mod 2^d + b mod 2^d >= 2^d].
  const Vec& x0 = role() == 0 ? x.a : x.b;  // P0 and P2 only
  constexpr u64 kOff = u64(1) << 62;
  auto wrap_ot = [&] {
    return ot_arith_send(
        n,
        [&](size_t i, u64& m0, u64& m1) {
          const int di = d.at(i);
          const u64 v = x.a[i] + x.b[i], hi = v >> di;
          m0 = hi - shl(v >> 63, 64 - di);
          m1 = hi - shl(1, 64 - di);
        },
        [&](size_t i) -> u64 { return (x0[i] + kOff) >> 63; });
  };
  auto finish_r = [&](OTPending& op) {
    Share r = ot_arith_finish(op);
    // Public-to-P0/P2 part goes into component x_0.
    Vec* comp0 = role() == 0 ? &r.a : role() == 2 ? &r.b : nullptr;
    if (comp0)
      for (size_t i = 0; i < n; ++i) {
        const int di = d.at(i);
        (*comp0)[i] += ((x0[i] + kOff) >> di) - (u64(1) << (62 - di));
      }
    r.shape = x.shape;
    return r;
  };
  // Carry out of the low d bits; the wrap OT rides on the bit injection's round.
  const int dmax = d.max();
  if (dmax == 0) {
    OTPending op = wrap_ot();
    Share r = finish_r(op);
    comm_.round();
    return r;
  }
  const size_t W = words_for(n);
  Vec v(n);
  if (role() == 1) vadd(v.data(), x.a.data(), x.b.data(), n);
  else
    for (size_t i = 0; i < n; ++i) v[i] = x0[i] + kOff;
  Vec planes = to_planes(v, dmax, W);
  if (d.v.size() != 1) pad_propagate(planes, dmax, W, n, d.v);
  BShare c = carry(dmax, W, planes);
  OTPending op = wrap_ot();
  B2APending bp = b2a_send(c, n, nullptr, nullptr, Pub(1));
  Share r = finish_r(op);
  Share cb = b2a_finish(bp);
  comm_.round();
  cb.shape = x.shape;
  Share out = add(r, cb);
  out.shape = x.shape;
  return out;
}

}  // namespace mpc

// ------------------------------------------------------------------ fused requantization
namespace mpc {

Rep3::R4Pending Rep3::radix4_send(size_t planes, size_t W, const Vec& mine, const std::vector<uint8_t>* gonly) {
  MsgKind kind(comm_, "radix4");
  // First layer in radix 4: the (generate, propagate) pair of every 2-plane group of A + B
  // (A: 2 bits at the sender P1, B: 2 bits at P0 and P2), as replicated XOR shares, in ONE
  // round: a 1-out-of-4 OT of a 2-bit table indexed by B's bits. P1 sends each receiver the
  // table T[j] = f(A, j) ^ rho ^ sigma masked per entry (masks shared with the other
  // receiver), and each receiver sends the other the mask of its own entry B. Output
  // components as in ot_arith: y1 = rho (P0, P1), y2 = sigma (P1, P2), y0 = f ^ rho ^ sigma.
  // Groups q with (*gonly)[q] set carry no propagate output (its P comes out zero): the lowest
  // group of a circuit whose propagate nobody reads.
  if (planes & 1) throw ArgError("internal: radix-4 layer needs an even plane count");
  const size_t ng = planes / 2, n = ng * W;
  R4Pending p;
  p.n = n;
  p.W = W;
  p.role = role();
  p.out = GP{{ng, W, {}, {}}, {ng, W, {}, {}}};
  for (size_t q = 0; q < ng; ++q)
    if (!gonly || !(*gonly)[q]) p.pgroups.push_back(q);
  // Words per table entry: the generate of every group, then the propagate of the P groups.
  const size_t m = n + p.pgroups.size() * W;
  // Operand planes regrouped: lo[i] / hi[i], i = q * W + w (word w of group q).
  p.lo.resize(n);
  p.hi.resize(n);
  for (size_t q = 0; q < ng; ++q) {
    std::memcpy(p.lo.data() + q * W, mine.data() + (2 * q) * W, W * 8);
    std::memcpy(p.hi.data() + q * W, mine.data() + (2 * q + 1) * W, W * 8);
  }
  const u64* __restrict a0 = p.lo.data();
  const u64* __restrict a1 = p.hi.data();
  if (p.role == 1) {
    Vec rho = prg_prev_.next(m), m2 = prg_prev_.next(4 * m);  // m2: masks of the words to P2
    Vec sigma = prg_next_.next(m), m0 = prg_next_.next(4 * m);  // m0: masks of the words to P0
    Vec rr(m);
    vxor(rr.data(), rho.data(), sigma.data(), m);
    Vec to0(4 * m), to2(4 * m);
    // entry j = (b1 b0): generate a1 b1 ^ (a1 ^ b1) a0 b0, propagate (a1 ^ b1)(a0 ^ b0)
    for (int j = 0; j < 4; ++j) {
      u64* __restrict t0 = to0.data() + j * m;
      u64* __restrict t2 = to2.data() + j * m;
      const u64* __restrict k0 = m0.data() + j * m;
      const u64* __restrict k2 = m2.data() + j * m;
      const u64 f1 = (j & 2) ? ~u64(0) : 0, f0 = (j & 1) ? ~u64(0) : 0;  // b1, b0 of entry j
      for (size_t i = 0; i < n; ++i) {
        const u64 x1 = a1[i], x0 = a0[i];
        const u64 g = (x1 & f1) ^ ((x1 ^ f1) & x0 & f0) ^ rr[i];
        t0[i] = g ^ k0[i];
        t2[i] = g ^ k2[i];
      }
      for (size_t t = 0, k = n; t < p.pgroups.size(); ++t)
        for (size_t w = 0, i = p.pgroups[t] * W; w < W; ++w, ++i, ++k) {
          const u64 pp = ((a1[i] ^ f1) & (a0[i] ^ f0)) ^ rr[k];
          t0[k] = pp ^ k0[k];
          t2[k] = pp ^ k2[k];
        }
    }
    comm_.send(party_of(0), std::move(to0));
    comm_.send(party_of(2), std::move(to2));
    p.out.g.a.assign(rho.begin(), rho.begin() + n);
    p.out.g.b.assign(sigma.begin(), sigma.begin() + n);
    p.out.p.a = radix4_scatter(p, rho);
    p.out.p.b = radix4_scatter(p, sigma);
    p.lo = Vec();
    p.hi = Vec();
    return p;
  }
  Prg& with1 = p.role == 0 ? prg_next_ : prg_prev_;
  p.mine1 = with1.next(m);
  Vec masks = with1.next(4 * m);  // role 0: rho, m2; role 2: sigma, m0
  Vec help(m, 0);
  radix4_pick(p, masks, help);
  std::tie(p.from, p.other) = send_help(p.role, std::move(help));
  return p;
}

Vec Rep3::radix4_scatter(const R4Pending& p, const Vec& v) const {
  // the propagate words of v (after the n generate words) at their groups; zero elsewhere
  Vec out(p.n, 0);
  for (size_t t = 0; t < p.pgroups.size(); ++t)
    std::memcpy(out.data() + p.pgroups[t] * p.W, v.data() + p.n + t * p.W, p.W * 8);
  return out;
}

void Rep3::radix4_pick(const R4Pending& p, const Vec& t, Vec& dst) const {
  // dst ^= entry B of a 4-entry table (entry j at [j m, (j + 1) m)), generate and propagate words
  const size_t n = p.n, W = p.W, m = n + p.pgroups.size() * W;
  const u64* __restrict tp = t.data();
  const u64* __restrict bl = p.lo.data();
  const u64* __restrict bh = p.hi.data();
  u64* __restrict d = dst.data();
  auto pick = [&](size_t k, size_t i) {
    const u64 b0 = bl[i], b1 = bh[i];
    const u64 s0 = ~b1 & ~b0, s1 = ~b1 & b0, s2 = b1 & ~b0, s3 = b1 & b0;
    d[k] ^= (tp[k] & s0) | (tp[m + k] & s1) | (tp[2 * m + k] & s2) | (tp[3 * m + k] & s3);
  };
  for (size_t i = 0; i < n; ++i) pick(i, i);
  for (size_t q = 0, k = n; q < p.pgroups.size(); ++q)
    for (size_t w = 0, i = p.pgroups[q] * W; w < W; ++w, ++i, ++k) pick(k, i);
}

Rep3::GP Rep3::radix4_finish(R4Pending& p) {
  if (p.role == 1) return std::move(p.out);
  const size_t n = p.n, m = n + p.pgroups.size() * p.W;
  Vec table = comm_.recv(p.from, 4 * m), y0 = comm_.recv(p.other, m);
  radix4_pick(p, table, y0);
  Vec y0g(y0.begin(), y0.begin() + n), y0p = radix4_scatter(p, y0);
  Vec mg(p.mine1.begin(), p.mine1.begin() + n), mp = radix4_scatter(p, p.mine1);
  place_ot_output(p.out.g, p.role, std::move(y0g), std::move(mg));
  place_ot_output(p.out.p, p.role, std::move(y0p), std::move(mp));
  return std::move(p.out);
}

std::vector<std::vector<Rep3::GP>> Rep3::carry_chunks(const std::vector<int>& senders,
                                                      const std::vector<std::vector<size_t>>& planes,
                                                      const std::vector<size_t>& W, const std::vector<Vec>& mine,
                                                      const std::vector<bool>* need_p) {
  // Independent carry circuits in the same rounds. Chunk k has its own OT sender senders[k]
  // and rectangles planes[k][j] (even plane counts, W[k] words per plane, laid out one after
  // the other in mine[k]). One radix-4 first layer round (all chunks' sends, then all their
  // receives), then the AND tree levels of every rectangle batched into one round per level.
  const int s_saved = s_;
  const size_t K = senders.size();
  std::vector<R4Pending> pend(K);
  for (size_t k = 0; k < K; ++k) {
    size_t total = 0;
    std::vector<uint8_t> gonly;  // the lowest group of a rectangle whose P nobody reads
    for (size_t j = 0; j < planes[k].size(); ++j) {
      const size_t p = planes[k][j];
      if (p == 0 || (p & 1)) throw ArgError("internal: carry rectangles need an even, positive plane count");
      gonly.push_back(need_p && !(*need_p)[j] ? 1 : 0);
      gonly.resize(gonly.size() + p / 2 - 1, 0);
      total += p;
    }
    s_ = senders[k];
    pend[k] = radix4_send(total, W[k], mine[k], &gonly);
  }
  struct Rect {
    BShare g, p;
    size_t cnt, W;
    size_t p0;  // first pair whose propagate AND is computed (1: the lowest group's P is not wanted)
  };
  std::vector<Rect> rects;
  for (size_t k = 0; k < K; ++k) {
    s_ = senders[k];
    GP f = radix4_finish(pend[k]);
    pend[k] = R4Pending();
    for (size_t j = 0, g0 = 0; j < planes[k].size(); ++j) {
      const size_t cnt = planes[k][j] / 2, w = W[k];
      auto slice = [&](const Vec& v) { return Vec(v.begin() + g0 * w, v.begin() + (g0 + cnt) * w); };
      const size_t p0 = need_p && !(*need_p)[j] ? 1 : 0;
      rects.push_back({BShare{cnt, w, slice(f.g.a), slice(f.g.b)}, BShare{cnt, w, slice(f.p.a), slice(f.p.b)}, cnt, w, p0});
      g0 += cnt;
    }
  }
  s_ = s_saved;
  comm_.round();
  while (true) {
    size_t words = 0;
    for (auto& r : rects) {
      const size_t pairs = r.cnt / 2;
      words += (pairs + (pairs > r.p0 ? pairs - r.p0 : 0)) * r.W;
    }
    if (words == 0) break;
    BShare X{0, 0, Vec(words), Vec(words)}, Y{0, 0, Vec(words), Vec(words)};
    size_t off = 0;
    auto put = [&](BShare& dst, const BShare& src, size_t plane, size_t w) {
      std::memcpy(dst.a.data() + off, src.a.data() + plane * w, w * 8);
      std::memcpy(dst.b.data() + off, src.b.data() + plane * w, w * 8);
    };
    for (auto& r : rects) {
      const size_t pairs = r.cnt / 2;
      for (size_t t = 0; t < pairs; ++t, off += r.W) {  // P_hi & G_lo
        put(X, r.p, 2 * t + 1, r.W);
        put(Y, r.g, 2 * t, r.W);
      }
      for (size_t t = r.p0; t < pairs; ++t, off += r.W) {  // P_hi & P_lo
        put(X, r.p, 2 * t + 1, r.W);
        put(Y, r.p, 2 * t, r.W);
      }
    }
    BShare Z = bool_and(X, Y);
    comm_.round();
    off = 0;
    for (auto& r : rects) {
      const size_t pairs = r.cnt / 2, W1 = r.W;
      if (pairs == 0) continue;
      const size_t ncnt = (r.cnt + 1) / 2;
      BShare G2{ncnt, W1, Vec(ncnt * W1), Vec(ncnt * W1)};
      BShare P2{ncnt, W1, Vec(ncnt * W1), Vec(ncnt * W1)};
      for (size_t t = 0; t < pairs; ++t)
        for (size_t w = 0; w < W1; ++w) {
          G2.a[t * W1 + w] = r.g.a[(2 * t + 1) * W1 + w] ^ Z.a[off + t * W1 + w];
          G2.b[t * W1 + w] = r.g.b[(2 * t + 1) * W1 + w] ^ Z.b[off + t * W1 + w];
        }
      off += pairs * W1;
      const size_t p0 = std::min(r.p0, pairs);  // P2's first p0 groups stay zero (not wanted)
      for (size_t t = p0; t < pairs; ++t) {
        std::memcpy(P2.a.data() + t * W1, Z.a.data() + off + (t - p0) * W1, W1 * 8);
        std::memcpy(P2.b.data() + t * W1, Z.b.data() + off + (t - p0) * W1, W1 * 8);
      }
      off += (pairs - p0) * W1;
      if (r.cnt & 1) {
        std::memcpy(G2.a.data() + (ncnt - 1) * W1, r.g.a.data() + (r.cnt - 1) * W1, W1 * 8);
        std::memcpy(G2.b.data() + (ncnt - 1) * W1, r.g.b.data() + (r.cnt - 1) * W1, W1 * 8);
        std::memcpy(P2.a.data() + (ncnt - 1) * W1, r.p.a.data() + (r.cnt - 1) * W1, W1 * 8);
        std::memcpy(P2.b.data() + (ncnt - 1) * W1, r.p.b.data() + (r.cnt - 1) * W1, W1 * 8);
      }
      r.g = std::move(G2);
      r.p = std::move(P2);
      r.cnt = ncnt;
    }
  }
  std::vector<std::vector<GP>> out(K);
  for (size_t k = 0, q = 0; k < K; ++k)
    for (size_t j = 0; j < planes[k].size(); ++j, ++q) {
      rects[q].g.planes = rects[q].p.planes = 1;
      out[k].push_back({std::move(rects[q].g), std::move(rects[q].p)});
    }
  return out;
}

Rep3::GP Rep3::carry_gp(size_t planes, size_t W, const Vec& mine) {
  // (generate, propagate) of the whole `planes`-plane group: carry out = G ^ (P & carry in).
  // First layer: 2-plane groups in one round (radix-4, see radix4_send; an odd top plane is
  // padded with a propagating one), then one AND round per tree level.
  if (planes == 0) throw ArgError("internal: empty carry circuit");
  if (planes & 1) {
    Vec padded(mine.begin(), mine.begin() + planes * W);
    padded.resize((planes + 1) * W, role() == 1 ? ~u64(0) : 0);
    return std::move(carry_chunks({s_}, {{planes + 1}}, {W}, {padded})[0][0]);
  }
  return std::move(carry_chunks({s_}, {{planes}}, {W}, {mine})[0][0]);
}

namespace {
int levels_for(int planes) {  // AND rounds after the first one (radix-4 first layer)
  const int groups = planes >= 2 ? (planes + 1) / 2 : planes;
  int l = 0;
  while ((1 << l) < groups) ++l;
  return l;
}
}  // namespace

std::vector<std::vector<Rep3::BShare>> Rep3::carries(const std::vector<int>& senders, const std::vector<size_t>& ns,
                                                     const std::vector<std::vector<CarryGroup>>& chunk_groups) {
  // Every chunk has the same groups and requests (widths); only the operands and the sender differ.
  const std::vector<CarryGroup>& groups = chunk_groups.at(0);
  struct Req {
    size_t g;
    const std::vector<int>* w;
    int wmin, wmax;
  };
  std::vector<Req> reqs;
  for (size_t g = 0; g < groups.size(); ++g)
    for (auto& w : groups[g].widths) {
      if (w.empty()) throw ArgError("internal: empty carry width");
      const auto [mn, mx] = std::minmax_element(w.begin(), w.end());
      if (*mn < 0 || *mx > 64) throw ArgError("internal: carry width outside [0, 64]");
      reqs.push_back({g, &w, *mn, *mx});
    }
  // Rows of the circuit. With a split at Ls, the requests of a group whose widths are all
  // >= Ls share one row for bits [0, Ls) (its generate) and get a row for bits [Ls, w)
  // (generate and propagate), combined in one more AND round; the others get full rows.
  struct Row {
    size_t g;
    int shift;
    const std::vector<int>* w;  // request widths (the row covers [shift, w))
    int low_row;                // HIGH rows: index of their group's LOW row; -1 otherwise
    int width_max;
  };
  auto plan = [&](int Ls, std::vector<Row>* rows, std::vector<int>* req_row) {
    std::vector<int> low_of(groups.size(), -1);
    int maxw = 0;
    long cost = 0;
    bool combine = false;
    if (rows) rows->clear();
    if (req_row) req_row->clear();
    auto add_row = [&](size_t g, int shift, const std::vector<int>* w, int low, int wmax) {
      maxw = std::max(maxw, wmax);
      cost += static_cast<long>(wmax);
      if (rows) rows->push_back({g, shift, w, low, wmax});
      return rows ? static_cast<int>(rows->size()) - 1 : 0;
    };
    for (auto& r : reqs) {
      if (Ls > 0 && r.wmin >= Ls) {
        if (low_of[r.g] < 0) low_of[r.g] = add_row(r.g, 0, nullptr, -1, Ls);
        if (r.wmax > Ls) combine = true;
        const int id = add_row(r.g, Ls, r.w, low_of[r.g], r.wmax - Ls);
        if (req_row) req_row->push_back(id);
      } else {
        const int id = add_row(r.g, 0, r.w, -1, r.wmax);
        if (req_row) req_row->push_back(id);
      }
    }
    return std::make_pair(levels_for(std::max(maxw, 1)) + (combine ? 1 : 0), cost);
  };
  int best_ls = 0;
  auto best = plan(0, nullptr, nullptr);
  for (int Ls = 2; Ls <= 32; Ls *= 2) {
    auto c = plan(Ls, nullptr, nullptr);
    if (c.first < best.first || (c.first == best.first && c.second < best.second)) {
      best = c;
      best_ls = Ls;
    }
  }
  std::vector<Row> rows;
  std::vector<int> req_row;
  plan(best_ls, &rows, &req_row);
  const size_t R = rows.size(), K = senders.size();
  // One rectangle per row of nonzero width (its own width rounded up to even planes), per
  // chunk; bits above an element's width propagate: (A, B) = (1, 0).
  std::vector<size_t> rect_planes;
  std::vector<bool> rect_need_p;  // HIGH rows' P meets their LOW row's G; every other row: G only
  std::vector<int> row_rect(R, -1);
  for (size_t r = 0; r < R; ++r)
    if (rows[r].width_max > 0) {
      row_rect[r] = static_cast<int>(rect_planes.size());
      rect_planes.push_back(static_cast<size_t>((rows[r].width_max + 1) & ~1));
      rect_need_p.push_back(rows[r].low_row >= 0);
    }
  size_t total_planes = 0;
  for (size_t p : rect_planes) total_planes += p;
  std::vector<size_t> Wk(K);
  for (size_t k = 0; k < K; ++k) Wk[k] = words_for(ns[k]);
  std::vector<std::vector<GP>> gps(K);
  if (total_planes > 0) {
    const int s_saved = s_;
    std::vector<Vec> mine(K);
    for (size_t k = 0; k < K; ++k) {
      s_ = senders[k];
      const bool sender = role() == 1;
      const size_t n = ns[k], Wn = Wk[k];
      mine[k].resize(total_planes * Wn);
      Vec vals(Wn * 64);
      size_t off = 0;
      for (size_t r = 0; r < R; ++r) {
        if (row_rect[r] < 0) continue;
        const size_t np = rect_planes[row_rect[r]];
        const Vec& v = chunk_groups[k][rows[r].g].v;
        const int sh = rows[r].shift;
        const std::vector<int>* w = rows[r].w;
        const size_t C = w ? w->size() : 1;
        const u64 allp = mask_bits(static_cast<int>(np));
        std::vector<u64> keep(C), fill(C);  // per channel: operand bits kept, padding bits
        for (size_t c = 0; c < C; ++c) {
          const int width = std::max(w ? (*w)[c] - sh : rows[r].width_max, 0);
          keep[c] = mask_bits(width);
          fill[c] = sender ? allp & ~keep[c] : 0;
        }
        for (size_t i = 0, c = 0; i < n; ++i, c = c + 1 == C ? 0 : c + 1)
          vals[i] = ((sh >= 64 ? 0 : v[i] >> sh) & keep[c]) | fill[c];
        Vec pl = to_planes(vals, np, Wn);
        std::copy(pl.begin(), pl.end(), mine[k].begin() + off);
        off += pl.size();
      }
    }
    s_ = s_saved;
    std::vector<std::vector<size_t>> pk(K, rect_planes);
    gps = carry_chunks(senders, pk, Wk, mine, &rect_need_p);
  }
  std::vector<std::vector<BShare>> rowg(K, std::vector<BShare>(R));
  for (size_t k = 0; k < K; ++k)
    for (size_t r = 0; r < R; ++r)
      rowg[k][r] = row_rect[r] >= 0 ? gps[k][row_rect[r]].g : BShare{1, Wk[k], Vec(Wk[k], 0), Vec(Wk[k], 0)};
  // Combine HIGH rows with their group's LOW generate: G_high ^= P_high & G_low (a zero-width
  // HIGH row propagates everything: its carry is G_low).
  std::vector<size_t> high;
  for (size_t r = 0; r < R; ++r)
    if (rows[r].low_row >= 0) {
      if (row_rect[r] >= 0) high.push_back(r);
      else
        for (size_t k = 0; k < K; ++k) rowg[k][r] = rowg[k][rows[r].low_row];
    }
  if (!high.empty()) {
    size_t words = 0;
    for (size_t k = 0; k < K; ++k) words += high.size() * Wk[k];
    BShare X{0, 0, Vec(words), Vec(words)}, Y{0, 0, Vec(words), Vec(words)};
    size_t off = 0;
    for (size_t k = 0; k < K; ++k)
      for (size_t r : high) {
        const GP& g = gps[k][row_rect[r]];
        const BShare& lo = rowg[k][rows[r].low_row];
        std::copy(g.p.a.begin(), g.p.a.end(), X.a.begin() + off);
        std::copy(g.p.b.begin(), g.p.b.end(), X.b.begin() + off);
        std::copy(lo.a.begin(), lo.a.end(), Y.a.begin() + off);
        std::copy(lo.b.begin(), lo.b.end(), Y.b.begin() + off);
        off += Wk[k];
      }
    BShare Z = bool_and(X, Y);
    comm_.round();
    off = 0;
    for (size_t k = 0; k < K; ++k)
      for (size_t r : high) {
        for (size_t w = 0; w < Wk[k]; ++w) {
          rowg[k][r].a[w] ^= Z.a[off + w];
          rowg[k][r].b[w] ^= Z.b[off + w];
        }
        off += Wk[k];
      }
  }
  std::vector<std::vector<BShare>> out(K);
  for (size_t k = 0; k < K; ++k)
    for (size_t q = 0; q < reqs.size(); ++q) out[k].push_back(rowg[k][req_row[q]]);
  return out;
}

namespace {
using i128 = __int128;
i128 ceil_div(i128 k, i128 m) { return k / m + ((k % m != 0 && k > 0) ? 1 : 0); }
size_t lcm_size(size_t a, size_t b) {
  size_t x = a, y = b;
  while (y) {
    const size_t t = x % y;
    x = y;
    y = t;
  }
  return a / x * b;
}
}  // namespace

int Rep3::requant_reads(const RequantSpec& s) {
  // as requant() below: the comparisons read acc mod 2^(acc_bits + 1), the truncation
  // y = acc * mult + add mod 2^B, B = d + rbits + 1 (the composition, where B > 64: everything)
  size_t per = 1;
  for (size_t sz : {s.d.v.size(), s.lo.v.size(), s.hi.v.size()}) per = lcm_size(per, std::max<size_t>(sz, 1));
  int rbits = 1, dmax = 0;
  for (size_t c = 0; c < per; ++c) {
    const i64 lo = static_cast<i64>(s.lo.at(c)), hi = static_cast<i64>(s.hi.at(c));
    if (lo > hi || i128(hi) - lo >= (i128(1) << 16)) return 64;
    while ((i64(1) << rbits) < hi - lo + 1) ++rbits;
    dmax = std::max(dmax, s.d.at(c));
  }
  const int B = dmax + rbits + 1;
  if (B > 64) return 64;
  return std::max(B, s.acc_bits + 1);
}

Share Rep3::requant(const Share& acc, const RequantSpec& s) {
  OpScope scope(stats(), "requant");
  const size_t n = acc.size();
  s.check(n);
  const bool has_adj = !s.adj.v.empty();
  const int ab = s.acc_bits;
  if (debug_checks) check_range(acc, ab, "requant");
  if (n == 0) return acc;
  // Per-channel parameters over one period of every pattern.
  size_t per = 1;
  for (size_t sz : {s.mult.v.size(), s.add.v.size(), s.d.v.size(), s.lo.v.size(), s.hi.v.size(),
                    has_adj ? s.adj.v.size() : size_t(1)})
    per = lcm_size(per, sz);
  if (n % per != 0) throw ArgError("requant: parameter vectors do not broadcast over the tensor");
  const bool stoch = s.stochastic;
  int rbits = 1;  // the in-range output offset R - lo fits rbits unsigned bits
  struct Ch {
    int d, k, B;
    u64 mult, add, adj;
    i64 lo, hi;
    i64 th[4];  // below, above, ge, le: [acc < th]
    bool corr;
  };
  std::vector<Ch> ch(per);
  const i128 amax = i128(1) << (ab - 1);
  for (size_t c = 0; c < per; ++c) {
    Ch& h = ch[c];
    h.d = s.d.at(c);
    h.mult = s.mult.at(c);
    h.add = s.add.at(c);
    h.adj = has_adj ? s.adj.at(c) : 0;
    h.lo = static_cast<i64>(s.lo.at(c));
    h.hi = static_cast<i64>(s.hi.at(c));
    if (h.lo > h.hi || i128(h.hi) - h.lo >= (i128(1) << 16))
      throw ArgError("requant: clamp bounds must satisfy lo <= hi < lo + 2^16");
    if (h.mult >= (u64(1) << 62)) throw ArgError("requant: multiplier must be below 2^62");
    if (stoch && h.adj) throw ArgError("requant: the tie correction needs floor rounding");
    if (h.adj > (u64(1) << (h.d - 1))) throw ArgError("requant: adj must be at most 2^(d-1)");
    while ((i64(1) << rbits) < h.hi - h.lo + 1) ++rbits;
    auto theta = [&](i128 L) -> i64 {  // [floor(v / 2^d) < L] = [acc < theta]
      const i128 K = (i128(L) << h.d) - i128(static_cast<i64>(h.add));
      i128 t = h.mult == 0 ? (K > 0 ? amax : -amax) : ceil_div(K, i128(h.mult));
      t = std::max(-amax, std::min(amax, t));
      return static_cast<i64>(t);
    };
    const i64 h0 = std::min<i64>(0, h.hi);
    h.corr = !stoch && h.adj != 0 && h.lo < h0;
    h.th[0] = theta(h.lo);
    h.th[1] = theta(stoch ? i128(h.hi) : i128(h.hi) + 1);
    h.th[2] = h.corr ? theta(h.lo + 1) : h.th[0];
    h.th[3] = h.corr ? theta(h0 + 1) : h.th[0];
    // the output stage takes in = 1 ^ below ^ above: below and above must exclude each other
    if (h.th[0] > h.th[1]) throw Error("internal: requant thresholds out of order");
  }
  bool any_corr = false;
  for (auto& h : ch) any_corr |= h.corr;
  for (auto& h : ch) {
    h.B = h.d + rbits + 1;
    h.k = std::min(h.d, round_bits_);
  }
  // The in-range value must fit the ring with its wrap bit: d + rbits + 1 <= 64 (TFLite: any
  // right shift up to 24 with an int8 output range). Beyond, the generic composition.
  for (auto& h : ch)
    if (h.B > 64) return requant_composed(acc, s);
  // The tensor runs as up to three chunks of whole channel periods, each with a different OT
  // sender, in the same rounds: every party does a third of the sender's work and every link
  // carries a third of the heavy traffic.
  rotate_sender();
  const int s0 = s_;
  const size_t nper = n / per, K = std::min<size_t>(3, nper);
  std::vector<size_t> cb(K + 1), ns(K);
  std::vector<int> senders(K);
  for (size_t k = 0; k <= K; ++k) cb[k] = (nper * k / K) * per;
  for (size_t k = 0; k < K; ++k) {
    ns[k] = cb[k + 1] - cb[k];
    senders[k] = static_cast<int>((s0 + k) % 3);
  }
  // y = v - lo * 2^d: in range (lo <= R <= hi) it lies in [0, 2^(d + rbits)).
  std::vector<u64> ymul(per), yadd(per);
  for (size_t c = 0; c < per; ++c) {
    ymul[c] = ch[c].mult;
    yadd[c] = ch[c].add - (static_cast<u64>(ch[c].lo) << ch[c].d);
  }
  const Share y = add_public(mul_public(acc, Pub(ymul)), Pub(yadd));
  const u64 amask = mask_bits(ab), atop = u64(1) << ab;
  const int ncmp = any_corr ? 4 : 2;
  std::vector<int> wd(per), wB(per), wk(per);
  for (size_t c = 0; c < per; ++c) {
    wd[c] = ch[c].d;
    wB[c] = ch[c].B;
    wk[c] = ch[c].k;
  }
  struct Chunk {
    int role;
    std::vector<Vec> cmp_known;  // this side's top bit of each comparison
    Vec ylocal;                  // this side's high part of the truncated value
    Vec adj_known;               // others: [b_low >= adj]
  };
  std::vector<Chunk> cks(K);
  std::vector<std::vector<CarryGroup>> groups(K);
  for (size_t k = 0; k < K; ++k) {
    s_ = senders[k];
    const int r = role();
    const bool sender = r == 1;
    const size_t i0 = cb[k], nk = ns[k], Wn = words_for(nk);
    Chunk& C = cks[k];
    C.role = r;
    // This party's 2-of-2 view of acc and y on the chunk (the sender: a = x_s + x_{s+1},
    // the others: b = x_{s+2}); i0 is a multiple of the period: channel = j % per.
    auto view = [&](const Share& x) {
      Vec v(nk);
      if (sender) vadd(v.data(), x.a.data() + i0, x.b.data() + i0, nk);
      else std::copy_n((r == 0 ? x.a : x.b).begin() + i0, nk, v.begin());
      return v;
    };
    // Comparisons [acc < th] = bit ab of (acc - th) mod 2^(ab+1) = a_ab ^ b'_ab ^ carry_ab(a, b').
    Vec av = view(acc);
    C.cmp_known.assign(ncmp, Vec(Wn, 0));
    for (int t = 0; t < ncmp; ++t) {
      CarryGroup g;
      g.v.resize(nk);
      for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) {
        const u64 val = sender ? av[j] : av[j] - static_cast<u64>(ch[c].th[t]);
        g.v[j] = val & amask;
        if (val & atop) C.cmp_known[t][j >> 6] |= u64(1) << (j & 63);
      }
      g.widths = {{ab}};
      groups[k].push_back(std::move(g));
    }
    av = Vec();
    // The truncated value's operands, reduced mod 2^B.
    Vec yv = view(y);
    C.ylocal.resize(nk);
    CarryGroup gy, gadj, gq;
    gy.v.resize(nk);
    for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) gy.v[j] = yv[j] & mask_bits(ch[c].B);
    yv = Vec();
    if (!stoch) {
      for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) C.ylocal[j] = gy.v[j] >> ch[c].d;
      gy.widths = {wd, wB};  // carry out of the low d bits, wrap out of the B bits
      groups[k].push_back(std::move(gy));
      if (any_corr) {
        gadj.v.resize(nk);
        if (!sender) C.adj_known.assign(Wn, 0);
        const Vec& yb = groups[k].back().v;
        for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) {
          const u64 md = mask_bits(ch[c].d), lowb = yb[j] & md;
          gadj.v[j] = sender ? lowb : (lowb - ch[c].adj) & md;
          if (!sender && lowb >= ch[c].adj) C.adj_known[j >> 6] |= u64(1) << (j & 63);
        }
        gadj.widths = {wd};
        groups[k].push_back(std::move(gadj));
      }
    } else {
      // Stochastic rounding of y with an offset m = (m_A + m_B) mod 2^k that no party knows
      // (m_A: the sender's own randomness, m_B: the others' shared stream); the low e = d - k
      // bits are rounded by the split itself (see trunc_pr). With T_X = t_X + m_X reduced mod
      // 2^B' (B' = B - e), Z = z' + m_A + m_B < 2^B' in range, so
      //   floor(Z / 2^k) = (T_A >> k) + (T_B >> k) + c1 - W' 2^(B' - k)
      // where c1 and W' are carries out of the low k and all B' bits of T_A + T_B (one group:
      // they share their low bits), and the rounding offset's own wrap q is subtracted.
      Vec mrand(nk);
      Prg& g = r == 1 ? prg_own_ : r == 0 ? prg_prev_ : prg_next_;
      g.fill(mrand.data(), nk);
      CarryGroup gt;
      gt.v.resize(nk);
      gq.v.resize(nk);
      std::vector<int> wBp(per);
      for (size_t c = 0; c < per; ++c) wBp[c] = ch[c].B - (ch[c].d - ch[c].k);
      for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) {
        const int kb = ch[c].k, e = ch[c].d - kb;
        const u64 mk = mask_bits(kb), v = gy.v[j];
        u64 t;
        if (sender || e == 0) t = v >> e;
        else t = v == 0 ? 0 : ((v - 1) >> e) + 1;
        const u64 mi = mrand[j] & mk, T = (t + mi) & mask_bits(wBp[c]);
        C.ylocal[j] = T >> kb;
        gt.v[j] = T;
        gq.v[j] = mi;
      }
      gt.widths = {wk, wBp};
      gq.widths = {wk};
      groups[k].push_back(std::move(gt));
      groups[k].push_back(std::move(gq));
    }
  }
  s_ = s0;
  std::vector<std::vector<BShare>> cs = carries(senders, ns, groups);
  groups.clear();
  // cs[k]: comparisons (ncmp), then floor: c_d, wrap[, adj]; stochastic: c1, wrap, q.
  //
  // The output stage, in two rounds: out - lo = in * F + above * span (- ls * m with the tie
  // correction), F = hi_A + hi_B + sum_X kappa_X X over the carry bits X (floor: c_d -
  // 2^(rbits+1) wrap; stochastic: c1 - q - 2^(rbits+1) wrap), and in = 1 ^ below ^ above
  // (below and above exclude each other: th0 <= th1), one XOR-shared bit. Every bit is
  // X = g_X ^ e_X with g_X known to the sender S and e_X to the two others, so
  // X = g_X + s_X e_X with the sign s_X = 1 - 2 g_X; with hi_A at S and hi_B at the others the
  // whole expression is a polynomial sum_mu c_mu(S) * mu(others) + p_S + p_O, p_O a term the
  // two others both know. For every monomial mu of the others' values (hi_B (1 - 2 e_in),
  // e_in, e_above, and e_X, e_in e_X per carry bit; e_ls, e_m, e_ls e_m), S sends c_mu + r_mu
  // to one of the others, r_mu from the PRG S shares with the other one: the receiver adds
  // mu * (c_mu + r_mu), the other subtracts mu * r_mu, S keeps p_S, role 0 adds p_O. This
  // additive sharing is reshared once (round two). in * hi_B = g_in hi_B (1 - 2 e_in) +
  // e_in hi_B takes one word (p_O = e_in hi_B). One word per monomial (7 on ReLU layers) and
  // three for the resharing, instead of four per injected bit, the sender's share of hi_A
  // and a product (20). The monomials alternate between the two receivers (roles 0 and 2),
  // an odd last one split by elements, so that every link carries the same load.
  const u64 Wt = u64(1) << (rbits + 1);
  const int ob = s.out_bits;  // the output is needed mod 2^ob: the messages carry ob bits
  std::vector<u64> kap;  // kappa per carry bit
  std::vector<int> fidx;  // their positions in cs[k]
  if (stoch) {
    kap = {1, 0 - u64(1), 0 - Wt};
    fidx = {ncmp, ncmp + 2, ncmp + 1};
  } else {
    kap = {1, 0 - Wt};
    fidx = {ncmp, ncmp + 1};
  }
  const size_t nF = kap.size(), nmon = 3 + 2 * nF + (any_corr ? 3 : 0), npair = nmon / 2;
  const bool odd = nmon & 1;
  // words to role 0 / role 2 for a chunk of nk elements; monomial m < 2 npair goes to role
  // m & 1 at (m >> 1) * nk + j; an odd last one to role 0 for j < nk / 2, else to role 2
  auto nto = [&](int side, size_t nk) {
    return npair * nk + (odd ? (side == 0 ? nk / 2 : nk - nk / 2) : 0);
  };
  std::vector<Vec> monos(K), maskbuf(K);
  std::vector<u64> spanv(per);
  for (size_t c = 0; c < per; ++c) spanv[c] = static_cast<u64>(ch[c].hi - ch[c].lo);
  Vec z(n, 0);
  {
    MsgKind kind(comm_, "cross");
    for (size_t k = 0; k < K; ++k) {
      s_ = senders[k];
      const int r = cks[k].role;
      const size_t i0 = cb[k], nk = ns[k];
      const std::vector<BShare>& bs = cs[k];
      // bit q of element j on this side: S: g (both components ^ S-known), others: e
      auto side_bits = [&](const BShare& x, const Vec* known, bool invert_other) {
        Vec w(x.a.size());
        for (size_t i = 0; i < w.size(); ++i) {
          u64 v = r == 1 ? x.a[i] ^ x.b[i] : (r == 0 ? x.a[i] : x.b[i]);
          if (known) v ^= (*known)[i];
          if (invert_other && r != 1) v = ~v;
          w[i] = v;
        }
        return w;
      };
      const Vec bb = side_bits(bs[0], &cks[k].cmp_known[0], false);
      const Vec ba = side_bits(bs[1], &cks[k].cmp_known[1], true);
      std::vector<Vec> bF(nF);
      for (size_t f = 0; f < nF; ++f) bF[f] = side_bits(bs[fidx[f]], nullptr, false);
      Vec bl, bm;
      if (any_corr) {
        // m = [acc < th2] ^ [acc < th3] (the sender's top bits cancel); ls = not [y_low >= adj]
        BShare mb = bs[2], lb = bs[ncmp + 2];
        Vec km(mb.a.size(), 0), kl(mb.a.size(), 0);
        for (size_t w = 0; w < km.size(); ++w) {
          mb.a[w] ^= bs[3].a[w];
          mb.b[w] ^= bs[3].b[w];
          lb.a[w] ^= bs[ncmp].a[w];
          lb.b[w] ^= bs[ncmp].b[w];
          if (r != 1) {
            km[w] = cks[k].cmp_known[2][w] ^ cks[k].cmp_known[3][w];
            kl[w] = ~cks[k].adj_known[w];
          }
        }
        bm = side_bits(mb, &km, false);
        bl = side_bits(lb, &kl, false);
      }
      auto bit = [](const Vec& w, size_t j) -> u64 { return (w[j >> 6] >> (j & 63)) & 1; };
      if (r == 1) {
        // S: coefficients c_mu (monomial-major), masked for the receiver with the PRG it
        // shares with the other one (role 0's masks come from the S-role 2 key, prg_next_).
        Vec mk0 = prg_next_.next(nto(0, nk)), mk2 = prg_prev_.next(nto(1, nk));
        Vec to0(nto(0, nk)), to2(nto(1, nk));
        const size_t half = nk / 2;
        std::vector<u64> cf(nmon);
        for (size_t j = 0, c = 0; j < nk; ++j, c = c + 1 == per ? 0 : c + 1) {
          const u64 ga = bit(ba, j), gi = 1 ^ bit(bb, j) ^ ga, si = 1 - 2 * gi, sa = 1 - 2 * ga;
          u64 F0 = cks[k].ylocal[j];
          for (size_t f = 0; f < nF; ++f) F0 += kap[f] * bit(bF[f], j);
          size_t q = 0;
          cf[q++] = gi;                       // hi_B (1 - 2 e_in)
          cf[q++] = si * F0;                  // e_in
          cf[q++] = spanv[c] * sa;            // e_a
          for (size_t f = 0; f < nF; ++f) {
            const u64 ks = kap[f] * (1 - 2 * bit(bF[f], j));
            cf[q++] = gi * ks;                // e_X
            cf[q++] = si * ks;                // e_in e_X
          }
          u64 pS = gi * F0 + spanv[c] * ga;
          if (any_corr) {
            const u64 gl = bit(bl, j), gm = bit(bm, j), sl = 1 - 2 * gl, sm = 1 - 2 * gm;
            cf[q++] = 0 - sl * gm;            // e_ls
            cf[q++] = 0 - gl * sm;            // e_m
            cf[q++] = 0 - sl * sm;            // e_ls e_m
            pS -= gl * gm;
          }
          for (size_t m = 0; m < 2 * npair; ++m) {
            const size_t at = (m >> 1) * nk + j;
            if (m & 1) to2[at] = cf[m] + mk2[at];
            else to0[at] = cf[m] + mk0[at];
          }
          if (odd) {
            const size_t at = npair * nk + (j < half ? j : j - half);
            if (j < half) to0[at] = cf[nmon - 1] + mk0[at];
            else to2[at] = cf[nmon - 1] + mk2[at];
          }
          z[i0 + j] = pS;
        }
        send_low(comm_, party_of(0), std::move(to0), ob);
        send_low(comm_, party_of(2), std::move(to2), ob);
      } else {
        // the masks of the other receiver's monomials (shared with S)
        const int side = r == 0 ? 0 : 1;
        maskbuf[k] = (r == 0 ? prg_next_ : prg_prev_).next(nto(1 - side, nk));
        // the monomials' values, kept for the receive
        Vec mon(nmon * nk);
        const Vec& hiB = cks[k].ylocal;
        for (size_t j = 0; j < nk; ++j) {
          const u64 ea = bit(ba, j), ei = bit(bb, j) ^ ea;
          size_t q = 0;
          mon[q++ * nk + j] = ei ? 0 - hiB[j] : hiB[j];
          mon[q++ * nk + j] = ei;
          mon[q++ * nk + j] = ea;
          if (r == 0) z[i0 + j] += ei * hiB[j];  // p_O
          for (size_t f = 0; f < nF; ++f) {
            const u64 ex = bit(bF[f], j);
            mon[q++ * nk + j] = ex;
            mon[q++ * nk + j] = ei & ex;
          }
          if (any_corr) {
            const u64 el = bit(bl, j), em = bit(bm, j);
            mon[q++ * nk + j] = el;
            mon[q++ * nk + j] = em;
            mon[q++ * nk + j] = el & em;
          }
        }
        monos[k] = std::move(mon);
      }
    }
    for (size_t k = 0; k < K; ++k) {
      s_ = senders[k];
      const int r = cks[k].role;
      if (r == 1) continue;
      const size_t i0 = cb[k], nk = ns[k];
      const int side = r == 0 ? 0 : 1;
      const Vec recv = recv_low(comm_, party_of(1), nto(side, nk), ob);
      const Vec& mon = monos[k];
      const Vec& mk = maskbuf[k];
      u64* zz = z.data() + i0;
      for (size_t m = 0; m < 2 * npair; ++m) {
        const u64* mu = mon.data() + m * nk;
        const size_t at = (m >> 1) * nk;
        if (static_cast<int>(m & 1) == side) {
          const u64* cv = recv.data() + at;
          for (size_t j = 0; j < nk; ++j) zz[j] += mu[j] * cv[j];
        } else {
          const u64* rv = mk.data() + at;
          for (size_t j = 0; j < nk; ++j) zz[j] -= mu[j] * rv[j];
        }
      }
      if (odd) {  // role 0 received elements [0, half), role 2 the rest
        const u64* mu = mon.data() + (nmon - 1) * nk;
        const size_t half = nk / 2, at = npair * nk;
        const u64* cv = recv.data() + at;  // this side's words
        const u64* rv = mk.data() + at;    // the other side's masks
        for (size_t j = 0; j < half; ++j) zz[j] += side == 0 ? mu[j] * cv[j] : 0 - mu[j] * rv[j];
        for (size_t j = half; j < nk; ++j) zz[j] += side == 0 ? 0 - mu[j] * rv[j - half] : mu[j] * cv[j - half];
      }
    }
  }
  s_ = s0;
  cs.clear();
  monos.clear();
  maskbuf.clear();
  comm_.round();
  Share out = reshare(std::move(z), acc.shape, ob);
  comm_.round();
  std::vector<u64> lov(per);
  for (size_t c = 0; c < per; ++c) lov[c] = static_cast<u64>(ch[c].lo);
  out = add_public(out, Pub(lov));
  out.shape = acc.shape;
  return out;
}

}  // namespace mpc
