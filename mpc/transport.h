// Point-to-point message transport between the parties of one session.
// Protocols never see sockets or threads: they send byte strings to a party
// and receive byte strings of a size they know. Implementations: in-memory
// (parties as threads of one process, memory_transport.h) and TCP/TLS.
// send() must not block on the peer's receive (buffered or overlapped), so a
// round where every party sends, then receives, cannot deadlock.
#pragma once
#include <cstddef>
#include <vector>

#include "common.h"
#include "fault.h"
#include "pool.h"
#include "stats.h"

namespace mpc {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int party() const = 0;
  virtual int parties() const = 0;
  virtual void send(int to, const void* data, size_t bytes) = 0;
  // Blocks until exactly `bytes` bytes of the next message from `from` arrive;
  // throws Error on peer failure, abort or timeout.
  virtual void recv(int from, void* data, size_t bytes) = 0;
  // Length in hops of the longest chain of dependent messages received so far
  // (a Lamport clock carried by every message); 0 if the transport does not track it.
  virtual u64 depth() const { return 0; }
  // Whole-buffer variants; the in-memory transport moves instead of copying.
  virtual void send_vec(int to, Vec&& v) { send(to, v.data(), v.size() * 8); }
  virtual void recv_vec(int from, Vec& out, size_t words) {
    out.resize(words);
    recv(from, out.data(), words * 8);
  }
};

// What protocols talk to: a transport plus byte accounting into Stats.
class Comm {
 public:
  Comm(Transport& t, Stats& s) : t_(t), s_(s) {}
  int party() const { return t_.party(); }
  int parties() const { return t_.parties(); }
  void send(int to, const u64* data, size_t words) {
    if (words == 0) return;
    if (fault::armed()) {  // tests only: a deviating party (mpc/fault.h)
      Vec v(data, data + words);
      if (fault::maybe_tamper(party(), to, kind_, v.data(), words)) {
        send_unhooked(to, std::move(v));  // altered once: not through the hook again
        return;
      }
    }
    t_.send(to, data, words * 8);
    s_.current().bytes_sent += words * 8;
    if (to >= 0 && to < 3) s_.current().bytes_to[to] += words * 8;
  }
  void send(int to, const Vec& v) { send(to, v.data(), v.size()); }
  // Hands the buffer over (no copy on the in-memory transport).
  void send(int to, Vec&& v) {
    if (v.empty()) return;
    if (fault::armed()) fault::maybe_tamper(party(), to, kind_, v.data(), v.size());
    send_unhooked(to, std::move(v));
  }
  void recv(int from, u64* data, size_t words) {
    if (words == 0) return;
    const u64 d0 = t_.depth();
    t_.recv(from, data, words * 8);
    s_.current().bytes_recv += words * 8;
    s_.current().depth += t_.depth() - d0;
  }
  Vec recv(int from, size_t words) {
    Vec v;
    if (words == 0) return v;
    const u64 d0 = t_.depth();
    t_.recv_vec(from, v, words);
    s_.current().bytes_recv += words * 8;
    s_.current().depth += t_.depth() - d0;
    return v;
  }
  // One communication round of the protocol (counted at every party).
  void round() { s_.current().rounds++; }
  Stats& stats() { return s_; }
  Transport& transport() { return t_; }
  // The kind of the messages being sent (a static label; see MsgKind and mpc/fault.h).
  const char* kind() const { return kind_; }

 private:
  friend class MsgKind;
  void send_unhooked(int to, Vec&& v) {
    s_.current().bytes_sent += v.size() * 8;
    if (to >= 0 && to < 3) s_.current().bytes_to[to] += v.size() * 8;
    t_.send_vec(to, std::move(v));
  }
  Transport& t_;
  Stats& s_;
  const char* kind_ = "data";
};

// Labels the messages sent while it lives (the innermost label wins): what a test's fault
// plan selects (mpc/fault.h), and what an actively secure protocol's checks can name.
class MsgKind {
 public:
  MsgKind(Comm& c, const char* kind) : c_(c), prev_(c.kind_) { c.kind_ = kind; }
  ~MsgKind() { c_.kind_ = prev_; }
  MsgKind(const MsgKind&) = delete;
  MsgKind& operator=(const MsgKind&) = delete;

 private:
  Comm& c_;
  const char* prev_;
};

}  // namespace mpc
