#include "rep3.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "../linalg.h"
#include "../ops.h"

namespace mpc {

namespace {

inline u64 shl(u64 x, int s) { return s >= 64 ? 0 : x << s; }

// In-place 64x64 bit-matrix transpose: bit j of a[i] <-> bit i of a[j].
void transpose64(u64* a) {
  u64 m = 0x00000000FFFFFFFFULL;
  for (int j = 32; j != 0; j >>= 1, m ^= (m << j)) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      u64 t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

// Bit planes of the low `planes` bits of v[0..n): plane j bit i = bit j of v[i].
Vec to_planes(const Vec& v, size_t planes, size_t W) {
  Vec out(planes * W);
  u64 blk[64];
  const size_t n = v.size();
  for (size_t w = 0; w < W; ++w) {
    const size_t base = w * 64, cnt = std::min<size_t>(64, n - base);
    std::memcpy(blk, v.data() + base, cnt * 8);
    std::memset(blk + cnt, 0, (64 - cnt) * 8);
    transpose64(blk);
    for (size_t j = 0; j < planes; ++j) out[j * W + w] = blk[j];
  }
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

constexpr size_t kChunk = 2048;  // elements per fused step (even: whole PRG blocks)

inline u64 bit_at(const u64* words, size_t i) { return (words[i >> 6] >> (i & 63)) & 1; }

}  // namespace

Rep3::Rep3(Comm& comm) : Protocol(comm), me_(comm.party()) {
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
}

// ------------------------------------------------------------------ sharing
Share Rep3::input(int owner, const Shape& shape, const u64* data) {
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
Share Rep3::reshare(Vec&& z, const Shape& shape) {
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
  comm_.send(prev_, z);
  Share out{shape, std::move(z), comm_.recv(next_, n)};
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
  Share all = reshare(std::move(z), {static_cast<int64_t>(total)});
  comm_.round();
  if (list.size() == 1) {
    all.shape = shapes[0];
    return {std::move(all)};
  }
  return split(all, shapes);
}

// ------------------------------------------------------------------ boolean layer
Rep3::BShare Rep3::bool_and(const BShare& x, const BShare& y) {
  const size_t n = x.a.size();
  Vec z(n), r1 = prg_next_.next(n), r2 = prg_prev_.next(n);
  for (size_t i = 0; i < n; ++i)
    z[i] = (x.a[i] & y.a[i]) ^ (x.a[i] & y.b[i]) ^ (x.b[i] & y.a[i]) ^ r1[i] ^ r2[i];
  comm_.send(prev_, z);
  BShare out{x.planes, x.W, std::move(z), comm_.recv(next_, n)};
  return out;
}

template <class Msg, class Choice>
Share Rep3::ot_arith(size_t n, Msg&& msg, Choice&& choice) {
  // Output components: y1 = rho (P0,P1), y2 = sigma (P1,P2), y0 = m_c - rho - sigma (P0,P2).
  // P1 sends both table entries to P2 masked with (w0, w1) (key P0-P1) and to P0
  // masked with (v0, v1) (key P1-P2); each receiver gets the mask of its choice
  // from the other receiver, who knows the choice and the masks.
  Share out;
  out.shape = {static_cast<int64_t>(n)};
  u64 r0[kChunk], r1[kChunk];
  if (role() == 1) {
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
    return out;
  }
  Prg& with1 = role() == 0 ? prg_next_ : prg_prev_;
  const u64 bM = with1.skip(n), bW0 = with1.skip(n), bW1 = with1.skip(n);
  Vec mine(n), help(n);
  std::vector<uint8_t> ch(n);
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
  const int other = party_of(role() == 0 ? 2 : 0);
  comm_.send(other, std::move(help));
  Vec table = comm_.recv(party_of(1), 2 * n), y0 = comm_.recv(other, n);
  for (size_t i = 0; i < n; ++i) {
    const u64 sel = 0 - static_cast<u64>(ch[i]);
    y0[i] = ((table[i] & ~sel) | (table[n + i] & sel)) - y0[i];
  }
  place_ot_output(out, role(), std::move(y0), std::move(mine));
  return out;
}

template <class Out, class Send, class Help, class Finish>
void Rep3::corr_ot(size_t n, Out& out, Send&& send, Help&& help, Finish&& finish) {
  // Correlated three-party OT (sender P1, choice known to P0 and P2), replicated output
  // (y1 = rho, y2 = sigma, y0 at P0/P2) in one round, one word per receiver from P1:
  // send(to0, to2, sigma', rho') masks P1's words with sigma' (unknown to P0) and rho'
  // (unknown to P2); each receiver sends the other help(h, mask', own) and finishes
  // with finish(y0 <- word from P1, h <- help from the other, own).
  if (role() == 1) {
    Vec rho = prg_prev_.next(n), rho2 = prg_prev_.next(n);
    Vec sigma = prg_next_.next(n), sigma2 = prg_next_.next(n);
    Vec to0(n), to2(n);
    send(to0, to2, sigma2, rho2);
    comm_.send(party_of(0), std::move(to0));
    comm_.send(party_of(2), std::move(to2));
    out.a = std::move(rho);
    out.b = std::move(sigma);
    return;
  }
  Prg& with1 = role() == 0 ? prg_next_ : prg_prev_;
  Vec mine = with1.next(n), mask2 = with1.next(n);
  Vec h(n);
  help(h, mask2, mine);
  const int other = party_of(role() == 0 ? 2 : 0);
  comm_.send(other, std::move(h));
  Vec y0 = comm_.recv(party_of(1), n), hr = comm_.recv(other, n);
  finish(y0, hr, mine);
  place_ot_output(out, role(), std::move(y0), std::move(mine));
}

Rep3::BShare Rep3::and_cross(size_t planes, size_t W, const u64* A, const u64* C) {
  // A & C with A known to P1 and C to P0 and P2, as a replicated XOR sharing in one
  // round: P1 sends A ^ sigma' to P0 and A ^ rho' to P2; P0 sends P2 (C & rho') ^ rho,
  // P2 sends P0 (C & sigma') ^ sigma; y0 = (C & received) ^ help ^ own.
  const size_t n = planes * W;
  BShare out{planes, W, {}, {}};
  corr_ot(
      n, out,
      [&](Vec& to0, Vec& to2, const Vec& sigma2, const Vec& rho2) {
        vxor(to0.data(), A, sigma2.data(), n);
        vxor(to2.data(), A, rho2.data(), n);
      },
      [&](Vec& h, const Vec& mask2, const Vec& mine) {
        for (size_t i = 0; i < n; ++i) h[i] = (C[i] & mask2[i]) ^ mine[i];
      },
      [&](Vec& y0, const Vec& h, const Vec& mine) {
        for (size_t i = 0; i < n; ++i) y0[i] = (C[i] & y0[i]) ^ h[i] ^ mine[i];
      });
  return out;
}

Rep3::BShare Rep3::carry(size_t planes, size_t W, const Vec& mine) {
  const Vec& A = mine;  // the sender's operand (P1)
  const Vec& B = mine;  // the others' operand (P0, P2)
  const size_t n = planes * W;
  // Round 1: share A as XOR-replicated (0, c1, A^c1); G = A & B by OT; P = A ^ B.
  BShare a{planes, W, {}, {}}, bsh{planes, W, {}, {}};
  if (role() == 1) {
    Vec c1 = prg_prev_.next(n), c2(n);
    for (size_t i = 0; i < n; ++i) c2[i] = A[i] ^ c1[i];
    comm_.send(party_of(2), c2);
    a.a = std::move(c1);
    a.b = std::move(c2);
    bsh.a.assign(n, 0);
    bsh.b.assign(n, 0);
  } else if (role() == 0) {
    a.a.assign(n, 0);
    a.b = prg_next_.next(n);
    bsh.a = B;
    bsh.b.assign(n, 0);
  } else {
    a.a = comm_.recv(party_of(1), n);
    a.b.assign(n, 0);
    bsh.a.assign(n, 0);
    bsh.b = B;
  }
  BShare G = and_cross(planes, W, role() == 1 ? A.data() : nullptr, role() == 1 ? nullptr : B.data());
  comm_.round();
  BShare P{planes, W, Vec(n), Vec(n)};
  vxor(P.a.data(), a.a.data(), bsh.a.data(), n);
  vxor(P.b.data(), a.b.data(), bsh.b.data(), n);
  // Tree: (G, P)_hi o (G, P)_lo = (G_hi ^ (P_hi & G_lo), P_hi & P_lo); group 0's P is never needed.
  size_t cnt = planes;
  while (cnt > 1) {
    const size_t pairs = cnt / 2;
    // ANDs: P_hi & G_lo for every pair, P_hi & P_lo for pairs t >= 1.
    const size_t nand = pairs + (pairs - 1);
    BShare X{nand, W, Vec(nand * W), Vec(nand * W)};
    BShare Y{nand, W, Vec(nand * W), Vec(nand * W)};
    auto put = [&](BShare& dst, size_t slot, const BShare& src, size_t plane) {
      std::memcpy(dst.a.data() + slot * W, src.a.data() + plane * W, W * 8);
      std::memcpy(dst.b.data() + slot * W, src.b.data() + plane * W, W * 8);
    };
    for (size_t t = 0; t < pairs; ++t) {
      put(X, t, P, 2 * t + 1);
      put(Y, t, G, 2 * t);
      if (t >= 1) {
        put(X, pairs + t - 1, P, 2 * t + 1);
        put(Y, pairs + t - 1, P, 2 * t);
      }
    }
    BShare Z = bool_and(X, Y);
    comm_.round();
    const size_t ncnt = (cnt + 1) / 2;
    BShare G2{ncnt, W, Vec(ncnt * W), Vec(ncnt * W)};
    BShare P2{ncnt, W, Vec(ncnt * W), Vec(ncnt * W)};
    for (size_t t = 0; t < pairs; ++t) {
      for (size_t w = 0; w < W; ++w) {
        G2.a[t * W + w] = G.a[(2 * t + 1) * W + w] ^ Z.a[t * W + w];
        G2.b[t * W + w] = G.b[(2 * t + 1) * W + w] ^ Z.b[t * W + w];
      }
      if (t >= 1) put(P2, t, Z, pairs + t - 1);
    }
    if (cnt & 1) {
      put(G2, ncnt - 1, G, cnt - 1);
      put(P2, ncnt - 1, P, cnt - 1);
    }
    G = std::move(G2);
    P = std::move(P2);
    cnt = ncnt;
  }
  G.planes = 1;
  G.a.resize(W);
  G.b.resize(W);
  return G;
}

Share Rep3::b2a(const BShare& c, size_t n, const Vec* x1, const Vec* x02, const Pub& s) {
  // Bit v = g ^ e with g = c1 ^ c2 (^ x1) known to the sender P1 and e = c0 (^ x02)
  // known to P0 and P2: y0 = v*s - rho - sigma = e*s + (1 - 2e) * g*s - rho - sigma.
  // P1 sends A = g*s + sigma' to P0 and B = g*s + rho' to P2; P0 sends P2
  // (1 - 2e) rho' + rho, P2 sends P0 (1 - 2e) sigma' + sigma; then
  // y0 = e*s + (1 - 2e) A - h2 - rho = e*s + (1 - 2e) B - h0 - sigma. Each receiver
  // sees two words masked by two independent values it does not know.
  const size_t W = words_for(n);
  Share out;
  out.shape = {static_cast<int64_t>(n)};
  Vec ebits;
  if (role() != 1) {
    const Vec& c0 = role() == 0 ? c.a : c.b;
    ebits.resize(W);
    for (size_t w = 0; w < W; ++w) ebits[w] = c0[w] ^ (x02 ? (*x02)[w] : 0);
  }
  corr_ot(
      n, out,
      [&](Vec& to0, Vec& to2, const Vec& sigma2, const Vec& rho2) {
        for (size_t i = 0; i < n; ++i) {
          const u64 g = (c.a[i >> 6] ^ c.b[i >> 6] ^ (x1 ? (*x1)[i >> 6] : 0)) >> (i & 63) & 1;
          const u64 gs = (0 - g) & s.at(i);
          to0[i] = gs + sigma2[i];
          to2[i] = gs + rho2[i];
        }
      },
      [&](Vec& h, const Vec& mask2, const Vec& mine) {
        for (size_t i = 0; i < n; ++i) h[i] = (bit_at(ebits.data(), i) ? 0 - mask2[i] : mask2[i]) + mine[i];
      },
      [&](Vec& y0, const Vec& h, const Vec& mine) {
        for (size_t i = 0; i < n; ++i)
          y0[i] = (bit_at(ebits.data(), i) ? s.at(i) - y0[i] : y0[i]) - h[i] - mine[i];
      });
  comm_.round();
  return out;
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
  Share res = ot_arith(
      n,
      [&](size_t i, u64& m0, u64& m1) {
        const int di = d.at(i);
        m0 = hi[i] - shl(top[i], 64 - di);
        m1 = hi[i] - shl(1, 64 - di);
      },
      [&](size_t i) -> u64 { return top[i]; });
  Vec* comp0 = r == 0 ? &res.a : r == 2 ? &res.b : nullptr;
  if (comp0)
    for (size_t i = 0; i < n; ++i) (*comp0)[i] += hi[i] - (u64(1) << (62 - d.at(i)));
  res.shape = x.shape;
  if (kmax == 0) {
    comm_.round();
    return res;
  }
  const size_t N = 2 * n, W = words_for(N);
  Vec planes = to_planes(lo, kmax, W);
  if (d.v.size() != 1) pad_propagate(planes, kmax, W, N, kch);
  BShare c = carry(kmax, W, planes);
  Share cb = b2a(c, N, nullptr, nullptr, Pub(1));
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
  Share r = ot_arith(
      n,
      [&](size_t i, u64& m0, u64& m1) {
        const int di = d.at(i);
        const u64 v = x.a[i] + x.b[i], hi = v >> di;
        m0 = hi - shl(v >> 63, 64 - di);
        m1 = hi - shl(1, 64 - di);
      },
      [&](size_t i) -> u64 { return (x0[i] + kOff) >> 63; });
  // Public-to-P0/P2 part goes into component x_0.
  Vec* comp0 = role() == 0 ? &r.a : role() == 2 ? &r.b : nullptr;
  if (comp0)
    for (size_t i = 0; i < n; ++i) {
      const int di = d.at(i);
      (*comp0)[i] += ((x0[i] + kOff) >> di) - (u64(1) << (62 - di));
    }
  // Carry out of the low d bits, computed in the same first round.
  const int dmax = d.max();
  if (dmax == 0) {
    comm_.round();
    r.shape = x.shape;
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
  Share cb = b2a(c, n, nullptr, nullptr, Pub(1));
  Share out = add(r, cb);
  out.shape = x.shape;
  return out;
}

}  // namespace mpc
