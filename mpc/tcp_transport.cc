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
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

namespace mpc {

namespace {

using Clock = std::chrono::steady_clock;

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

std::string errno_str() { return std::strerror(errno); }

void set_timeouts(int fd, double seconds) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

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

// One framed message: an 8-byte length, then the payload (never copied).
struct Out {
  uint64_t hdr;
  Vec payload;
  size_t total() const { return 8 + hdr; }
  const uint8_t* at(size_t off) const {
    return off < 8 ? reinterpret_cast<const uint8_t*>(&hdr) + off
                   : reinterpret_cast<const uint8_t*>(payload.data()) + (off - 8);
  }
  size_t contiguous(size_t off) const { return off < 8 ? 8 - off : total() - off; }
};

}  // namespace

struct Conn {
  int peer = -1, fd = -1;
  SSL* ssl = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Out> sendq;
  size_t send_off = 0;
  std::deque<std::pair<Vec, size_t>> recvq;
  std::string error;  // set once the connection failed or closed
  int wake[2] = {-1, -1};
  std::thread pump;
  // frame being received
  uint8_t hdr[8];
  size_t hdr_got = 0, cur_bytes = 0, cur_got = 0;
  Vec cur;

  void fail(const std::string& e) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (error.empty()) error = e;
    }
    cv.notify_all();
  }
  void feed(const uint8_t* p, size_t n) {
    while (n > 0) {
      if (hdr_got < 8) {
        const size_t k = std::min(n, 8 - hdr_got);
        std::memcpy(hdr + hdr_got, p, k);
        hdr_got += k;
        p += k;
        n -= k;
        if (hdr_got == 8) {
          std::memcpy(&cur_bytes, hdr, 8);
          cur = Vec((cur_bytes + 7) / 8);
          cur_got = 0;
        }
      }
      if (hdr_got == 8) {
        const size_t k = std::min(n, cur_bytes - cur_got);
        std::memcpy(reinterpret_cast<uint8_t*>(cur.data()) + cur_got, p, k);
        cur_got += k;
        p += k;
        n -= k;
        if (cur_got == cur_bytes) {
          {
            std::lock_guard<std::mutex> g(mu);
            recvq.emplace_back(std::move(cur), cur_bytes);
          }
          cv.notify_all();
          hdr_got = 0;
          cur = Vec();
        }
      }
    }
  }
};

struct TcpNetwork::Impl {
  TcpOptions opt;
  SSL_CTX* ctx = nullptr;
  int listen_fd = -1;
  std::vector<std::unique_ptr<Conn>> conns;
  std::atomic<bool> stop{false};

  ~Impl() {
    stop = true;
    for (auto& c : conns)
      if (c && c->pump.joinable()) {
        if (c->wake[1] >= 0) (void)!write(c->wake[1], "x", 1);
        c->pump.join();
      }
    for (auto& c : conns) {
      if (!c) continue;
      if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
      }
      if (c->fd >= 0) close(c->fd);
      for (int k : c->wake)
        if (k >= 0) close(k);
    }
    if (listen_fd >= 0) close(listen_fd);
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
    const PeerAddr& me = opt.parties.at(opt.me);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = resolve(me.host, me.port);
    if (bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      const int e = errno;
      throw Error("party " + std::to_string(opt.me) + ": cannot listen on " + where(me) + ": " +
                  (e == EADDRINUSE ? "the port is already in use" : std::strerror(e)));
    }
    if (listen(listen_fd, 8) != 0) throw Error("listen failed: " + errno_str());
  }

  // TLS handshake and identity check; then both sides send "id\nhello" and compare.
  void authenticate(Conn& c, bool server, int expect /* -1: any higher id */, double remaining) {
    set_timeouts(c.fd, std::max(remaining, 0.5));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ctx) {
      c.ssl = SSL_new(ctx);
      SSL_set_fd(c.ssl, c.fd);
      if ((server ? SSL_accept(c.ssl) : SSL_connect(c.ssl)) != 1)
        throw Error("party " + std::to_string(opt.me) + ": TLS handshake with " +
                    (expect >= 0 ? "party " + std::to_string(expect) : std::string("a connecting party")) +
                    " failed (certificate not signed by the session CA, or not TLS 1.3?): " + ssl_error());
    }
    const std::string mine = std::to_string(opt.me) + "\n" + opt.hello;
    write_all(c, mine);
    const std::string theirs = read_all(c);
    const size_t nl = theirs.find('\n');
    if (nl == std::string::npos) throw Error("malformed handshake from a peer");
    const int id = std::atoi(theirs.substr(0, nl).c_str());
    if ((expect >= 0 && id != expect) || (expect < 0 && (id <= opt.me || id >= static_cast<int>(opt.parties.size()))))
      throw Error("party " + std::to_string(opt.me) + ": expected party " +
                  (expect >= 0 ? std::to_string(expect) : "> " + std::to_string(opt.me)) + ", but the peer says it is party " +
                  std::to_string(id) + " (wrong party id in its configuration?)");
    if (ctx) {
      X509* cert = SSL_get1_peer_certificate(c.ssl);
      char cn[256] = {0};
      if (cert) X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
      X509_free(cert);
      const std::string want = "party" + std::to_string(id);
      if (want != cn)
        throw Error("party " + std::to_string(opt.me) + ": peer claiming to be party " + std::to_string(id) +
                    " presented a certificate for '" + cn + "', expected '" + want + "'");
    }
    const std::string hello = theirs.substr(nl + 1);
    if (hello != opt.hello) throw Error(describe_mismatch(id, hello));
    c.peer = id;
  }

  std::string describe_mismatch(int id, const std::string& theirs) {
    // hello is "key=value;key=value;..."
    auto parse = [](const std::string& s) {
      std::vector<std::pair<std::string, std::string>> kv;
      size_t i = 0;
      while (i <= s.size()) {
        size_t j = s.find(';', i);
        if (j == std::string::npos) j = s.size();
        std::string item = s.substr(i, j - i);
        size_t eq = item.find('=');
        if (!item.empty()) kv.emplace_back(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
        i = j + 1;
      }
      return kv;
    };
    auto a = parse(opt.hello), b = parse(theirs);
    std::string diff;
    for (auto& [k, v] : a) {
      std::string other = "(missing)";
      for (auto& [k2, v2] : b)
        if (k2 == k) other = v2;
      if (other != v) diff += (diff.empty() ? "" : ", ") + k + ": ours '" + v + "', party " + std::to_string(id) + "'s '" + other + "'";
    }
    return "party " + std::to_string(opt.me) + ": session refused, party " + std::to_string(id) +
           " disagrees on " + (diff.empty() ? "the session parameters" : diff);
  }

  void write_all(Conn& c, const std::string& s) {
    uint64_t n = s.size();
    std::string frame(reinterpret_cast<const char*>(&n), 8);
    frame += s;
    size_t off = 0;
    while (off < frame.size()) {
      const int k = c.ssl ? SSL_write(c.ssl, frame.data() + off, static_cast<int>(frame.size() - off))
                          : static_cast<int>(send(c.fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL));
      if (k <= 0) {
        if (!c.ssl && errno == EINTR) continue;
        throw Error("handshake write failed: " + (c.ssl ? ssl_error() : errno_str()));
      }
      off += static_cast<size_t>(k);
    }
  }

  std::string read_all(Conn& c) {
    auto read_n = [&](char* p, size_t n) {
      size_t got = 0;
      while (got < n) {
        const int k = c.ssl ? SSL_read(c.ssl, p + got, static_cast<int>(n - got))
                            : static_cast<int>(recv(c.fd, p + got, n - got, 0));
        if (k <= 0) {
          if (!c.ssl && k < 0 && errno == EINTR) continue;
          throw Error("party " + std::to_string(opt.me) + ": peer closed the connection or timed out during the "
                      "handshake (it may have refused our certificate): " +
                      (c.ssl ? ssl_error() : (k == 0 ? std::string("connection closed") : errno_str())));
        }
        got += static_cast<size_t>(k);
      }
    };
    uint64_t n;
    read_n(reinterpret_cast<char*>(&n), 8);
    if (n > (1 << 20)) throw Error("handshake message too large");
    std::string s(n, '\0');
    read_n(s.data(), n);
    return s;
  }

  void connect_all() {
    const int P = static_cast<int>(opt.parties.size());
    conns.resize(P);
    const auto deadline = Clock::now() + std::chrono::duration<double>(opt.timeout);
    auto remaining = [&] { return std::chrono::duration<double>(deadline - Clock::now()).count(); };
    // Connect to every lower id (retrying while it is not up yet).
    for (int j = 0; j < opt.me; ++j) {
      const PeerAddr& p = opt.parties[j];
      sockaddr_in a = resolve(p.host, p.port);
      for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        set_timeouts(fd, std::max(std::min(remaining(), 2.0), 0.2));
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
          auto c = std::make_unique<Conn>();
          c->fd = fd;
          authenticate(*c, false, j, remaining());
          conns[j] = std::move(c);
          break;
        }
        const std::string why = errno_str();
        close(fd);
        if (remaining() <= 0)
          throw Error("party " + std::to_string(opt.me) + ": cannot reach party " + std::to_string(j) + " at " +
                      where(p) + " within " + std::to_string(static_cast<int>(opt.timeout)) + " s (" + why + ")");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    // Accept every higher id.
    int missing = P - 1 - opt.me;
    while (missing > 0) {
      pollfd pf{listen_fd, POLLIN, 0};
      const int ms = static_cast<int>(std::max(remaining(), 0.0) * 1000);
      const int r = poll(&pf, 1, ms);
      if (r <= 0) {
        std::string who;
        for (int j = opt.me + 1; j < P; ++j)
          if (!conns[j]) who += (who.empty() ? "" : ", ") + std::to_string(j) + " (" + where(opt.parties[j]) + ")";
        throw Error("party " + std::to_string(opt.me) + ": timed out after " + std::to_string(static_cast<int>(opt.timeout)) +
                    " s waiting for party " + who + " to connect");
      }
      int fd = accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      authenticate(*c, true, -1, remaining());
      if (conns[c->peer]) throw Error("party " + std::to_string(c->peer) + " connected twice");
      conns[c->peer] = std::move(c);
      --missing;
    }
    close(listen_fd);
    listen_fd = -1;
    for (auto& c : conns)
      if (c) start_pump(*c);
  }

  void start_pump(Conn& c) {
    if (pipe(c.wake) != 0) throw Error("pipe failed");
    set_nonblocking(c.fd, true);
    set_nonblocking(c.wake[0], true);
    c.pump = std::thread([this, &c] { pump(c); });
  }

  void pump(Conn& c) {
    std::vector<uint8_t> buf(1 << 16);
    const std::string who = "party " + std::to_string(c.peer);
    while (!stop) {
      bool want_write;
      {
        std::lock_guard<std::mutex> g(c.mu);
        want_write = !c.sendq.empty();
        if (!c.error.empty()) return;
      }
      pollfd fds[2] = {{c.fd, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0}, {c.wake[0], POLLIN, 0}};
      if (!(c.ssl && SSL_pending(c.ssl) > 0)) {
        if (poll(fds, 2, 200) < 0 && errno != EINTR) return c.fail("poll failed: " + errno_str());
        if (fds[1].revents & POLLIN) {
          char tmp[64];
          while (read(c.wake[0], tmp, sizeof(tmp)) > 0) {
          }
        }
      }
      for (;;) {  // read everything available
        const int k = c.ssl ? SSL_read(c.ssl, buf.data(), static_cast<int>(buf.size()))
                            : static_cast<int>(recv(c.fd, buf.data(), buf.size(), 0));
        if (k > 0) {
          c.feed(buf.data(), static_cast<size_t>(k));
          continue;
        }
        if (c.ssl) {
          const int e = SSL_get_error(c.ssl, k);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
          return c.fail(who + " disconnected" + (e == SSL_ERROR_ZERO_RETURN ? "" : " (" + ssl_error() + ")"));
        }
        if (k == 0) return c.fail(who + " disconnected");
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return c.fail(who + ": connection error: " + errno_str());
      }
      for (;;) {  // write as much as the socket takes
        Out* front;
        size_t off;
        {
          std::lock_guard<std::mutex> g(c.mu);
          if (c.sendq.empty()) break;
          front = &c.sendq.front();
          off = c.send_off;
        }
        const uint8_t* p = front->at(off);
        const size_t left = front->contiguous(off);
        const int k = c.ssl ? SSL_write(c.ssl, p, static_cast<int>(std::min<size_t>(left, 1 << 20)))
                            : static_cast<int>(send(c.fd, p, left, MSG_NOSIGNAL));
        if (k > 0) {
          std::lock_guard<std::mutex> g(c.mu);
          c.send_off += static_cast<size_t>(k);
          if (c.send_off == front->total()) {
            c.sendq.pop_front();
            c.send_off = 0;
          }
          continue;
        }
        if (c.ssl) {
          const int e = SSL_get_error(c.ssl, k);
          if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
          return c.fail(who + " disconnected (" + ssl_error() + ")");
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return c.fail(who + ": connection error: " + errno_str());
      }
    }
  }
};

namespace {

class TcpTransport : public Transport {
 public:
  explicit TcpTransport(TcpNetwork::Impl& n) : n_(n) {}
  int party() const override { return n_.opt.me; }
  int parties() const override { return static_cast<int>(n_.opt.parties.size()); }

  void send(int to, const void* data, size_t bytes) override {
    Vec v((bytes + 7) / 8);
    std::memcpy(v.data(), data, bytes);
    enqueue(to, Out{bytes, std::move(v)});
  }

  void send_vec(int to, Vec&& v) override {  // large tensors: handed over, not copied
    const uint64_t bytes = v.size() * 8;
    enqueue(to, Out{bytes, std::move(v)});
  }

  void recv(int from, void* data, size_t bytes) override {
    auto [v, n] = pop(from);
    if (n != bytes)
      throw Error("protocol desync: expected " + std::to_string(bytes) + " bytes from party " + std::to_string(from) +
                  ", got " + std::to_string(n));
    std::memcpy(data, v.data(), bytes);
  }

  void recv_vec(int from, Vec& out, size_t words) override {
    auto [v, n] = pop(from);
    if (n != words * 8)
      throw Error("protocol desync: expected " + std::to_string(words * 8) + " bytes from party " +
                  std::to_string(from) + ", got " + std::to_string(n));
    out = std::move(v);
  }

 private:
  void enqueue(int to, Out&& o) {
    Conn& c = conn(to);
    {
      std::lock_guard<std::mutex> g(c.mu);
      if (!c.error.empty()) throw Error(c.error);
      c.sendq.push_back(std::move(o));
    }
    (void)!write(c.wake[1], "x", 1);
  }

  Conn& conn(int peer) {
    if (peer < 0 || peer >= parties() || !n_.conns[peer]) throw Error("no connection to party " + std::to_string(peer));
    return *n_.conns[peer];
  }
  std::pair<Vec, size_t> pop(int from) {
    Conn& c = conn(from);
    std::unique_lock<std::mutex> g(c.mu);
    c.cv.wait_for(g, std::chrono::duration<double>(n_.opt.timeout),
                                  [&] { return !c.recvq.empty() || !c.error.empty(); });
    if (!c.recvq.empty()) {
      auto m = std::move(c.recvq.front());
      c.recvq.pop_front();
      return m;
    }
    if (!c.error.empty()) throw Error("party " + std::to_string(n_.opt.me) + ": " + c.error);
    throw Error("party " + std::to_string(n_.opt.me) + ": timed out after " +
                std::to_string(static_cast<int>(n_.opt.timeout)) + " s waiting for party " + std::to_string(from) +
                " (stalled or gone)");
  }
  TcpNetwork::Impl& n_;
};

}  // namespace

TcpNetwork::TcpNetwork(const TcpOptions& opt) : impl_(std::make_unique<Impl>()) {
  impl_->opt = opt;
  if (opt.me < 0 || opt.me >= static_cast<int>(opt.parties.size()))
    throw ArgError("party id " + std::to_string(opt.me) + " is not in the configuration");
  impl_->setup_tls();
  impl_->listen_on_my_port();
  impl_->connect_all();
}

TcpNetwork::~TcpNetwork() = default;

std::unique_ptr<Transport> TcpNetwork::endpoint() { return std::make_unique<TcpTransport>(*impl_); }

int TcpNetwork::parties() const { return static_cast<int>(impl_->opt.parties.size()); }

}  // namespace mpc
