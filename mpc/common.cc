#include "common.h"

#include <algorithm>
#include <sstream>

namespace mpc {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

std::string printable(const std::string& s, size_t max) {
  std::string out;
  for (char ch : s) {
    if (out.size() >= max) return out + "...";
    out += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
  }
  return out;
}

void Pub::check(size_t n, const char* what) const {
  if (v.empty() || (v.size() != 1 && (n % v.size()) != 0))
    throw ArgError(std::string(what) + ": public constant of size " + std::to_string(v.size()) +
                   " does not broadcast over " + std::to_string(n) + " elements");
}

int Shifts::max() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

void Shifts::check(size_t n, int lo, int hi, const char* what) const {
  if (v.empty() || (v.size() != 1 && (n % v.size()) != 0))
    throw ArgError(std::string(what) + ": shift vector of size " + std::to_string(v.size()) +
                   " does not broadcast over " + std::to_string(n) + " elements");
  for (int d : v)
    if (d < lo || d > hi)
      throw ArgError(std::string(what) + ": shift " + std::to_string(d) + " outside [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace mpc
