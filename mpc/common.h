// Core types shared by the whole engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mpc {

using u64 = uint64_t;
using i64 = int64_t;
using Shape = std::vector<int64_t>;

// Every error the engine raises on bad input or a failed peer. The Python
// binding maps it to ValueError (bad argument) or RuntimeError (protocol).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ArgError : Error {
  using Error::Error;
};
// An actively secure protocol's check failed: a party deviated (or a message was altered on
// the way). The session is over; nothing derived from the altered data was revealed.
struct CheatingDetected : Error {
  using Error::Error;
};

inline size_t shape_size(const Shape& s) {
  size_t n = 1;
  for (auto d : s) {
    if (d < 0) throw ArgError("negative dimension in shape");
    n *= static_cast<size_t>(d);
  }
  return n;
}

std::string shape_str(const Shape& s);

// Untrusted text (from a peer or an input file) made safe for an error message
// or a log line: printable ASCII ('?' for anything else), at most `max` characters.
std::string printable(const std::string& s, size_t max = 80);

// Public constants broadcast over a tensor: size 1 (scalar), size n (one per
// element) or size c dividing n (per channel, channel = innermost axis, NHWC).
struct Pub {
  std::vector<u64> v;
  Pub() = default;
  Pub(u64 x) : v{x} {}  // NOLINT: implicit from scalar on purpose
  Pub(std::vector<u64> x) : v(std::move(x)) {}
  u64 at(size_t i) const { return v.size() == 1 ? v[0] : v[i % v.size()]; }
  void check(size_t n, const char* what) const;
};

// Per-element shift amounts, same broadcasting as Pub.
struct Shifts {
  std::vector<int> v;
  Shifts() = default;
  Shifts(int d) : v{d} {}  // NOLINT
  Shifts(std::vector<int> x) : v(std::move(x)) {}
  int at(size_t i) const { return v.size() == 1 ? v[0] : v[i % v.size()]; }
  int max() const;
  void check(size_t n, int lo, int hi, const char* what) const;
};

inline u64 mask_bits(int k) { return k >= 64 ? ~u64(0) : ((u64(1) << k) - 1); }
inline size_t words_for(size_t nbits) { return (nbits + 63) / 64; }

}  // namespace mpc
