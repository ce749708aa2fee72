// AVERAGE_POOL_2D and MAX_POOL_2D (int8), mirroring reference_integer_ops:
//   average: acc = sum of in-bounds inputs, n = in-bounds count,
//            out = clamp(acc > 0 ? (acc + n/2)/n : (acc - n/2)/n)   (C division)
//   max:     out = clamp(max over in-bounds inputs)
// uint8 (reference_ops::AveragePool / MaxPool on uint8): the same, with acc >= 0 (no sign test)
// and the activation range of the uint8 output.
#include <cmath>

#include "kernels/kernel.h"

namespace tflite_mpc {
namespace {

struct PoolGeom {
  int64_t n, h, w, c, oh, ow, fh, fw, sh, sw, pt, pl;
  // in-bounds input offsets (NHWC element index / c) of output position o
  template <class F>
  void taps(int64_t b, int64_t oy, int64_t ox, F&& f) const {
    for (int64_t ky = 0; ky < fh; ++ky) {
      const int64_t iy = oy * sh - pt + ky;
      if (iy < 0 || iy >= h) continue;
      for (int64_t kx = 0; kx < fw; ++kx) {
        const int64_t ix = ox * sw - pl + kx;
        if (ix < 0 || ix >= w) continue;
        f(ky * fw + kx, (b * h + iy) * w + ix);
      }
    }
  }
};

PoolGeom pool_geom(const char* op, const PoolParams& p, const TensorInfo& in, const TensorInfo& out) {
  require_q8(in, "input");
  require_q8(out, "output");
  require(in.type == out.type, std::string(op) + ": input and output types differ");
  require(in.shape.size() == 4 && out.shape.size() == 4, std::string(op) + ": tensors must be 4-D");
  require(in.scale() == out.scale() && in.zero_point() == out.zero_point(),
          std::string(op) + ": input and output quantization must match");
  // A window larger than the input (filter width 2^20 or 2^31-1, found by fuzzing): TFLite's
  // reference AVERAGE_POOL_2D fails on it, and the window loops here would not end in time.
  // With SAME padding a window somewhat larger than the input is ordinary (InceptionV3's 3x3
  // average pools on a 1x1 map at its smallest input size): TFLite clips it to the input.
  const auto too_wide = [&](int64_t f, int64_t n) { return p.same ? f > 2 * n + 8 : f > n; };
  require(!too_wide(p.filter_h, in.shape[1]) && !too_wide(p.filter_w, in.shape[2]),
          std::string(op) + ": the filter is larger than the input");
  mpc::ConvGeom g = mpc::ConvGeom::make(in.shape[0], in.shape[1], in.shape[2], in.shape[3], p.filter_h, p.filter_w,
                                        in.shape[3], p.stride_h, p.stride_w, 1, 1, p.same);
  require(out.shape == Shape({g.n, g.oh, g.ow, g.c}), std::string(op) + ": output shape does not match the geometry");
  return {g.n, g.h, g.w, g.c, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left};
}

class AveragePool : public Kernel {
 public:
  PoolGeom g{};
  int32_t lo = -128, hi = 127, tmin = -128, tmax = 127;  // activation range, the type's range
  bool non_negative = false;   // uint8: the sum is never negative
  std::vector<int64_t> count;  // per output position
  std::vector<uint64_t> magic;
  std::vector<int> sbits;
  int acc_bits = 32;
  const char* name() const override { return "AVERAGE_POOL_2D"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t C = g.c, npos = g.n * g.oh * g.ow;
    Shape os{g.n, g.oh, g.ow, C};
    Share acc = p.linear(env.get(in()), os, [&](const mpc::u64* x, mpc::u64* y) {
      for (int64_t b = 0, o = 0; b < g.n; ++b)
        for (int64_t oy = 0; oy < g.oh; ++oy)
          for (int64_t ox = 0; ox < g.ow; ++ox, ++o) {
            mpc::u64* d = y + o * C;
            std::fill(d, d + C, 0);
            g.taps(b, oy, ox, [&](int64_t, int64_t pos) {
              const mpc::u64* s = x + pos * C;
              for (int64_t c = 0; c < C; ++c) d[c] += s[c];
            });
          }
    });
    // Rounding division by the public count n (half away from zero, as C's
    // (acc +- n/2)/n): q = floor((acc + h + [acc<0](n-1-2h)) / n), h = n/2.
    // floor(t/n) = floor((t + B n) * M / 2^S) - B, with t + B n in [0, 2^N) (|acc| <= 128 n,
    // B = 129) and M = ceil(2^S / n), S = N + ceil(log2 n): exact (Granlund-Montgomery).
    // uint8: 0 <= acc <= 255 n, B = 0 and no sign test.
    const int64_t B = non_negative ? 0 : 129;
    const size_t total = acc.size();
    std::vector<uint64_t> k(total), off(total), M(total);
    std::vector<int> S(total);
    for (int64_t o = 0; o < npos; ++o)
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = o * C + c;
        const int64_t n = count[o], h = n / 2;
        k[i] = static_cast<uint64_t>(n - 1 - 2 * h);
        off[i] = static_cast<uint64_t>(h + B * n);
        M[i] = magic[o];
        S[i] = sbits[o];
      }
    Share t = non_negative ? p.add_public(acc, Pub(off))
                           : p.add_public(p.add(acc, p.mul_public(p.msb(acc, acc_bits), Pub(k))), Pub(off));
    Share prod = p.mul_public(t, Pub(M));
    // exact in both modes (the floor costs less than a stochastic rounding would)
    Share q = p.trunc(prod, Shifts(S));
    if (B) q = p.add_public(q, Pub(static_cast<uint64_t>(-B)));
    if (lo > tmin || hi < tmax) q = mpc::clamp(p, q, Pub(static_cast<uint64_t>(int64_t(lo))),
                                               Pub(static_cast<uint64_t>(int64_t(hi))), 10);
    env.set(out(), std::move(q));
  }
};

class MaxPool : public Kernel {
 public:
  PoolGeom g{};
  int32_t lo = -128, hi = 127, tmin = -128, tmax = 127;
  const char* name() const override { return "MAX_POOL_2D"; }

  void eval(Env& env) const override {
    auto& p = env.p;
    const int64_t C = g.c, T = g.fh * g.fw;
    Shape os{g.n, g.oh, g.ow, C};
    // One gathered tensor per filter tap; out-of-bounds taps repeat an in-bounds one.
    std::vector<Share> level;
    for (int64_t t = 0; t < T; ++t)
      level.push_back(p.linear(env.get(in()), os, [&](const mpc::u64* x, mpc::u64* y) {
        for (int64_t b = 0, o = 0; b < g.n; ++b)
          for (int64_t oy = 0; oy < g.oh; ++oy)
            for (int64_t ox = 0; ox < g.ow; ++ox, ++o) {
              int64_t chosen = -1, first = -1;
              g.taps(b, oy, ox, [&](int64_t tap, int64_t pos) {
                if (first < 0) first = pos;
                if (tap == t) chosen = pos;
              });
              const mpc::u64* s = x + (chosen >= 0 ? chosen : first) * C;
              std::copy(s, s + C, y + o * C);
            }
      }));
    // Pairwise max tree; all pairs of a level share their rounds.
    while (level.size() > 1) {
      const size_t pairs = level.size() / 2;
      std::vector<const Share*> xs, ys;
      for (size_t i = 0; i < pairs; ++i) {
        xs.push_back(&level[2 * i]);
        ys.push_back(&level[2 * i + 1]);
      }
      Share X = mpc::concat(xs), Y = mpc::concat(ys);
      Share M = mpc::max(p, X, Y, 10);  // 8-bit differences fit 9 signed bits
      std::vector<Shape> shapes(pairs, os);
      std::vector<Share> next = mpc::split(M, shapes);
      if (level.size() & 1) next.push_back(std::move(level.back()));
      level = std::move(next);
    }
    Share r = std::move(level[0]);
    if (lo > tmin || hi < tmax)
      r = mpc::clamp(p, r, Pub(static_cast<uint64_t>(int64_t(lo))), Pub(static_cast<uint64_t>(int64_t(hi))), 10);
    env.set(out(), std::move(r));
  }
};

}  // namespace

std::unique_ptr<Kernel> make_average_pool2d(const PoolParams& p, const TensorInfo& in, const TensorInfo& out) {
  auto k = std::make_unique<AveragePool>();
  k->g = pool_geom("AVERAGE_POOL_2D", p, in, out);
  activation_range(p.act, out, &k->lo, &k->hi);
  k->tmin = qmin(out);
  k->tmax = qmax(out);
  k->non_negative = in.type == DType::kUInt8;
  const PoolGeom& g = k->g;
  int64_t maxn = 1;
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        int64_t n = 0;
        g.taps(b, oy, ox, [&](int64_t, int64_t) { ++n; });
        require(n > 0, "AVERAGE_POOL_2D: a window has no input positions");
        k->count.push_back(n);
        // magic reciprocal, exact for numerators below 2^N, N = 10 + ceil(log2 n)
        const int lg = static_cast<int>(std::ceil(std::log2(static_cast<double>(n))));
        const int S = 10 + 2 * lg;
        k->sbits.push_back(S);
        k->magic.push_back(((uint64_t(1) << S) + n - 1) / n);
        maxn = std::max(maxn, n);
      }
  // |acc| <= 128 n
  k->acc_bits = 9 + static_cast<int>(std::ceil(std::log2(static_cast<double>(maxn)))) + 1;
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

std::unique_ptr<Kernel> make_max_pool2d(const PoolParams& p, const TensorInfo& in, const TensorInfo& out) {
  auto k = std::make_unique<MaxPool>();
  k->g = pool_geom("MAX_POOL_2D", p, in, out);
  activation_range(p.act, out, &k->lo, &k->hi);
  k->tmin = qmin(out);
  k->tmax = qmax(out);
  k->inputs = {in.index};
  k->outputs = {out.index};
  return k;
}

}  // namespace tflite_mpc
