// The primitive interface every protocol implements. Kernels and generic
// compositions (ops.h) are written once against it. Every primitive works on
// whole tensors; its round count never depends on the tensor size, and lists
// of independent products share one round (products()). An actively secure
// protocol adds its proofs' rounds; mal3 proves (and splits very large product
// lists) whenever the pending statement reaches a memory bound, so its count
// grows with the public sizes (mal3.h).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "pool.h"
#include "linalg.h"
#include "transport.h"

namespace mpc {

// One party's share of a secret tensor. Protocols give the two component
// vectors their own meaning (rep3: the replicated pair (x_i, x_{i+1})).
struct Share {
  Shape shape;
  Vec a, b;
  // A component known (publicly, from how the value was shared) to be zero,
  // e.g. the third component of an input sharing. Products skip multiplying
  // by it. Set only by input(); kept by linear maps; cleared otherwise.
  bool a_zero = false, b_zero = false;
  size_t size() const { return a.size(); }
};

// A secret x secret product, described so that a list of them can be
// evaluated with a single communication round.
struct Product {
  enum Kind { kElementwise, kMatmul, kConv2d, kDepthwise } kind = kElementwise;
  const Share* x = nullptr;  // elementwise: same shapes; matmul: [M,K]; conv: NHWC input
  const Share* y = nullptr;  // matmul: [K,N]; conv: [OC,KH,KW,C]; depthwise: [1,KH,KW,OC]
  ConvGeom geom;             // conv / depthwise
  // The product is needed only mod 2^out_bits (what its readers read, e.g. requant_reads()):
  // a protocol may send its resharing in that many bits. 64: the whole ring.
  int out_bits = 64;
};

// TFLite's requantization output stage as one primitive (see Protocol::requant):
//   out = clamp(R(acc * mult + add), lo, hi)   elementwise, parameters broadcast like Pub.
struct RequantSpec {
  Pub mult;          // >= 0, < 2^62 (0: the output is the public clamp(R(add)))
  Pub add;           // signed 64-bit
  Shifts d;          // 1..62
  Pub adj;           // 0 <= adj <= 2^(d-1): tie correction, see below (0: none)
  Pub lo, hi;        // signed, lo <= hi, hi - lo < 2^16
  int acc_bits = 32;  // |acc| < 2^(acc_bits - 1), 2..48
  bool stochastic = false;
  // The output is needed only mod 2^out_bits (every reader reads no more: the delegate's plan
  // sets it from the next layers' requant_reads()): a protocol may send its last messages in
  // that many bits. 64: the whole ring.
  int out_bits = 64;
  void check(size_t n) const;  // every vector broadcasts over n elements; ranges
};

// How many low bits of the accumulator `protocol`'s requant(acc, s) reads (a property of the
// protocol and the public spec: the same at every party). A product whose only reader is that
// requant is needed mod 2^that, and so are the product's inputs. 64 unless the protocol knows
// better (rep3's fused requantization: its comparisons' acc_bits + 1 and its truncation's
// window).
int requant_reads(const std::string& protocol, const RequantSpec& s);

class Protocol {
 public:
  explicit Protocol(Comm& comm) : comm_(comm) {}
  virtual ~Protocol() = default;
  virtual const char* name() const = 0;
  int party() const { return comm_.party(); }
  Comm& comm() { return comm_; }
  Stats& stats() { return comm_.stats(); }

  // Input sharing by `owner` (data only read there); reveal to all (to = -1)
  // or to one party (others get an empty vector).
  virtual Share input(int owner, const Shape& shape, const u64* data) = 0;
  virtual Vec reveal(const Share& x, int to = -1) = 0;

  // Local linear operations.
  virtual Share add(const Share& x, const Share& y) = 0;
  virtual Share sub(const Share& x, const Share& y) = 0;
  virtual Share neg(const Share& x) = 0;
  virtual Share add_public(const Share& x, const Pub& c) = 0;
  virtual Share mul_public(const Share& x, const Pub& c) = 0;
  // Any public linear map (gather, window sum, transpose, broadcast), applied
  // to the share's components: f(in, out) maps one component to one component.
  // Valid for every protocol here, whose shares are linear in the secret.
  virtual Share linear(const Share& x, const Shape& out_shape,
                       const std::function<void(const u64* in, u64* out)>& f);

  // Secret x secret products: local share products plus one resharing round
  // for the whole list, whose traffic equals the total output size.
  virtual std::vector<Share> products(const std::vector<Product>& list) = 0;

  // floor(x / 2^d) or one more, for every |x| < 2^62; d in [0, 62] per element.
  virtual Share trunc_pr(const Share& x, const Shifts& d) = 0;
  // Exactly floor(x / 2^d) for every |x| < 2^62; d in [0, 62] per element.
  virtual Share trunc(const Share& x, const Shifts& d) = 0;
  // Arithmetic sharing of the bit [x < 0] for x known to fit in `bits` signed
  // bits (2 <= bits <= 64); shares are reduced mod 2^bits first.
  virtual Share msb(const Share& x, int bits) = 0;
  // Bit decomposition: arithmetic sharings of bits 0..k-1 of x mod 2^k
  // (1 <= k <= 64), in the same rounds for all bits.
  virtual std::vector<Share> bits(const Share& x, int k) = 0;

  // Fused requantization: v = acc * mult + add, then
  //   floor:       R = floor((v - adj * [v < 2^(d-1)]) / 2^d)   (adj = 0: plain floor)
  //   stochastic:  R = floor((v + u) / 2^d), u uniform in [0, 2^d) and unknown to every party
  // and out = clamp(R, lo, hi). With mult = M * 2^ls, add = 2^30 + 2^(30+rs), d = 31 + rs and
  // adj = 2^31 (rs > 0) this is TFLite's MultiplyByQuantizedMultiplier (double rounding) to
  // the bit. The default composes trunc / trunc_pr / msb / clamp; protocols may fuse it.
  virtual Share requant(const Share& acc, const RequantSpec& s);
  Share requant_composed(const Share& acc, const RequantSpec& s);  // the default, for tests

  // Convenience single products.
  Share mul(const Share& x, const Share& y);
  Share matmul(const Share& x, const Share& y);
  Share conv2d(const Share& x, const Share& w, const ConvGeom& g);
  Share depthwise(const Share& x, const Share& w, const ConvGeom& g);

  // Inputs shared by one party (the data, the weights) must lie in their tensor's type range,
  // x in [lo, lo + 2^bits) elementwise: an actively secure protocol checks it (a deviating owner
  // could otherwise share values no valid input has, and the circuits, which rely on the
  // types' bounds, would compute a function outside the model class); the check ends at the
  // next verify(), which raises CheatingDetected if a value is out of range. Protocols whose
  // parties all follow the protocol (rep3: the owner shares what it read) do nothing.
  struct RangeCheck {
    const Share* x;
    int64_t lo;
    int bits;  // 1..63
  };
  virtual void check_ranges(const std::vector<RangeCheck>&) {}

  // Checks everything sent so far (actively secure protocols; raises CheatingDetected naming
  // the failed check). Protocols call it themselves before they open any value; rep3 has
  // nothing to check.
  virtual void verify() {}

  // Debug mode (insecure, off by default): reveal and check the declared bit
  // width of inputs to msb/trunc; out-of-range values raise ArgError.
  bool debug_checks = false;
  void check_range(const Share& x, int bits, const char* what);

 protected:
  Comm& comm_;
};

std::unique_ptr<Protocol> make_protocol(const std::string& name, Comm& comm);
std::vector<std::string> protocol_names();

}  // namespace mpc
