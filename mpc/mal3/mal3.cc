#include "mal3.h"

#include <openssl/evp.h>

#include <cstring>

#include "../linalg.h"
#include "../ops.h"
#include "gr.h"

namespace mpc {
namespace {

using gr::D;
constexpr u64 kVerdictOk = 0x6d616c334f4b2121ull;  // what a party sends when its checks held

void sha256(const void* data, size_t n, uint8_t out[32]) {
  unsigned len = 32;
  if (!EVP_Digest(data, n, out, &len, EVP_sha256(), nullptr)) throw Error("mal3: SHA-256 failed");
}

// The commitment to a coin seed: SHA-256(seed || party).
void commitment(const u64 seed[2], int party, uint8_t out[32]) {
  u64 buf[3] = {seed[0], seed[1], static_cast<u64>(party)};
  sha256(buf, sizeof buf, out);
}

Key key_from(Prg& g) {
  u64 w[2];
  g.fill(w, 2);
  Key k;
  std::memcpy(k.data(), w, 16);
  return k;
}

// ------------------------------------------------------------------ compressions
// Every recorded product item is compressed with coins from the common coin to
//   sum(coeff * z) = <Fx(x), Gy(y)>  (+ the other cross term, see verify()),
// rank one (coeff = u_m w_n) for matmul, conv and depthwise, one element of A per output for
// elementwise products. Vectors of GR elements are D words per element.

// [D, M] 0/1 matrix of the bits of e.
Vec bit_rows(const u64* e, size_t M) {
  Vec out(D * M);
  for (int j = 0; j < D; ++j)
    for (size_t m = 0; m < M; ++m) out[j * M + m] = (e[m] >> j) & 1;
  return out;
}

// [M, D] 0/1 matrix of the bits of e.
Vec bit_cols(const u64* e, size_t M) {
  Vec out(M * D);
  for (size_t m = 0; m < M; ++m)
    for (int j = 0; j < D; ++j) out[m * D + j] = (e[m] >> j) & 1;
  return out;
}

void transpose_into(const Vec& t, size_t K, u64* out) {  // [D, K] -> [K, D]
  for (int j = 0; j < D; ++j)
    for (size_t k = 0; k < K; ++k) out[k * D + j] = t[j * K + k];
}

struct Item {
  Product::Kind kind;
  ConvGeom g;
  size_t M = 0, K = 0, N = 0;  // rank one: Z [M, N], claim length K; elementwise: n = M = K
  Vec u, w;                    // coins

  Item(const Product& p, Prg& coin) : kind(p.kind), g(p.geom) {
    switch (kind) {
      case Product::kElementwise:
        M = K = p.x->size();
        N = 1;
        break;
      case Product::kMatmul:
        M = p.x->shape[0];
        K = p.x->shape[1];
        N = p.y->shape[1];
        break;
      case Product::kConv2d:
        M = g.n * g.oh * g.ow;
        K = g.kh * g.kw * g.c;
        N = g.oc;
        break;
      case Product::kDepthwise:
        M = g.n * g.oh * g.ow;
        K = g.kh * g.kw * g.oc;
        N = g.oc;
        break;
    }
    u = coin.next(M);
    for (auto& e : u) e &= gr::kAMask;
    if (kind != Product::kElementwise) {
      w = coin.next(N);
      for (auto& e : w) e &= gr::kAMask;
    }
  }

  // Fx: the compression of a left operand (K elements).
  void fx(const Vec& x, u64* out) const {
    if (kind == Product::kElementwise) {
      for (size_t k = 0; k < K; ++k)
        for (int j = 0; j < D; ++j) out[k * D + j] = ((u[k] >> j) & 1) ? x[k] : 0;
      return;
    }
    const size_t cols_k = kind == Product::kMatmul ? K : static_cast<size_t>(g.kh * g.kw * g.c);
    Vec cols;
    const u64* X = x.data();
    if (kind != Product::kMatmul) {
      cols.resize(M * cols_k);
      im2col(x.data(), g, cols.data());
      X = cols.data();
    }
    Vec U = bit_rows(u.data(), M), t(D * cols_k);
    gemm_u64(D, cols_k, M, U.data(), M, X, cols_k, t.data(), cols_k, false);
    if (kind != Product::kDepthwise) {
      transpose_into(t, K, out);
      return;
    }
    const size_t KK = g.kh * g.kw, C = g.c, OC = g.oc, dm = g.depth_multiplier;
    for (size_t q = 0; q < KK; ++q)
      for (size_t oc = 0; oc < OC; ++oc)
        for (int j = 0; j < D; ++j) out[(q * OC + oc) * D + j] = t[j * cols_k + q * C + oc / dm];
  }
  // Gx: the compression of a left operand against a right one's Fy (the other cross term).
  void gx(const Vec& x, const u64* fx_of_x, u64* out) const {
    if (kind == Product::kElementwise) return embed(x, out);
    std::memcpy(out, fx_of_x, K * D * sizeof(u64));
  }
  // Fy: the compression of a right operand (K elements).
  void fy(const Vec& y, u64* out) const {
    switch (kind) {
      case Product::kElementwise:
        return fx(y, out);
      case Product::kMatmul: {  // Y [K, N] x W [N, D]
        Vec W = bit_cols(w.data(), N);
        gemm_u64(K, D, N, y.data(), N, W.data(), D, out, D, false);
        return;
      }
      case Product::kConv2d: {  // filters [N, K]: W^T [D, N] x Y [N, K]
        Vec W = bit_rows(w.data(), N), t(D * K);
        gemm_u64(D, K, N, W.data(), N, y.data(), K, t.data(), K, false);
        transpose_into(t, K, out);
        return;
      }
      case Product::kDepthwise:  // filters [KK, OC]: v_oc * w[q, oc]
        for (size_t k = 0; k < K; ++k)
          for (int j = 0; j < D; ++j) out[k * D + j] = ((w[k % N] >> j) & 1) ? y[k] : 0;
        return;
    }
  }
  void gy(const Vec& y, const u64* fy_of_y, u64* out) const {
    if (kind == Product::kElementwise) return embed(y, out);
    std::memcpy(out, fy_of_y, K * D * sizeof(u64));
  }
  static void embed(const Vec& v, u64* out) {
    for (size_t k = 0; k < v.size(); ++k) {
      out[k * D] = v[k];
      std::memset(out + k * D + 1, 0, (D - 1) * sizeof(u64));
    }
  }
  // sum(coeff * z) for outputs z (M * N words), added to acc (unreduced, kWide words).
  void zc(const u64* z, u64* acc) const {
    if (kind == Product::kElementwise) {
      for (size_t k = 0; k < M; ++k) {
        u64 e = u[k];
        while (e) {
          const int j = __builtin_ctzll(e);
          e &= e - 1;
          acc[j] += z[k];
        }
      }
      return;
    }
    Vec W = bit_cols(w.data(), N), t(M * D);
    gemm_u64(M, D, N, z, N, W.data(), D, t.data(), D, false);
    for (size_t m = 0; m < M; ++m) gr::mac_a(acc, u[m], t.data() + m * D);
  }
};

// The claim polynomial's share at r: p(r) = p0 + p1 r + p2 r^2 with p1 = c - 2 p0 - p2
// (the prover's claim is p(0) + p(1) = c, so the verifiers derive p1 and need not check it).
void eval_share(u64* c, const u64* p0, const u64* p2, u64 rbits) {
  u64 p1[D], r[D] = {}, t[D], acc[gr::kWide];
  for (int j = 0; j < D; ++j) p1[j] = c[j] - 2 * p0[j] - p2[j];
  for (int j = 0; j < D; ++j) r[j] = (rbits >> j) & 1;
  // Horner: (p2 r + p1) r + p0
  gr::mul(p2, r, t);
  gr::add(t, p1);
  std::memset(acc, 0, sizeof acc);
  gr::mac(acc, t, r);
  gr::reduce(acc, c);
  gr::add(c, p0);
}

// v[0..h) = v[0..h) + r (v[h..2h) - v[0..h)) for r in A.
MPC_CLONES void fold_a(Vec& v, size_t h, u64 rbits) {
  u64 d[D], acc[gr::kWide];
  for (size_t k = 0; k < h; ++k) {
    u64* lo = v.data() + k * D;
    const u64* hi = v.data() + (k + h) * D;
    for (int j = 0; j < D; ++j) d[j] = hi[j] - lo[j];
    std::memset(acc, 0, sizeof acc);
    gr::mac_a(acc, rbits, d);
    u64 t[D];
    gr::reduce(acc, t);
    gr::add(lo, t);
  }
  v.resize(h * D);
}

u64 challenge(Prg& g) {  // uniform in A \ {0, 1}: the mask's weight prod(1 - r) stays a unit
  u64 r = 0;
  while (r <= 1) {
    g.fill(&r, 1);
    r &= gr::kAMask;
  }
  return r;
}

[[noreturn]] void not_yet(const char* what) {
  throw ArgError(std::string("mal3: ") + what +
                 " is not available with active security yet (issue 9: it needs a verified Boolean layer); "
                 "use protocol rep3 for models with non-linear layers");
}

}  // namespace

// ------------------------------------------------------------------ setup
Mal3::Mal3(Comm& comm) : Rep3(comm) {
  MsgKind kind(comm_, "setup");
  OpScope s(stats(), "setup");
  u64 msg[4];
  commit_next_seed(msg);
  comm_.send(next_, msg, 4);
  comm_.send(prev_, msg, 4);
  for (int from : {next_, prev_}) {
    comm_.recv(from, msg, 4);
    std::memcpy(peer_commit_[from], msg, 32);
  }
  comm_.round();
}

void Mal3::commit_next_seed(u64 out[4]) {
  os_random_bytes(seed_, sizeof seed_);
  uint8_t c[32];
  commitment(seed_, me_, c);
  std::memcpy(out, c, 32);
}

// ------------------------------------------------------------------ opening
Vec Mal3::reveal(const Share& x, int to) {
  if (to < -1 || to > 2) throw ArgError("reveal target must be -1 (all), 0, 1 or 2");
  verify();  // nothing is opened before every product so far is proven
  MsgKind kind(comm_, "reveal");
  OpScope s(stats(), "reveal");
  const size_t n = x.size();
  // Party i lacks x_{i+2}: its next party holds it as b, its previous party as a.
  if (to == -1 || to == prev_) comm_.send(prev_, x.b);
  if (to == -1 || to == next_) comm_.send(next_, x.a);
  comm_.round();
  if (to != -1 && to != me_) return {};
  Vec out = comm_.recv(next_, n), other = comm_.recv(prev_, n);
  if (out != other)
    throw CheatingDetected("reveal: the two parties holding a share component sent different values");
  for (size_t i = 0; i < n; ++i) out[i] += x.a[i] + x.b[i];
  return out;
}

// ------------------------------------------------------------------ products
std::vector<Share> Mal3::products(const std::vector<Product>& list) {
  Record r;
  r.blk_next = prg_next_.blocks_used();
  r.blk_prev = prg_prev_.blocks_used();
  std::vector<Share> out = Rep3::products(list);
  r.xs.reserve(list.size());
  r.ys.reserve(list.size());
  for (size_t t = 0; t < list.size(); ++t) {
    r.xs.push_back(*list[t].x);
    r.ys.push_back(*list[t].y);
    Product p = list[t];
    p.x = &r.xs.back();
    p.y = &r.ys.back();
    r.items.push_back(p);
    r.offset.push_back(r.total);
    r.size.push_back(out[t].size());
    r.total += out[t].size();
  }
  r.mine.reserve(r.total);
  r.got.reserve(r.total);
  for (auto& o : out) {
    r.mine.insert(r.mine.end(), o.a.begin(), o.a.end());
    r.got.insert(r.got.end(), o.b.begin(), o.b.end());
  }
  if (r.total) pending_.push_back(std::move(r));
  return out;
}

// ------------------------------------------------------------------ verification
void Mal3::verify() {
  if (pending_.empty()) return;
  OpScope scope(stats(), "verify");
  std::vector<Record> recs = std::move(pending_);
  pending_.clear();
  std::string failed;  // the first check that failed here

  // 1. Common coin: open the committed seeds, commit to the next ones.
  u64 coin_key[2] = {seed_[0], seed_[1]};
  {
    MsgKind kind(comm_, "coin");
    u64 msg[6] = {seed_[0], seed_[1]};
    commit_next_seed(msg + 2);
    comm_.send(next_, msg, 6);
    comm_.send(prev_, msg, 6);
    comm_.round();
    for (int from : {next_, prev_}) {
      u64 in[6];
      comm_.recv(from, in, 6);
      uint8_t c[32];
      commitment(in, from, c);
      if (std::memcmp(c, peer_commit_[from], 32) != 0 && failed.empty())
        failed = "coin: party " + std::to_string(from) + " opened a seed it had not committed to";
      std::memcpy(peer_commit_[from], in + 2, 32);
      coin_key[0] ^= in[0];
      coin_key[1] ^= in[1];
    }
  }
  Key ck;
  std::memcpy(ck.data(), coin_key, 16);
  Prg coin(ck);

  // Pairwise streams of this verification (each key is held by exactly two parties, who draw
  // from it in the same order). For prover P with previous party L and next party R:
  // PL (P and L: L's shares of the proof, the mask a), PR (P and R: the mask b) and LR (L and
  // R: the challenges, unknown to P).
  Key kn[3], kp[3];
  for (auto& k : kn) k = key_from(prg_next_);
  for (auto& k : kp) k = key_from(prg_prev_);
  Prg pl_as_p(kp[0]), pl_as_l(kn[0]), pr_as_p(kn[1]), pr_as_r(kp[1]), lr_as_r(kn[2]), lr_as_l(kp[2]);
  for (Prg* g : {&pl_as_p, &pl_as_l, &pr_as_p, &pr_as_r, &lr_as_r, &lr_as_l}) g->set_owner(me_);

  // 2. Statements. This party is the prover of its own messages (vectors pa at L, pb at R),
  // L of its next party's (la: its b components; claim share cl) and R of its previous
  // party's (rb: its a components; claim share cr). Element 0 is the mask.
  size_t m = 1;
  std::vector<std::vector<Item>> items(recs.size());
  for (size_t i = 0; i < recs.size(); ++i)
    for (auto& p : recs[i].items) {
      items[i].emplace_back(p, coin);
      m += 2 * items[i].back().K;
    }
  size_t len = m;
  Vec pa(len * D, 0), pb(len * D, 0), la(len * D, 0), rb(len * D, 0);
  u64 cl_acc[gr::kWide] = {}, cr_acc[gr::kWide] = {};
  size_t at = 1;
  for (size_t i = 0; i < recs.size(); ++i) {
    const Record& rec = recs[i];
    Vec r2(rec.total), r1(rec.total);  // the zero shares of next's and of previous' messages
    prg_next_.fill_at(rec.blk_next, r2.data(), rec.total);
    prg_prev_.fill_at(rec.blk_prev, r1.data(), rec.total);
    for (size_t t = 0; t < items[i].size(); ++t) {
      const Item& it = items[i][t];
      const Share &x = rec.xs[t], &y = rec.ys[t];
      const size_t K = it.K, o = rec.offset[t], n = rec.size[t];
      u64* pa1 = pa.data() + at * D;  // Fx(x_me), then Fy(y_me)
      u64* pa2 = pa1 + K * D;
      u64* pb1 = pb.data() + at * D;  // Gy(y_next), then Gx(x_next)
      u64* pb2 = pb1 + K * D;
      u64* la1 = la.data() + at * D;  // L of next: Fx(x_next), Fy(y_next)
      u64* la2 = la1 + K * D;
      u64* rb1 = rb.data() + at * D;  // R of previous: Gy(y_me), Gx(x_me)
      u64* rb2 = rb1 + K * D;
      it.fx(x.a, pa1);
      it.fy(y.a, pa2);
      it.fx(x.b, la1);
      it.fy(y.b, la2);
      it.gy(y.b, la2, pb1);
      it.gx(x.b, la1, pb2);
      it.gy(y.a, pa2, rb1);
      it.gx(x.a, pa1, rb2);
      // c_L = sum(coeff * (z_next + r2)) - <Fx(x_next), Gy(y_next)>, c_R = -sum(coeff * r1)
      Vec zl(n);
      for (size_t k = 0; k < n; ++k) zl[k] = rec.got[o + k] + r2[o + k];
      if (it.kind == Product::kElementwise) {
        for (size_t k = 0; k < n; ++k) zl[k] -= x.b[k] * y.b[k];
        it.zc(zl.data(), cl_acc);
      } else {
        it.zc(zl.data(), cl_acc);
        u64 local[D];
        gr::inner(la1, la2, K, local);
        for (int j = 0; j < D; ++j) cl_acc[j] -= local[j];
      }
      Vec neg(n);
      for (size_t k = 0; k < n; ++k) neg[k] = 0 - r1[o + k];
      it.zc(neg.data(), cr_acc);
      at += 2 * K;
    }
  }
  u64 cl[D], cr[D];
  gr::reduce(cl_acc, cl);
  gr::reduce(cr_acc, cr);
  items.clear();
  recs.clear();

  // Masks: a = alpha (P and L), b = beta (P and R), claim + alpha * beta (L's share s from PL,
  // R's sent with the first proof message).
  Vec alpha = pl_as_p.next(D), beta = pr_as_p.next(D), s_p = pl_as_p.next(D);
  std::memcpy(pa.data(), alpha.data(), D * 8);
  std::memcpy(pb.data(), beta.data(), D * 8);
  {
    Vec a_l = pl_as_l.next(D), s_l = pl_as_l.next(D), b_r = pr_as_r.next(D);
    std::memcpy(la.data(), a_l.data(), D * 8);
    std::memcpy(rb.data(), b_r.data(), D * 8);
    gr::add(cl, s_l.data());
  }
  u64 ab[D];
  gr::mul(alpha.data(), beta.data(), ab);
  gr::sub(ab, s_p.data());  // R's share of alpha * beta

  // 3. Folding: per step the prover sends R its shares of p0 = <a0, b0>, p2 = <a1 - a0, b1 - b0>;
  // R answers with the challenge; everybody folds.
  bool first = true;
  while (len > 1) {
    if (len % 2) {  // an odd length gets a zero element (the same at every party: len is public)
      for (Vec* v : {&pa, &pb, &la, &rb}) v->resize((len + 1) * D, 0);
      ++len;
    }
    const size_t h = len / 2;
    u64 p0[D], p2[D];
    {
      MsgKind kind(comm_, "proof");
      gr::inner(pa.data(), pb.data(), h, p0);
      gr::inner_diff(pa.data(), pa.data() + h * D, pb.data(), pb.data() + h * D, h, p2);
      Vec l0 = pl_as_p.next(D), l2 = pl_as_p.next(D);
      Vec msg;
      msg.reserve(3 * D);
      if (first) msg.insert(msg.end(), ab, ab + D);
      for (int j = 0; j < D; ++j) msg.push_back(p0[j] - l0[j]);
      for (int j = 0; j < D; ++j) msg.push_back(p2[j] - l2[j]);
      comm_.send(next_, std::move(msg));
      comm_.round();
    }
    Vec lp0 = pl_as_l.next(D), lp2 = pl_as_l.next(D);
    Vec rmsg = comm_.recv(prev_, (first ? 3 : 2) * D);
    const u64* rp = rmsg.data();
    if (first) {
      gr::add(cr, rp);
      rp += D;
    }
    u64 rbits;
    {
      MsgKind kind(comm_, "challenge");
      const u64 r_for_prev = challenge(lr_as_r);
      comm_.send(prev_, &r_for_prev, 1);
      comm_.round();
      comm_.recv(next_, &rbits, 1);
      rbits &= gr::kAMask;  // a peer's bits beyond A would only make the check fail, never index out of range
      const u64 r_for_next = challenge(lr_as_l);
      eval_share(cl, lp0.data(), lp2.data(), r_for_next);
      fold_a(la, h, r_for_next);
      eval_share(cr, rp, rp + D, r_for_prev);
      fold_a(rb, h, r_for_prev);
    }
    fold_a(pa, h, rbits);
    fold_a(pb, h, rbits);
    len = h;
    first = false;
  }

  // 4. L and R open the last a, b and their claim shares to each other and check a * b.
  {
    MsgKind kind(comm_, "open");
    Vec to_prev(2 * D), to_next(2 * D);  // as L of next: (a, c_L) to R = prev; as R: (b, c_R) to next
    std::memcpy(to_prev.data(), la.data(), D * 8);
    std::memcpy(to_prev.data() + D, cl, D * 8);
    std::memcpy(to_next.data(), rb.data(), D * 8);
    std::memcpy(to_next.data() + D, cr, D * 8);
    comm_.send(prev_, to_prev);
    comm_.send(next_, to_next);
    comm_.round();
    Vec from_prev = comm_.recv(prev_, 2 * D), from_next = comm_.recv(next_, 2 * D);
    auto check = [&](const u64* a, const u64* b, const u64* c1, const u64* c2, int prover) {
      u64 prod[D], sum[D];
      gr::mul(a, b, prod);
      std::memcpy(sum, c1, D * 8);
      gr::add(sum, c2);
      if (!gr::equal(prod, sum) && failed.empty())
        failed = "products: the proof for party " + std::to_string(prover) + "'s resharing messages failed";
    };
    check(la.data(), from_prev.data(), cl, from_prev.data() + D, next_);  // next's proof (I am L)
    check(from_next.data(), rb.data(), from_next.data() + D, cr, prev_);  // previous' proof (I am R)
  }

  // 5. Verdicts: every party tells both others whether its checks held.
  {
    MsgKind kind(comm_, "verdict");
    const u64 mine = failed.empty() ? kVerdictOk : 0;
    comm_.send(next_, &mine, 1);
    comm_.send(prev_, &mine, 1);
    comm_.round();
    for (int from : {next_, prev_}) {
      u64 v = 0;
      comm_.recv(from, &v, 1);
      if (v != kVerdictOk && failed.empty()) failed = "party " + std::to_string(from) + " reported a failed check";
    }
  }
  if (!failed.empty()) throw CheatingDetected("mal3 verification: " + failed);
}

// ------------------------------------------------------------------ not yet
Share Mal3::trunc_pr(const Share&, const Shifts&) { not_yet("probabilistic truncation"); }
Share Mal3::trunc(const Share&, const Shifts&) { not_yet("exact truncation"); }
Share Mal3::msb(const Share&, int) { not_yet("comparison (msb)"); }
std::vector<Share> Mal3::bits(const Share&, int) { not_yet("bit decomposition"); }
Share Mal3::requant(const Share&, const RequantSpec&) { not_yet("requantization"); }

}  // namespace mpc
