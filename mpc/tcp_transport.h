// TCP transport between parties on different processes or hosts, with TLS 1.3
// and mutual certificate authentication (OpenSSL) by default. One persistent
// connection per pair of parties; each connection has an I/O thread that owns
// the socket (and TLS session) and pumps reads and writes concurrently, so a
// round in which every party sends large messages before receiving costs one
// latency and cannot deadlock. Every wait is bounded by the timeout.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "transport.h"

namespace mpc {

struct PeerAddr {
  int id = -1;
  std::string host;
  int port = 0;
};

struct TlsFiles {
  bool enabled = true;  // false: plaintext TCP (explicitly requested, for local benchmarks only)
  std::string ca, cert, key;
};

struct TcpOptions {
  int me = -1;
  std::vector<PeerAddr> parties;  // indexed by party id
  TlsFiles tls;
  double timeout = 30.0;   // seconds: connecting, and every receive
  std::string hello;       // must be identical at every party (protocol, version, graph hash)
};

class TcpNetwork {
 public:
  // Listens on this party's port, connects to every lower id and accepts every
  // higher id (retrying until the timeout), authenticates (TLS: the peer's
  // certificate must chain to the CA and name it "party<id>"), and compares the
  // hello strings. Throws Error with a message saying what failed.
  explicit TcpNetwork(const TcpOptions& opt);
  ~TcpNetwork();
  std::unique_ptr<Transport> endpoint();
  int parties() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpc
