// mal3: three parties, honest majority, security with abort against one actively corrupted
// party. Shares, products and their traffic are rep3's (replicated sharing over Z_2^64, one
// resharing word per product output); every message that carries a product is checked, for
// a whole batch at once, by a distributed zero-knowledge proof in the style of Boyle, Gilboa,
// Ishai and Nof ("Practical fully secure three-party computation via sublinear distributed
// zero-knowledge proofs", CCS 2019; over rings: "Efficient fully secure computation via
// distributed zero-knowledge proofs", ASIACRYPT 2020), lifted to the Galois ring GR(2^64, 48)
// (gr.h) so that an error in any bit of Z_2^64 is caught.
//
// Party i's resharing message z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + r1 - r2 is a
// function of what its previous party L (x_i, y_i, r2) and its next party R (x_{i+1},
// y_{i+1}, r1) hold between them. verify():
//  1. a common coin (seeds committed one verification ahead, opened now: nobody can bias it)
//     compresses every recorded product to one inner-product claim per prover and proof:
//     rank-one u^T Z w for matmul, conv and depthwise (Freivalds: a matmul [M,K]x[K,N] becomes
//     an inner product of length 2K), and for elementwise products (bit injections, selections:
//     most of the terms) the coefficient alpha_g beta_s of output 16g + s (alpha, beta in A),
//     proven separately. The claims add up to <a, b> = c_L + c_R with a at L, b at R (the
//     prover knows all);
//  2. the prover proves it by folding (L's shares of the proof come from the PRG it shares
//     with the prover, R's are sent; R sends a challenge drawn from the key L and R share).
//     The elementwise proof's first step is 16-ary on words (mal3.cc, EwFirst: the prover
//     sends 30 coefficients of a degree-30 polynomial, computed from word products, and the
//     vectors shrink 16-fold before any product of ring elements); then, as in the rank-one
//     proof, each step halves the length. Two random mask elements (inner product zero, so
//     the claim holds nothing the prover chose) make what L and R finally open reveal
//     nothing; L and R check the last product and every party says whether its checks held.
// Soundness: a false claim survives the compression with probability <= 2 / 2^48 (a degree-2
// polynomial in the coins), the 16-ary step with <= 30 / (2^48 - 2) and each halving step with
// <= 2 / (2^48 - 2); with fewer than 2^40 elements that is below 2^-41 per
// prover and verification (statistical security parameter 41). A deviating prover is caught by
// both honest parties (they are its L and R), before anything is revealed: reveal() verifies
// first, and every party receives the missing component of an opened value from both parties
// that hold it and compares them. The abort may be selective: a deviating party can make one
// honest party raise CheatingDetected (a bad verdict or opening sent to it alone) while the
// other finishes; no honest party ever accepts a wrong value.
//
// Non-linear steps (truncation, comparison, bit decomposition, the fused requantization) are
// Boolean circuits on the parties' own components (no three-party OT: that is not actively
// secure, its selective failure leaks a choice bit); their ANDs are rep3's one-round ANDs,
// proven in GF(2^64) at the same verify() (two 8-ary first steps, bits of a byte, then bytes
// of a word, 14 / (2^64 - 2) each, then halving steps, 2 / (2^64 - 2) each); bits return to arithmetic sharings through two products
// whose operands are publicly zero in all but one component (one cross term per bit and
// prover in the proof), proven with the others. The requantization compares the narrow
// accumulator with public thresholds (the clamp, the tie correction) and truncates only the
// low d + span bits of the in-range value (the carries out of its low d and all d + span bits
// from one carry-save layer and one tree, carry3_pair). Shared inputs are range-checked
// (check_ranges: y mod 2^bits from the carries out of y's low bits; y - that opens to zero at
// the next verify(), after the proofs). Probabilistic truncation rounds to nearest
// (deterministic, within its contract; requantization likewise).
#pragma once
#include "../rep3/rep3.h"

namespace mpc {

class Mal3 : public Rep3 {
 public:
  explicit Mal3(Comm& comm);  // rep3's setup round, plus one round of coin commitments
  using BShare = Rep3::BShare;
  const char* name() const override { return "mal3"; }

  Vec reveal(const Share& x, int to) override;
  std::vector<Share> products(const std::vector<Product>& list) override;
  Share trunc_pr(const Share& x, const Shifts& d) override;
  Share trunc(const Share& x, const Shifts& d) override;
  Share msb(const Share& x, int bits) override;
  std::vector<Share> bits(const Share& x, int k) override;
  Share requant(const Share& acc, const RequantSpec& s) override;
  // y = x - lo, z = y - (y mod 2^bits) (the carries out of the low bits bits, as in trunc_low):
  // zero exactly when x is in range; every verify() opens the pending z after the proofs.
  void check_ranges(const std::vector<RangeCheck>& list) override;
  void verify() override;

 private:
  // One products() call: this party's operand components, its two output components (its own
  // message and the one it received) and where the resharing's zero shares were drawn.
  struct Record {
    std::vector<Product> items;  // x, y point into the copies below
    std::vector<Share> xs, ys;
    std::vector<size_t> offset, size;  // of each item's outputs in the resharing
    Vec mine, got;                     // z_me (sent to prev), z_next (received)
    u64 blk_next = 0, blk_prev = 0;    // PRG blocks of the zero shares
    size_t total = 0;
    // Bit j set: component j of every x (zx) or y (zy) of the call is publicly zero (elementwise
    // items only; from how the operands were built). A cross term with a zero factor is left out
    // of the proof: the verifier holding that factor holds zero, so it contributes nothing.
    uint8_t zx = 0, zy = 0;
  };
  std::vector<Record> pending_;
  // One AND (bool_and): this party's operand components, the component it received, and where
  // the zero shares were drawn.
  struct AndRecord {
    Vec xa, xb, ya, yb, got;
    u64 blk_next = 0, blk_prev = 0;
  };
  std::vector<AndRecord> ands_;
  std::vector<Share> zeros_;  // check_ranges: values that must open to zero
  void prove();               // verify()'s proofs of the pending products and ANDs
  // verify() also runs before the pending statement would grow past these (about 0.2 kB per
  // AND word: its records, the first steps' words, one field element in each of four vectors;
  // about 0.2 kB per cross term of an elementwise product: its records, its words, 1/16 of a
  // ring element in each of four vectors), and larger elementwise product calls run in chunks:
  // the proofs' memory stays bounded (about 0.4 GB per party; one larger AND layer adds its
  // own), at the cost of a proof's rounds per that much work.
  static constexpr size_t kMaxPendingAndWords = size_t{1} << 20;  // 2^26 ANDs
  static constexpr size_t kMaxPendingTerms = size_t{1} << 20;
  size_t pending_and_words_ = 0, pending_terms_ = 0;
  std::vector<Share> products_with(const std::vector<Product>& list, uint8_t zx, uint8_t zy);
  BShare band(const BShare& x, const BShare& y);  // bool_and + its round, recorded
  BShare comp_bits(const Share& x, int k, int j) const;  // component j's low k bits, shared
  // x0 + x1 + x2 over k bits: carry-save carries cy, propagates p0 = sum ^ (cy << 1), and the
  // prefix carries g (g_i: carry out of bits 0..i of sum + (cy << 1)).
  struct Sum {
    BShare cy, p0, g;
  };
  Sum add3(const Share& x, int k);
  // Per element e, the number of carries (0, 1 or 2) out of the low w[e] bits of x0 + x1 + x2,
  // as two Boolean bits cy + g: carry-save, then a tree over the (generate, propagate) pairs
  // that yields only the top carry (about 4 w ANDs, 2 + ceil(log2 w) rounds).
  struct Carry {
    BShare cy, g;
  };
  Carry carry3(const Share& x, const std::vector<int>& w);
  // The carry-save layer of x0 + x1 + x2 = sum + 2 cy on the low w[e] bits of every element,
  // aligned to the top of k planes, and (G, P) per plane of sum + (cy << 1) (G_0 = 0).
  struct CarrySave {
    BShare cy, g, p;
  };
  CarrySave carry_save(const Share& x, const std::vector<int>& w, int k);
  // The carry counts out of the low w[e] - r bits and out of all w[e] bits of x0 + x1 + x2
  // (r the same for every element, 1 <= r < w[e]) from one carry-save layer: both boundaries
  // are common planes once the w bits are aligned to the top, so the tree's plane ranges below
  // and above the low boundary reduce side by side (mal3.cc). About 4 max(w) ANDs, the rounds of
  // one tree over max(w) planes when the parts above the largest power of two below the low
  // boundary fit half of it (requantization), one more otherwise.
  struct Carry2 {
    Carry low, all;
  };
  Carry2 carry3_pair(const Share& x, const std::vector<int>& w, int r);
  // sum_j floor((y_j mod 2^B) / 2^d) + carries: floor(y / 2^d) whenever y lies in [0, 2^B).
  Share trunc_low(const Share& y, const std::vector<int>& d, const std::vector<int>& B);
  Share bit_to_arith(const BShare& c, size_t n);  // every plane, plane-major: planes * n values
  u64 seed_[2] = {0, 0};  // this party's next coin seed, committed to the others
  uint8_t peer_commit_[3][32] = {};
  void commit_next_seed(u64 out[4]);
};

// Test hook (tests/test_mal3.py): the AND proof's kernels built with PCLMULQDQ and with AVX-512
// VPCLMULQDQ (where the CPU has them) agree with the portable ones.
bool gf_kernels_agree(u64 seed, size_t n);

}  // namespace mpc
