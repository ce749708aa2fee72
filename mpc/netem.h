// Network emulation in the transports: a one-way delay per message and a
// bandwidth per link and direction (a token bucket), so that an inference can
// be measured under LAN/WAN conditions on one machine (no tc netem needed).
// A message of B bytes sent at time t on a link becomes receivable at
//   max(t, link_free) + B*8/bandwidth + latency,   link_free = max(t, link_free) + B*8/bandwidth
// Messages on one link stay in order; the sender never blocks on the delay.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace mpc {

struct NetEmu {
  std::string profile = "none";  // none | lan | regional | wan | custom (no profile, explicit values)
  double latency_ms = 0;         // one-way delay added to every message
  double bandwidth_mbps = 0;     // per link and direction; 0: unlimited
  bool enabled() const { return latency_ms > 0 || bandwidth_mbps > 0; }

  // The named profile (given by round-trip time: one-way latency = RTT / 2);
  // throws ArgError starting with `what` (e.g. "option network='x': ") and listing the valid names.
  static NetEmu profile_named(const std::string& name, const std::string& what);
  // Checks and applies explicit overrides (nullptr: keep the profile's);
  // bandwidth_mbps 0 means unlimited. Throws ArgError starting with `what`
  // (give one value per call so that `what` names it).
  void override_with(const double* latency_ms, const double* bandwidth_mbps, const std::string& what);
  static const char* kProfiles;  // "none|lan|regional|wan"
};

// The emulated state of one link (one direction between two parties).
class EmulatedLink {
 public:
  using Clock = std::chrono::steady_clock;
  // When a message of `bytes` bytes handed over now becomes receivable.
  Clock::time_point schedule(size_t bytes, const NetEmu& e) {
    const Clock::time_point now = Clock::now();
    if (free_ < now) free_ = now;
    if (e.bandwidth_mbps > 0)
      free_ += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(bytes) * 8.0 / (e.bandwidth_mbps * 1e6)));
    return free_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(e.latency_ms * 1e-3));
  }
  void reset() { free_ = Clock::time_point{}; }

 private:
  Clock::time_point free_{};
};

}  // namespace mpc
