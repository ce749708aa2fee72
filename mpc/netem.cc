#include "netem.h"

#include <cmath>

#include "common.h"

namespace mpc {

const char* NetEmu::kProfiles = "none|lan|regional|wan";

NetEmu NetEmu::profile_named(const std::string& name, const std::string& what) {
  NetEmu e;
  e.profile = name;
  if (name == "none") return e;
  // {RTT ms, Mbit/s}
  if (name == "lan") e.latency_ms = 0.1 / 2, e.bandwidth_mbps = 10000;
  else if (name == "regional") e.latency_ms = 2.0 / 2, e.bandwidth_mbps = 1000;
  else if (name == "wan") e.latency_ms = 40.0 / 2, e.bandwidth_mbps = 100;
  else
    throw ArgError(what + "expected none, lan (0.1 ms RTT, 10 Gbit/s), regional (2 ms RTT, "
                   "1 Gbit/s) or wan (40 ms RTT, 100 Mbit/s)");
  return e;
}

void NetEmu::override_with(const double* latency, const double* bandwidth, const std::string& what) {
  if (latency) {
    if (!(*latency >= 0) || !std::isfinite(*latency) || *latency > 60000)
      throw ArgError(what + "expected a one-way delay in milliseconds >= 0 (at most 60000)");
    latency_ms = *latency;
  }
  if (bandwidth) {
    if (!(*bandwidth >= 0) || !std::isfinite(*bandwidth) || (*bandwidth > 0 && *bandwidth < 1e-3))
      throw ArgError(what + "expected Mbit/s per link and direction > 0 (at least 0.001), or 0 "
                     "for unlimited");
    bandwidth_mbps = *bandwidth;
  }
  if ((latency || bandwidth) && profile == "none") profile = "custom";
}

}  // namespace mpc
