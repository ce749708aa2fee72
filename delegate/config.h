// The party configuration file, identical at every party (JSON):
// {
//   "protocol": "rep3", "truncation": "exact", "timeout": 30,
//   "transport": "tls",                 // or "tcp-insecure" (plaintext, local benchmarks only)
//   "ca": "certs/ca.pem",
//   "roles": {"data_owner": 0, "model_owner": 1, "output_to": [0]},
//   "output": "values",                 // or "argmax" (optional; see the delegate option output)
//   "network": "wan", "latency_ms": 20, "bandwidth_mbps": 100,  // optional emulated links (delegate options)
//   "parties": [{"id": 0, "host": "10.0.0.1", "port": 7000,
//                "cert": "certs/party0.pem", "key": "certs/party0.key"}, ...]
// }
// Relative paths are relative to the file. Each party uses its own "key".
#pragma once
#include <string>
#include <vector>

#include "mpc/tcp_transport.h"

namespace tflite_mpc {

struct PartyConfig {
  std::string path;
  std::string protocol = "rep3";
  std::string truncation = "probabilistic";
  double timeout = 30.0;
  bool tls = true;
  std::string ca;
  int data_owner = 0, model_owner = 1;
  std::vector<int> output_to{0};
  std::string output = "values";  // "values" | "argmax" (the delegate option output)
  mpc::NetEmu net;  // "network", "latency_ms", "bandwidth_mbps": every party emulates its outgoing links
  std::vector<mpc::PeerAddr> parties;
  std::vector<std::string> certs, keys;  // by party id
  // Throws ArgError naming the file and the problem.
  static PartyConfig load(const std::string& path);
  // The same for the file's text (path: for messages and relative paths).
  static PartyConfig parse(const std::string& text, const std::string& path);
  mpc::TcpOptions tcp_options(int me, const std::string& hello) const;
};

}  // namespace tflite_mpc
