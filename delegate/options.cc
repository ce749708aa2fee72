// Delegate options: TFLite's string key/value pairs -> Options (validated; ArgError names
// the option and the valid values), and in distributed mode the party configuration.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "delegate/delegate.h"

namespace tflite_mpc {

namespace {
// A party id option value: exactly "0", "1" or "2".
int parse_party(const std::string& k, const std::string& v) {
  if (v != "0" && v != "1" && v != "2")
    throw ArgError("option " + k + "='" + v + "': expected 0, 1 or 2 (a party id)");
  return v[0] - '0';
}

// output_to: one party id or a comma-separated list of distinct ids ("0,2").
std::vector<int> parse_output_to(const std::string& v) {
  std::vector<int> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = v.find(',', start);
    std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    if (item != "0" && item != "1" && item != "2")
      throw ArgError("option output_to='" + v + "': expected party ids 0, 1 or 2, one or a comma-separated list "
                     "(e.g. 0 or 0,2); '" + item + "' is not one");
    const int id = item[0] - '0';
    if (std::count(out.begin(), out.end(), id))
      throw ArgError("option output_to='" + v + "': party " + item + " is listed twice");
    out.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

Options Options::parse(const std::vector<std::pair<std::string, std::string>>& kv) {
  static const char* kValid =
      "protocol (rep3|mal3), truncation (probabilistic|exact), data_owner (0|1|2), model_owner (0|1|2), "
      "output_to (0|1|2 or a list such as 0,2), fc_rounding (auto|single|double), timeout (seconds > 0), "
      "debug_checks (false|true; local mode only), output (values|argmax), parties (party configuration file: distributed mode), "
      "party (0|1|2: this process's party in distributed mode), network (none|lan|regional|wan: emulated links), "
      "latency_ms (one-way delay >= 0), bandwidth_mbps (per link and direction, > 0; 0: unlimited), "
      "estimate (false|true: no MPC, estimated costs; local mode only)";
  Options o;
  std::set<std::string> seen;
  for (auto& [k, v] : kv) {
    if (!seen.insert(k).second) throw ArgError("option '" + k + "' is given twice");
    if (k == "protocol") {
      auto names = mpc::protocol_names();
      if (std::find(names.begin(), names.end(), v) == names.end())
      {
        std::string valid;
        for (auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
        throw ArgError("option protocol='" + v + "': valid protocols are " + valid);
      }
      o.protocol = v;
    } else if (k == "truncation") {
      if (v != "exact" && v != "probabilistic")
        throw ArgError("option truncation='" + v + "': expected 'probabilistic' or 'exact'");
      o.exact = v == "exact";
    } else if (k == "data_owner") {
      o.data_owner = parse_party(k, v);
    } else if (k == "model_owner") {
      o.model_owner = parse_party(k, v);
    } else if (k == "output_to") {
      o.output_to = parse_output_to(v);
    } else if (k == "fc_rounding") {
      if (v != "auto" && v != "single" && v != "double")
        throw ArgError("option fc_rounding='" + v + "': expected 'auto', 'single' (TF 2.21, LiteRT 2.3) or "
                       "'double' (tflite-runtime 2.14)");
      o.fc_rounding = v == "auto" ? FcRounding::kAuto : v == "single" ? FcRounding::kSingle : FcRounding::kDouble;
    } else if (k == "parties") {
      o.parties = v;
    } else if (k == "party") {
      o.party = parse_party(k, v);
    } else if (k == "timeout") {
      char* end = nullptr;
      const double t = std::strtod(v.c_str(), &end);
      if (v.empty() || !end || *end || !(t > 0) || !std::isfinite(t))
        throw ArgError("option timeout='" + v + "': expected a positive number of seconds");
      o.timeout = t;
    } else if (k == "output") {
      if (v != "values" && v != "argmax")
        throw ArgError("option output='" + v + "': expected 'values' (the output tensors) or 'argmax' (only the "
                       "index of each row's maximum of a single [batch, classes] output)");
      o.output_argmax = v == "argmax";
    } else if (k == "network") {
      o.net = mpc::NetEmu::profile_named(v, "option network='" + mpc::printable(v) + "': ");
    } else if (k == "latency_ms" || k == "bandwidth_mbps") {
      continue;  // applied after the loop, over the profile
    } else if (k == "debug_checks") {
      if (v != "true" && v != "false" && v != "1" && v != "0")
        throw ArgError("option debug_checks='" + v + "': expected true or false");
      o.debug_checks = v == "true" || v == "1";
    } else if (k == "estimate") {
      if (v != "true" && v != "false" && v != "1" && v != "0")
        throw ArgError("option estimate='" + v + "': expected true or false");
      o.estimate = v == "true" || v == "1";
    } else {
      throw ArgError("unknown option '" + k + "'; valid options: " + kValid);
    }
  }
  for (auto& [k, v] : kv) {
    if (k != "latency_ms" && k != "bandwidth_mbps") continue;
    const std::string what = "option " + k + "='" + mpc::printable(v) + "': ";
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || !end || *end) x = -1;  // not a number: rejected by override_with
    o.net.override_with(k == "latency_ms" ? &x : nullptr, k == "bandwidth_mbps" ? &x : nullptr, what);
  }
  for (auto& [k, v] : kv) o.net_given |= k == "network" || k == "latency_ms" || k == "bandwidth_mbps";
  if (o.estimate && o.debug_checks)
    throw ArgError("option debug_checks=true cannot go with estimate=true: an estimate computes nothing to check");
  if (o.estimate && o.protocol == "mal3")
    throw ArgError("option estimate=true supports protocol rep3 only: the cost model does not know mal3's proofs yet");
  if (!o.parties.empty()) {
    if (o.party < 0) throw ArgError("option 'parties' needs 'party' (this process's party id)");
    // debug_checks opens intermediate values to check their widths: with one party
    // per process, that hands a share to another party, which then holds all three.
    if (o.debug_checks)
      throw ArgError("option debug_checks=true is refused in distributed mode (it would send shares of "
                     "intermediate values to another party, revealing them); use it only in local mode");
    if (o.estimate)
      throw ArgError("option estimate=true runs no session: leave out 'parties' and 'party' (the estimate is "
                     "the same in local mode)");
    o.config = std::make_shared<PartyConfig>(PartyConfig::load(o.parties));
    // The configuration file, identical at every party, decides the session.
    for (auto& [k, v] : kv)
      if (k == "protocol" || k == "truncation" || k == "data_owner" || k == "model_owner" || k == "output_to" ||
          k == "output")
        throw ArgError("option '" + k + "' comes from the party configuration in distributed mode");
    o.protocol = o.config->protocol;
    o.exact = o.config->truncation == "exact";
    o.data_owner = o.config->data_owner;
    o.model_owner = o.config->model_owner;
    o.output_to = o.config->output_to;
    o.output_argmax = o.config->output == "argmax";
    o.timeout = o.config->timeout;
    if (!o.net_given) o.net = o.config->net;  // delegate options, if any, decide for this party's links
  } else if (o.party >= 0) {
    throw ArgError("option 'party' needs 'parties' (the party configuration file)");
  }
  return o;
}

}  // namespace tflite_mpc
