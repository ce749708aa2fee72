// TCP transport between parties on different processes or hosts, with TLS 1.3
// and mutual certificate authentication (OpenSSL) by default. One persistent
// connection per pair of parties; each connection has an I/O thread that owns
// the socket (and TLS session) and pumps reads and writes concurrently, so a
// round in which every party sends large messages before receiving costs one
// latency and cannot deadlock. Every wait is bounded by the timeout. The wire
// format and its checks are in wire.h: a peer can make us allocate only what
// the protocol asked it for, and buffers nothing we did not ask for.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "netem.h"
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
  NetEmu net;              // emulated outgoing links of this party (each party emulates its own)
};

class TcpNetwork {
 public:
  // Listens on this party's port, connects to every lower id and accepts every
  // higher id, until all are authenticated or the timeout: TLS (the peer's
  // certificate must chain to the CA and name it "party<id>"), then both sides
  // send "<id>\n<hello>" and compare the hellos. Connections are set up
  // concurrently, each within a short deadline; a connection that fails (a port
  // scan, silence, a wrong certificate or id, garbage) is dropped and logged and
  // the session still forms; failed dials to a lower id are retried. Throws
  // Error saying what failed: the timeout (naming the missing parties and why
  // connections were dropped), or a hello that differs (the session is refused).
  explicit TcpNetwork(const TcpOptions& opt);
  // Closes with the goodbye "finished" unless close() was called.
  ~TcpNetwork();
  std::unique_ptr<Transport> endpoint();
  int parties() const;
  // Ends the session: sends a goodbye with `reason` to every peer still
  // connected (bounded wait for it to go out), then closes. Idempotent.
  void close(const std::string& reason);

  // Ends every session of this process now (their waits fail at once, their
  // goodbyes say "shutting down") and refuses new ones; for a party process
  // that received SIGTERM. Safe to call from any thread.
  static void shutdown_all(const std::string& reason);
  static bool shutting_down();
  // close(reason) on every session of this process (also run at exit).
  static void close_all(const std::string& reason);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpc
