#include "tcp_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "wire.h"

namespace mpc {

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kHandshakeSeconds = 5.0;  // per connection, at most
constexpr size_t kMaxPendingAccepts = 16;  // connections being set up at once
constexpr int kMaxLoggedDrops = 10;        // per session
constexpr size_t kReadChunk = 1 << 20;

double until(Clock::time_point t) { return std::chrono::duration<double>(t - Clock::now()).count(); }
Clock::time_point after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

std::string errno_str() { return std::strerror(errno); }

void set_nonblocking(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

sockaddr_in resolve(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) throw Error("cannot resolve host '" + host + "': " + gai_strerror(rc));
  sockaddr_in a = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

std::string where(const PeerAddr& p) { return p.host + ":" + std::to_string(p.port); }

std::string where(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

void log_line(const std::string& msg) {
  char t[16];
  std::time_t now = std::time(nullptr);
  std::tm tm;
  localtime_r(&now, &tm);
  std::strftime(t, sizeof(t), "%H:%M:%S", &tm);
  std::fprintf(stderr, "[tflite-mpc %s] %s\n", t, msg.c_str());
  std::fflush(stderr);
}

// One framed message: the 8-byte header, then the payload (never copied).
struct Out {
  uint64_t hdr;
  uint64_t bytes;
  Vec payload;
  std::chrono::steady_clock::time_point due{};  // emulated network: not written before this
  bool held() const { return due != std::chrono::steady_clock::time_point{}; }
  Out(FrameKind kind, uint64_t n, Vec&& v) : hdr(frame_header(kind, n)), bytes(n), payload(std::move(v)) {}
  size_t total() const { return 8 + bytes; }
  const uint8_t* at(size_t off) const {
    return off < 8 ? reinterpret_cast<const uint8_t*>(&hdr) + off
                   : reinterpret_cast<const uint8_t*>(payload.data()) + (off - 8);
  }
  size_t contiguous(size_t off) const { return off < 8 ? 8 - off : total() - off; }
};

Out bye_frame(const std::string& reason) {
  const std::string r = reason.substr(0, kMaxBye);
  Vec v((r.size() + 7) / 8);
  std::memcpy(v.data(), r.data(), r.size());
  return Out(FrameKind::kBye, r.size(), std::move(v));
}

// A hello from an authenticated peer that differs: the session is refused.
struct SessionRefused : Error {
  using Error::Error;
};

enum class Io { kOk, kWantRead, kWantWrite, kClosed };

}  // namespace

struct Conn {
  int peer = -1, fd = -1;
  SSL* ssl = nullptr;
  std::string addr;  // ip:port of the other end
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Out> sendq;
  size_t send_off = 0;
  EmulatedLink link;  // network emulation of our direction (opt.net)
  FrameReader in;
  std::string error;   // set once the connection failed, or the peer left
  bool ended = false;  // the peer said goodbye (error says so)
  int wake[2] = {-1, -1};
  std::thread pump;
  std::atomic<bool> stop{false};

  explicit Conn(const std::string& a) : addr(a), in("the peer at " + a) {}
  ~Conn() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
    for (int k : wake)
      if (k >= 0) ::close(k);
  }
  void fail_locked(const std::string& e) {
    if (error.empty()) error = e;
    cv.notify_all();
  }
  void fail(const std::string& e) {
    std::lock_guard<std::mutex> g(mu);
    fail_locked(e);
  }
  void poke() {  // wakes the pump; call with mu held, while the pump runs
    if (wake[1] >= 0) (void)!::write(wake[1], "x", 1);
  }

  // Non-blocking I/O on the socket or TLS session. kClosed: *err says why.
  Io read(void* p, size_t n, size_t* got, std::string* err) { return io(p, n, got, err, false); }
  Io write(const void* p, size_t n, size_t* put, std::string* err) {
    return io(const_cast<void*>(p), n, put, err, true);
  }

 private:
  Io io(void* p, size_t n, size_t* done, std::string* err, bool out) {
    n = std::min(n, kReadChunk);
    for (;;) {
      if (ssl) {
        ERR_clear_error();
        const int k = out ? SSL_write(ssl, p, static_cast<int>(n)) : SSL_read(ssl, p, static_cast<int>(n));
        if (k > 0) return *done = static_cast<size_t>(k), Io::kOk;
        const int e = SSL_get_error(ssl, k);
        if (e == SSL_ERROR_WANT_READ) return Io::kWantRead;
        if (e == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
        if (e == SSL_ERROR_ZERO_RETURN) *err = "connection closed";
        else if (e == SSL_ERROR_SYSCALL) *err = errno ? errno_str() : "connection closed";
        else *err = ssl_error();
        return Io::kClosed;
      }
      const ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
      if (k > 0) return *done = static_cast<size_t>(k), Io::kOk;
      if (k == 0 && !out) return *err = "connection closed", Io::kClosed;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return out ? Io::kWantWrite : Io::kWantRead;
      *err = errno_str();
      return Io::kClosed;
    }
  }
};

namespace {

// Every network of this process: for shutdown_all() and the goodbye at exit.
struct Registry {
  std::mutex mu;
  std::set<TcpNetwork::Impl*> live;
  std::atomic<bool> shutdown{false};
  std::string reason;
};
Registry& registry();

}  // namespace

struct TcpNetwork::Impl {
  TcpOptions opt;
  bool emulate = false;  // opt.net.enabled()
  SSL_CTX* ctx = nullptr;
  int listen_fd = -1;
  int wake[2] = {-1, -1};  // interrupts establish()
  std::vector<std::unique_ptr<Conn>> conns;
  std::atomic<bool> interrupted{false};
  std::mutex reason_mu;
  std::string interrupt_reason;  // under reason_mu
  std::mutex close_mu;
  bool closed = false;
  int drops = 0;
  std::deque<std::string> drop_reasons;  // the last few, for the timeout error

  std::string me() const { return "party " + std::to_string(opt.me); }

  ~Impl() {
    {
      std::lock_guard<std::mutex> g(registry().mu);
      registry().live.erase(this);
    }
    close_all("finished");
    if (listen_fd >= 0) ::close(listen_fd);
    for (int k : wake)
      if (k >= 0) ::close(k);
    conns.clear();
    if (ctx) SSL_CTX_free(ctx);
  }

  void setup_tls() {
    if (!opt.tls.enabled) return;
    ctx = SSL_CTX_new(TLS_method());
    if (!ctx) throw Error("cannot create TLS context: " + ssl_error());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, opt.tls.cert.c_str()) != 1)
      throw Error("cannot load certificate '" + opt.tls.cert + "': " + ssl_error());
    if (SSL_CTX_use_PrivateKey_file(ctx, opt.tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw Error("cannot load private key '" + opt.tls.key + "': " + ssl_error());
    if (SSL_CTX_check_private_key(ctx) != 1) throw Error("certificate and private key do not match: " + ssl_error());
    if (SSL_CTX_load_verify_locations(ctx, opt.tls.ca.c_str(), nullptr) != 1)
      throw Error("cannot load CA certificate '" + opt.tls.ca + "': " + ssl_error());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }

  void listen_on_my_port() {
    const PeerAddr& mine = opt.parties.at(opt.me);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) throw Error("socket failed: " + errno_str());
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = resolve(mine.host, mine.port);
    if (bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      const int e = errno;
      throw Error(me() + ": cannot listen on " + where(mine) + ": " +
                  (e == EADDRINUSE ? "the port is already in use" : std::strerror(e)));
    }
    if (listen(listen_fd, 64) != 0) throw Error("listen failed: " + errno_str());
    set_nonblocking(listen_fd, true);
  }

  // ---------------------------------------------------------------- set-up
  // A connection being set up: TCP connect (dials only), TLS, then the hellos.
  struct Pending {
    std::unique_ptr<Conn> c;
    int target = -1;  // the lower id we dialled; -1: accepted (any higher id)
    enum Stage { kConnecting, kTls, kHello } stage = kConnecting;
    Clock::time_point deadline;
    std::string out;  // our hello frame
    size_t out_off = 0;
    short events = POLLOUT;
  };

  void start_auth(Pending& p) {
    Conn& c = *p.c;
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p.out = make_frame(FrameKind::kHello, hello_payload(opt.me, opt.hello));
    c.in.expect_hello();
    if (ctx) {
      c.ssl = SSL_new(ctx);
      if (!c.ssl) throw Error("cannot create a TLS session: " + ssl_error());
      SSL_set_fd(c.ssl, c.fd);
      if (p.target >= 0) SSL_set_connect_state(c.ssl);
      else SSL_set_accept_state(c.ssl);
      p.stage = Pending::kTls;
      p.events = p.target >= 0 ? POLLOUT : POLLIN;  // the client speaks first
    } else {
      p.stage = Pending::kHello;
      p.events = POLLIN | POLLOUT;
    }
  }

  // Advances a set-up; true once the peer is authenticated. Throws Error
  // (the connection is dropped) or SessionRefused.
  bool step(Pending& p) {
    Conn& c = *p.c;
    if (p.stage == Pending::kConnecting) {
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) throw Error(std::strerror(err));
      start_auth(p);
    }
    if (p.stage == Pending::kTls) {
      ERR_clear_error();
      const int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        const int e = SSL_get_error(c.ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
          return false;
        }
        throw Error("TLS handshake failed (certificate not signed by the session CA, or not TLS 1.3?): " +
                    (e == SSL_ERROR_SYSCALL && !ERR_peek_error() ? std::string("connection closed") : ssl_error()));
      }
      p.stage = Pending::kHello;
    }
    p.events = POLLIN;
    std::string err;
    while (p.out_off < p.out.size()) {
      size_t k = 0;
      const Io s = c.write(p.out.data() + p.out_off, p.out.size() - p.out_off, &k, &err);
      if (s == Io::kOk) {
        p.out_off += k;
        continue;
      }
      if (s == Io::kClosed) throw Error("connection lost during the handshake (" + err + ")");
      if (s == Io::kWantWrite) p.events |= POLLOUT;
      break;
    }
    while (!c.in.ready() && !c.in.ended()) {
      auto [ptr, n] = c.in.space();
      if (n == 0) break;
      size_t k = 0;
      const Io s = c.read(ptr, n, &k, &err);
      if (s == Io::kOk) {
        c.in.commit(k);
        continue;
      }
      if (s == Io::kClosed)
        throw Error("the peer closed the connection during the handshake (it may have refused our certificate): " +
                    err);
      if (s == Io::kWantWrite) p.events |= POLLOUT;
      break;
    }
    if (c.in.ended()) throw Error("the peer left during the handshake (" + c.in.bye_reason() + ")");
    if (!c.in.ready() || p.out_off < p.out.size()) return false;
    verify(p);
    return true;
  }

  void verify(Pending& p) {
    Conn& c = *p.c;
    const PeerHello h = parse_hello_payload(c.in.take_hello());
    const int P = static_cast<int>(opt.parties.size());
    if (p.target >= 0 ? h.id != p.target : (h.id <= opt.me || h.id >= P))
      throw Error("expected party " + (p.target >= 0 ? std::to_string(p.target) : "> " + std::to_string(opt.me)) +
                  ", but the peer says it is party " + std::to_string(h.id) +
                  " (wrong party id in its configuration?)");
    if (ctx) {
      X509* cert = SSL_get1_peer_certificate(c.ssl);
      char cn[256] = {0};
      if (cert) X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
      X509_free(cert);
      const std::string want = "party" + std::to_string(h.id);
      if (want != cn)
        throw Error("peer claiming to be party " + std::to_string(h.id) + " presented a certificate for '" +
                    printable(cn) + "', expected '" + want + "'");
    }
    // The peer is who it says (TLS: authenticated): a different hello refuses the session.
    if (h.hello != opt.hello) throw SessionRefused(describe_mismatch(opt.me, h.id, opt.hello, h.hello));
    c.peer = h.id;
    c.in = FrameReader("party " + std::to_string(h.id));
  }

  void dropped(const Pending& p, const std::string& why) {
    const std::string msg = "dropped a connection from " + p.c->addr + ": " + why;
    drop_reasons.push_back(msg);
    if (drop_reasons.size() > 3) drop_reasons.pop_front();
    if (drops < kMaxLoggedDrops) log_line(me() + ": " + msg);
    else if (drops == kMaxLoggedDrops) log_line(me() + ": further dropped connections are not logged");
    ++drops;
  }

  std::unique_ptr<Pending> dial(int j) {
    const sockaddr_in a = resolve(opt.parties[j].host, opt.parties[j].port);
    auto p = std::make_unique<Pending>();
    p->c = std::make_unique<Conn>(where(a));
    p->target = j;
    Conn& c = *p->c;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) throw Error("socket failed: " + errno_str());
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS)
      throw Error(errno_str());
    return p;
  }

  void establish() {
    const int P = static_cast<int>(opt.parties.size());
    conns.resize(P);
    const auto deadline = after(opt.timeout);
    const double per_conn = std::min(opt.timeout, kHandshakeSeconds);
    std::list<std::unique_ptr<Pending>> pending;
    std::vector<bool> dialing(P, false);
    std::vector<Clock::time_point> next_dial(P, Clock::now());
    std::vector<std::string> why(P);  // last failure dialling each lower id
    auto missing = [&](int lo, int hi) {
      for (int j = lo; j < hi; ++j)
        if (j != opt.me && !conns[j]) return true;
      return false;
    };
    for (;;) {
      if (interrupted) throw Error(me() + ": " + reason());
      if (!missing(0, P)) break;
      const auto now = Clock::now();
      if (now >= deadline) throw Error(timeout_error(why));
      for (int j = 0; j < opt.me; ++j)
        if (!conns[j] && !dialing[j] && now >= next_dial[j]) {
          try {
            pending.push_back(dial(j));
            pending.back()->deadline = after(std::min(per_conn, std::max(until(deadline), 0.0)));
            dialing[j] = true;
          } catch (const Error& e) {
            why[j] = e.what();
            next_dial[j] = after(0.1);
          }
        }
      // Poll the wake pipe, the listening socket and every set-up.
      std::vector<pollfd> fds{{wake[0], POLLIN, 0}, {listen_fd, static_cast<short>(missing(opt.me + 1, P) ? POLLIN : 0), 0}};
      for (auto& p : pending) fds.push_back({p->c->fd, p->events, 0});
      auto wake_at = deadline;
      for (auto& p : pending) wake_at = std::min(wake_at, p->deadline);
      for (int j = 0; j < opt.me; ++j)
        if (!conns[j] && !dialing[j]) wake_at = std::min(wake_at, next_dial[j]);
      const int ms = static_cast<int>(std::clamp(until(wake_at) * 1000 + 1, 0.0, 1000.0));
      if (poll(fds.data(), fds.size(), ms) < 0 && errno != EINTR) throw Error("poll failed: " + errno_str());
      if (fds[0].revents & POLLIN) {
        char tmp[64];
        while (::read(wake[0], tmp, sizeof(tmp)) > 0) {
        }
      }
      // Advance the set-ups that can move, and drop the ones that failed or are late.
      size_t k = 2;
      for (auto it = pending.begin(); it != pending.end(); ++k) {
        Pending& p = **it;
        bool done = false, gone = false;
        try {
          if (fds[k].revents) done = step(p);
          else if (Clock::now() >= p.deadline)
            throw Error("no handshake within " + std::to_string(static_cast<int>(per_conn)) + " s");
        } catch (const SessionRefused&) {
          throw;
        } catch (const std::exception& e) {
          gone = true;
          if (p.target >= 0) {  // our dial: try again shortly
            why[p.target] = e.what();
            dialing[p.target] = false;
            next_dial[p.target] = after(0.2);
          } else {
            dropped(p, e.what());
          }
        }
        if (done) {
          if (p.target >= 0) dialing[p.target] = false;
          conns[p.c->peer] = std::move(p.c);  // a newer authenticated connection replaces an older one
          gone = true;
        }
        it = gone ? pending.erase(it) : std::next(it);
      }
      if (fds[1].revents & POLLIN) accept_new(pending, deadline, per_conn);
    }
    ::close(listen_fd);
    listen_fd = -1;
    for (auto& c : conns)
      if (c) start_pump(*c);
  }

  void accept_new(std::list<std::unique_ptr<Pending>>& pending, Clock::time_point deadline, double per_conn) {
    for (;;) {
      sockaddr_in a{};
      socklen_t len = sizeof(a);
      const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&a), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN (or a connection that went away)
      size_t accepted = 0;
      for (auto& p : pending) accepted += p->target < 0;
      if (accepted >= kMaxPendingAccepts) {  // drop the oldest accepted set-up
        for (auto it = pending.begin(); it != pending.end(); ++it)
          if ((*it)->target < 0) {
            dropped(**it, "too many connections being set up at once");
            pending.erase(it);
            break;
          }
      }
      auto p = std::make_unique<Pending>();
      p->c = std::make_unique<Conn>(where(a));
      p->c->fd = fd;
      p->deadline = after(std::min(per_conn, std::max(until(deadline), 0.0)));
      try {
        start_auth(*p);
        pending.push_back(std::move(p));
      } catch (const std::exception& e) {
        dropped(*p, e.what());
      }
    }
  }

  std::string timeout_error(const std::vector<std::string>& why) const {
    const int P = static_cast<int>(opt.parties.size());
    const std::string secs = std::to_string(static_cast<int>(opt.timeout));
    std::string msg;
    for (int j = 0; j < opt.me; ++j)
      if (!conns[j])
        msg += (msg.empty() ? me() + ": " : "; ") + ("cannot reach party " + std::to_string(j) + " at " +
                                                     where(opt.parties[j]) + " within " + secs + " s (" + why[j] + ")");
    std::string who;
    for (int j = opt.me + 1; j < P; ++j)
      if (!conns[j]) who += (who.empty() ? "" : ", ") + std::to_string(j) + " (" + where(opt.parties[j]) + ")";
    if (!who.empty())
      msg += (msg.empty() ? me() + ": " : "; ") + ("timed out after " + secs + " s waiting for party " + who +
                                                   " to connect");
    for (auto& r : drop_reasons) msg += "; " + r;
    return msg;
  }

  // ---------------------------------------------------------------- running
  void start_pump(Conn& c) {
    if (pipe2(c.wake, O_NONBLOCK | O_CLOEXEC) != 0) throw Error("pipe failed: " + errno_str());
    c.pump = std::thread([&c, emulate = emulate] {
      // Emulated network: precise timed waits (Linux adds up to 50 us of timer slack).
      if (emulate) (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
      try {
        pump(c);
      } catch (const Error& e) {  // never terminate the process: end the session
        c.fail(e.what());
      } catch (const std::exception& e) {
        c.fail("party " + std::to_string(c.peer) + ": " + e.what());
      } catch (...) {
        c.fail("party " + std::to_string(c.peer) + ": connection failed (unknown error)");
      }
    });
  }

  // The I/O thread of one connection: writes the send queue, and reads only
  // what the receiver asked for (the next header, then the expected payload).
  static void pump(Conn& c) {
    const std::string who = "party " + std::to_string(c.peer);
    std::string err;
    bool hup = false;
    while (!c.stop) {
      bool want_write, want_read;
      // Emulated network: the front message is held back until its due time.
      auto wait = std::chrono::steady_clock::duration(std::chrono::milliseconds(200));
      {
        std::lock_guard<std::mutex> g(c.mu);
        if (!c.error.empty()) return;
        want_write = !c.sendq.empty();
        if (want_write && c.send_off == 0 && c.sendq.front().held()) {
          const auto left = c.sendq.front().due - std::chrono::steady_clock::now();
          if (left.count() > 0) want_write = false, wait = std::min(wait, left);
        }
        want_read = c.in.space().second > 0;
      }
      if (!(want_read && c.ssl && SSL_pending(c.ssl) > 0)) {
        pollfd fds[2] = {{hup && !want_read && !want_write ? -1 : c.fd,
                          static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0)), 0},
                         {c.wake[0], POLLIN, 0}};
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
        const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
        if (ppoll(fds, 2, &ts, nullptr) < 0 && errno != EINTR) return c.fail("poll failed: " + errno_str());
        if (fds[1].revents & POLLIN) {
          char tmp[64];
          while (::read(c.wake[0], tmp, sizeof(tmp)) > 0) {
          }
        }
        // A hung-up socket polls readable forever: leave it out until something is asked of it.
        hup = fds[0].revents & (POLLERR | POLLHUP);
      }
      for (;;) {  // read what is wanted
        std::pair<uint8_t*, size_t> sp;
        {
          std::lock_guard<std::mutex> g(c.mu);
          sp = c.in.space();
        }
        if (sp.second == 0) break;
        size_t k = 0;
        const Io s = c.read(sp.first, sp.second, &k, &err);
        if (s == Io::kClosed) {
          const bool mid = c.in.mid_frame();
          return c.fail(who + " disconnected" + (mid ? " in the middle of a message" : "") + " (" + err + ")");
        }
        if (s != Io::kOk) break;
        std::lock_guard<std::mutex> g(c.mu);
        c.in.commit(k);
        if (c.in.ended()) {
          c.ended = true;
          return c.fail_locked(who + " left the session (" + c.in.bye_reason() + ")");
        }
        if (c.in.ready()) c.cv.notify_all();
      }
      for (;;) {  // write as much as the socket takes
        Out* front;
        size_t off;
        {
          std::lock_guard<std::mutex> g(c.mu);
          if (c.sendq.empty()) break;
          front = &c.sendq.front();
          off = c.send_off;
          if (off == 0 && front->held() && front->due > std::chrono::steady_clock::now()) break;  // emulated network
        }
        size_t k = 0;
        const Io s = c.write(front->at(off), front->contiguous(off), &k, &err);
        if (s == Io::kClosed) return c.fail(who + " disconnected (" + err + ")");
        if (s != Io::kOk) break;
        std::lock_guard<std::mutex> g(c.mu);
        c.send_off += k;
        if (c.send_off == front->total()) {
          c.sendq.pop_front();
          c.send_off = 0;
          if (c.sendq.empty()) c.cv.notify_all();  // close() waits for the goodbye to go out
        }
      }
    }
  }

  // ---------------------------------------------------------------- ending
  std::string reason() {
    std::lock_guard<std::mutex> g(reason_mu);
    return interrupt_reason;
  }

  void interrupt(const std::string& why) {
    {
      std::lock_guard<std::mutex> g(reason_mu);
      if (interrupt_reason.empty()) interrupt_reason = why;
    }
    interrupted = true;
    if (wake[1] >= 0) (void)!::write(wake[1], "x", 1);
    for (auto& c : conns)
      if (c) {
        std::lock_guard<std::mutex> g(c->mu);
        c->cv.notify_all();
      }
  }

  void close_all(const std::string& why) {
    std::lock_guard<std::mutex> g(close_mu);
    if (closed) return;
    closed = true;
    const bool was_interrupted = interrupted;
    const std::string r = was_interrupted ? "shutting down" : why;
    const auto flush_until = after(was_interrupted ? 0.3 : std::min(opt.timeout, 2.0));
    for (auto& c : conns) {  // goodbye to every peer still there
      if (!c || !c->pump.joinable()) continue;
      std::lock_guard<std::mutex> cg(c->mu);
      if (!c->error.empty()) continue;
      c->sendq.push_back(bye_frame(r));
      c->poke();
    }
    for (auto& c : conns) {
      if (!c || !c->pump.joinable()) continue;
      std::unique_lock<std::mutex> cg(c->mu);
      c->cv.wait_until(cg, flush_until, [&] {
        return c->sendq.empty() || !c->error.empty() || (interrupted && !was_interrupted);
      });
      c->fail_locked("the session is closed");  // from now on nobody pokes the pump
    }
    for (auto& c : conns) {
      if (!c || !c->pump.joinable()) continue;
      c->stop = true;
      (void)!write(c->wake[1], "x", 1);
      c->pump.join();
    }
    for (auto& c : conns) {
      if (!c) continue;
      if (c->ssl && !c->ended) SSL_shutdown(c->ssl);  // close_notify; best effort
      if (c->fd >= 0) ::close(c->fd);
      c->fd = -1;
    }
  }
};

namespace {

Registry& registry() {
  static Registry* r = [] {
    // OpenSSL cleans up at exit too: initialise it first so that our handler,
    // registered after it, runs before its cleanup.
    OPENSSL_init_ssl(0, nullptr);
    auto* reg = new Registry;  // never destroyed: used at exit
    // A process that exits with sessions open says goodbye to its peers.
    std::atexit([] { TcpNetwork::close_all("finished"); });
    return reg;
  }();
  return *r;
}

class TcpTransport : public Transport {
 public:
  explicit TcpTransport(TcpNetwork::Impl& n) : n_(n) {}
  int party() const override { return n_.opt.me; }
  int parties() const override { return static_cast<int>(n_.opt.parties.size()); }

  void send(int to, const void* data, size_t bytes) override {
    Vec v((bytes + 7) / 8);
    std::memcpy(v.data(), data, bytes);
    enqueue(to, Out(FrameKind::kData, bytes, std::move(v)));
  }

  void send_vec(int to, Vec&& v) override {  // large tensors: handed over, not copied
    const uint64_t bytes = v.size() * 8;
    enqueue(to, Out(FrameKind::kData, bytes, std::move(v)));
  }

  void recv(int from, void* data, size_t bytes) override {
    Vec v = pop(from, bytes);
    std::memcpy(data, v.data(), bytes);
  }

  void recv_vec(int from, Vec& out, size_t words) override { out = pop(from, words * 8); }

 private:
  [[noreturn]] void raise(const Conn& c) {
    const std::string msg = "party " + std::to_string(n_.opt.me) + ": " + c.error;
    if (c.ended) throw SessionEnded(msg);
    throw Error(msg);
  }

  void enqueue(int to, Out&& o) {
    Conn& c = conn(to);
    std::lock_guard<std::mutex> g(c.mu);
    if (!c.error.empty()) raise(c);
    if (n_.interrupted) throw Error("party " + std::to_string(n_.opt.me) + ": " + n_.reason());
    if (n_.emulate) o.due = c.link.schedule(o.bytes, n_.opt.net);
    c.sendq.push_back(std::move(o));
    c.poke();
  }

  Conn& conn(int peer) {
    if (peer < 0 || peer >= parties() || !n_.conns[peer]) throw Error("no connection to party " + std::to_string(peer));
    return *n_.conns[peer];
  }

  // The next message from `from`, which must be exactly `bytes` long.
  Vec pop(int from, size_t bytes) {
    Conn& c = conn(from);
    std::unique_lock<std::mutex> g(c.mu);
    if (!c.error.empty()) raise(c);
    try {
      c.in.expect_data(bytes);
    } catch (const Error& e) {
      c.fail_locked(e.what());
      raise(c);
    }
    c.poke();
    c.cv.wait_for(g, std::chrono::duration<double>(n_.opt.timeout),
                  [&] { return c.in.ready() || !c.error.empty() || n_.interrupted; });
    if (c.in.ready()) {
      size_t n = 0;
      return c.in.take(&n);
    }
    if (!c.error.empty()) raise(c);
    if (n_.interrupted) throw Error("party " + std::to_string(n_.opt.me) + ": " + n_.reason());
    c.fail_locked("timed out after " + std::to_string(static_cast<int>(n_.opt.timeout)) +
                  " s waiting for party " + std::to_string(from) + " (stalled or gone)");
    raise(c);
  }
  TcpNetwork::Impl& n_;
};

}  // namespace

TcpNetwork::TcpNetwork(const TcpOptions& opt) : impl_(std::make_unique<Impl>()) {
  impl_->opt = opt;
  impl_->emulate = opt.net.enabled();
  if (opt.me < 0 || opt.me >= static_cast<int>(opt.parties.size()))
    throw ArgError("party id " + std::to_string(opt.me) + " is not in the configuration");
  if (pipe2(impl_->wake, O_NONBLOCK | O_CLOEXEC) != 0) throw Error("pipe failed: " + errno_str());
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    if (r.shutdown) throw Error("party " + std::to_string(opt.me) + ": " + r.reason);
    r.live.insert(impl_.get());
  }
  impl_->setup_tls();
  impl_->listen_on_my_port();
  impl_->establish();
}

TcpNetwork::~TcpNetwork() = default;

std::unique_ptr<Transport> TcpNetwork::endpoint() { return std::make_unique<TcpTransport>(*impl_); }

int TcpNetwork::parties() const { return static_cast<int>(impl_->opt.parties.size()); }

void TcpNetwork::close(const std::string& reason) { impl_->close_all(reason); }

void TcpNetwork::shutdown_all(const std::string& reason) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  if (!r.shutdown) r.reason = reason;
  r.shutdown = true;
  for (auto* n : r.live) n->interrupt(reason);
}

bool TcpNetwork::shutting_down() { return registry().shutdown; }

void TcpNetwork::close_all(const std::string& reason) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (auto* n : r.live) n->close_all(reason);
}

}  // namespace mpc
