// Compositions written once against the primitive interface: comparisons,
// selection, clamping, TFLite rounding and batching helpers.
#pragma once
#include "protocol.h"

namespace mpc {

// Flatten a list of shares into one (shape [total]) and back, so that
// independent elementwise operations run in the same rounds.
Share concat(const std::vector<const Share*>& xs);
std::vector<Share> split(const Share& x, const std::vector<Shape>& shapes);
Shifts expand_shifts(const std::vector<std::pair<size_t, Shifts>>& parts);  // (size, shifts) per part
Pub expand_pub(const std::vector<std::pair<size_t, Pub>>& parts);

Share select(Protocol& p, const Share& bit, const Share& x, const Share& y);  // bit ? x : y
Share relu(Protocol& p, const Share& x, int bits);
Share max(Protocol& p, const Share& x, const Share& y, int bits);
// clamp(x, lo, hi) elementwise with public bounds (x fits `bits` signed bits).
Share clamp(Protocol& p, const Share& x, const Pub& lo, const Pub& hi, int bits);
// gemmlowp RoundingDivideByPOT: round(x / 2^e), ties away from zero; x fits `bits` signed bits.
Share round_div_pot(Protocol& p, const Share& x, const Shifts& e, int bits);
// TFLite MultiplyByQuantizedMultiplier(x, mult, shift), bit-exact (double rounding);
// x must fit int32. mult/shift broadcast per element (per channel).
Share requantize_exact(Protocol& p, const Share& x, const Pub& mult, const Shifts& shift);
// Same quantity rounded to nearest (ties up) in one step, floor((x M 2^ls + 2^(d-1)) / 2^d),
// d = 31 + right shift: within 1 of the exact result (the delegate's probabilistic mode;
// deterministic, one exact truncation). x fits `bits` signed bits; where x M 2^ls + 2^(d-1)
// could leave the truncation's range [-2^62, 2^62), the exact composition instead.
Share requantize_nearest(Protocol& p, const Share& x, const Pub& mult, const Shifts& shift, int bits = 32);

// Exact secure lookup of public 256-entry tables at index x mod 256 (for an int8
// value x that is the entry uint8(x)): bit decomposition of the low 8 bits, two
// 16-way one-hots (low and high nibble), public-linear inner sums over the low
// nibble, one product round with the high one-hot. Returns one share per table,
// shaped like x. Rounds do not depend on the number of tables or elements.
std::vector<Share> lookup256(Protocol& p, const Share& x, const std::vector<std::vector<u64>>& tables);

}  // namespace mpc
