// rep3: semi-honest, honest-majority 3-party replicated secret sharing over
// Z_2^64 (Araki et al. 2016; ABY3). Party i holds the pair (x_i, x_{i+1}) of
// x = x_0 + x_1 + x_2 (Share::a = x_i, Share::b = x_{i+1}).
//
// Non-linear primitives use the 2-of-2 view x = a + b with a = x_s + x_{s+1}
// (known to the sender s alone) and b = x_{s+2} (known to the two others).
// The sender rotates on every such call (the same way at every party), so
// traffic and work even out across the parties without extra rounds. Below,
// roles are relative: role 1 is the sender, role 0 its previous party and
// role 2 its next. A bit known to two parties can be the choice of a
// three-party OT whose output is delivered as a replicated sharing in ONE
// round (sender P1; each of P0/P2 receives with the other as helper); when the
// messages are a bit known to P1 times a public value (bit injection, ANDs of a
// P1 bit with a P0/P2 bit) a correlated variant sends one word per receiver.
// The wrap of a + b is msb(a) OR msb(b) once x is offset into [0, 2^63), so the
// high part of floor(x / 2^d) costs one OT (sent in the bit injection's round); the carry
// out of the low d bits is a bitsliced carry circuit: a radix-4 first layer (one 1-out-of-4
// OT per 2-bit group yields the group's generate and propagate, one round), then one round
// per tree level. Steps that must share a round with other steps (possibly with other
// senders) are split into their sends and their receives (*_send / *_finish): a party does
// all its sends of a round before any receive, so no round hides a second hop.
// requant (TFLite's requantization output stage) fuses truncation, rounding correction and
// clamp into one circuit and runs its tensor as three chunks with different senders.
// Exact truncation computes that carry; probabilistic truncation instead adds a
// secret offset u in [0, 2^d) that no single party knows (split between the
// sender's own randomness and the others' shared stream) and computes the carries
// of the offset sum, so its stochastic rounding is unpredictable to every party.
#pragma once
#include <array>

#include "../prg.h"
#include "../protocol.h"

namespace mpc {

class Rep3 : public Protocol {
 public:
  explicit Rep3(Comm& comm);  // one round: pairwise PRG keys from the OS CSPRNG
  const char* name() const override { return "rep3"; }
  static constexpr int kDefaultRoundBits = 40;
  void set_round_bits(int k);  // benchmarks and tests: 1..62
  // Low bits of acc that requant(acc, s) reads (mpc::requant_reads): acc_bits + 1 for the
  // comparisons and d + rbits + 1 for the truncation; 64 where it falls back to the composition.
  static int requant_reads(const RequantSpec& s);

  Share input(int owner, const Shape& shape, const u64* data) override;
  Vec reveal(const Share& x, int to) override;
  Share add(const Share& x, const Share& y) override;
  Share sub(const Share& x, const Share& y) override;
  Share neg(const Share& x) override;
  Share add_public(const Share& x, const Pub& c) override;
  Share mul_public(const Share& x, const Pub& c) override;
  std::vector<Share> products(const std::vector<Product>& list) override;
  Share trunc_pr(const Share& x, const Shifts& d) override;
  Share trunc(const Share& x, const Shifts& d) override;
  Share msb(const Share& x, int bits) override;
  std::vector<Share> bits(const Share& x, int k) override;
  // Fused requantization (see requant in rep3.cc): rounds independent of the
  // tensor size and of the parameters' ranges.
  Share requant(const Share& acc, const RequantSpec& s) override;

  // Boolean (XOR) replicated sharing of bit planes: plane j, word w at [j*W + w].
  struct BShare {
    size_t planes = 0, W = 0;
    Vec a, b;
  };

 protected:
  int me_, next_, prev_;
  int s_ = 1;  // current sender (role 1)
  int role() const { return (me_ - s_ + 4) % 3; }
  int party_of(int role) const { return (role + s_ + 2) % 3; }
  void rotate_sender() { s_ = (s_ + 1) % 3; }
  Prg prg_next_, prg_prev_;  // keys shared with next / previous party
  Prg prg_own_;              // this party's private randomness (OS CSPRNG key)
  // reshare() and bool_and() send half of their words to each neighbour (false: all to the
  // previous party, whose value then is always this party's component a; mal3's proofs take
  // the sent word as a and the received one as b).
  bool balanced_ = true;
  // trunc_pr rounds the low min(d, round_bits_) bits with a secret offset that no
  // party knows; a party's view shifts a rounding probability by less than
  // 2^-round_bits_ (and not at all when d <= round_bits_, e.g. every requantization
  // of a TFLite model: d = 31 + right shift <= 40 for any multiplier >= 2^-9).
  int round_bits_ = kDefaultRoundBits;

  // bits < 64: the value is needed mod 2^bits only; the messages carry that many bits.
  Share reshare(Vec&& z, const Shape& shape, int bits = 64);
  BShare bool_and(const BShare& x, const BShare& y);  // one round, planes matched
  // OT with sender P1, choice known to P0 and P2; replicated output, one round.
  // msg(i, m0, m1) is evaluated at P1 only, choice(i) -> 0/1 at P0 and P2 only.
  // (split into sends and receives: the receives come after the round's other sends)
  struct OTPending {
    Share out;
    Vec mine;
    std::vector<uint8_t> ch;
    size_t n = 0;
    int role = 0, from = -1, other = -1;
  };
  template <class Msg, class Choice>
  OTPending ot_arith_send(size_t n, Msg&& msg, Choice&& choice);
  Share ot_arith_finish(OTPending& p);
  // A receiver (role 0 or 2) sends its help message to the other receiver; returns
  // (the sender's party, the other receiver's party).
  std::pair<int, int> send_help(int role, Vec&& help);
  // Carry out of A + B over `planes` bit planes (A at P1, B at P0/P2). One
  // round for the first layer, then one per tree level.
  BShare carry(size_t planes, size_t W, const Vec& mine);  // mine: A at P1, B at P0/P2
  // Bit injection of plane 0 of c, XORed with a bit known to P1 (x1) and one
  // known to P0/P2 (x02); scaled by s. One round.
  Share b2a(const BShare& c, size_t n, const Vec* x1, const Vec* x02, const Pub& s);
  // Group generate and propagate of the whole `planes`-plane group (both one plane).
  struct GP {
    BShare g, p;
  };
  GP carry_gp(size_t planes, size_t W, const Vec& mine);
  // Radix-4 first carry layer, split into its sends and its receives (see rep3.cc).
  struct R4Pending {
    GP out;
    Vec mine1, lo, hi;
    size_t n = 0, W = 0;
    std::vector<size_t> pgroups;  // groups whose propagate is computed
    int role = 0, from = -1, other = -1;
  };
  R4Pending radix4_send(size_t planes, size_t W, const Vec& mine, const std::vector<uint8_t>* gonly = nullptr);
  Vec radix4_scatter(const R4Pending& p, const Vec& v) const;
  GP radix4_finish(R4Pending& p);
  void radix4_pick(const R4Pending& p, const Vec& table, Vec& dst) const;
  // Independent carry circuits of several chunks, each with its own OT sender, in one set of
  // rounds; result[k][j]: (G, P) of rectangle j of chunk k. need_p[j] false (one flag per
  // rectangle, the same in every chunk): only G is wanted (its P comes out as a sharing of 0), which
  // spares the propagate AND of the lowest pair at every tree level.
  std::vector<std::vector<GP>> carry_chunks(const std::vector<int>& senders,
                                            const std::vector<std::vector<size_t>>& planes,
                                            const std::vector<size_t>& W, const std::vector<Vec>& mine,
                                            const std::vector<bool>* need_p = nullptr);
  // Carries of several additions in the same rounds. A group is one operand pair (A at the
  // sender, B at the others; `v` is this party's, n elements) with one or more requests,
  // each the carry out of the low w bits (w[i % w.size()] for element i). Requests of one
  // group share the circuit of their common low bits when that saves work without adding
  // depth. Chunk k (its own sender senders[k], ns[k] elements) has the same groups and
  // widths with its own operands. Returns, per chunk, one single-plane BShare of
  // words_for(ns[k]) words per request, in order.
  struct CarryGroup {
    Vec v;
    std::vector<std::vector<int>> widths;
  };
  std::vector<std::vector<BShare>> carries(const std::vector<int>& senders, const std::vector<size_t>& ns,
                                           const std::vector<std::vector<CarryGroup>>& groups);
  // One-round steps split into their sends and their receives, so that several of them,
  // with different senders, share one round (all sends first, then all receives).
  struct B2APending {
    Share out;
    Vec mine, ebits;
    Pub s;
    size_t n = 0;
    int role = 0, from = -1, other = -1;
  };
  B2APending b2a_send(const BShare& c, size_t n, const Vec* x1, const Vec* x02, const Pub& s);
  Share b2a_finish(B2APending& p);
  void pad_propagate(Vec& planes, int nplanes, size_t W, size_t N, const std::vector<int>& width) const;
  // This party's value in the 2-of-2 view (a at the sender, b at the others), masked.
  Vec view_2of2(const Share& x, u64 mask) const;
};

}  // namespace mpc
