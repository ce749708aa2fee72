#include "delegate/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "mpc/common.h"

namespace tflite_mpc {

namespace {

// A small JSON reader: objects, arrays, strings, numbers, true/false/null.
struct Json {
  enum Kind { kNull, kBool, kNum, kStr, kArr, kObj } kind = kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;
};

class Parser {
 public:
  Parser(const std::string& s, const std::string& file) : s_(s), file_(file) {}
  Json parse() {
    Json v = value();
    ws();
    if (i_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    size_t line = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) line += s_[k] == '\n';
    throw mpc::ArgError("party configuration " + file_ + ", line " + std::to_string(line) + ": " + what);
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  Json value() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end of file");
    if (++depth_ > kMaxDepth) fail("nested too deeply");
    Json v = nested();
    --depth_;
    return v;
  }
  Json nested() {
    const char c = s_[i_];
    Json v;
    if (c == '{') {
      v.kind = Json::kObj;
      ++i_;
      ws();
      if (s_[i_] == '}') return ++i_, v;
      for (;;) {
        ws();
        if (s_[i_] != '"') fail("expected a key string");
        std::string k = string();
        ws();
        if (s_[i_++] != ':') fail("expected ':'");
        v.obj[k] = value();
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == '}') { ++i_; return v; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Json::kArr;
      ++i_;
      ws();
      if (s_[i_] == ']') return ++i_, v;
      for (;;) {
        v.arr.push_back(value());
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        if (s_[i_] == ']') { ++i_; return v; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = Json::kStr;
      v.str = string();
      return v;
    }
    if (s_.compare(i_, 4, "true") == 0) { i_ += 4; v.kind = Json::kBool; v.b = true; return v; }
    if (s_.compare(i_, 5, "false") == 0) { i_ += 5; v.kind = Json::kBool; return v; }
    if (s_.compare(i_, 4, "null") == 0) { i_ += 4; return v; }
    const size_t n = number_length();
    if (n == 0) fail("unexpected character '" + mpc::printable(std::string(1, c)) + "'");
    v.num = std::strtod(s_.substr(i_, n).c_str(), nullptr);
    // No value here needs more; every conversion to int below stays defined.
    if (!(std::fabs(v.num) <= 1e9)) fail("number out of range: " + mpc::printable(s_.substr(i_, n)));
    i_ += n;
    v.kind = Json::kNum;
    return v;
  }
  // Length of the JSON number at i_ (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), 0 if none:
  // no nan, inf or hexadecimal, which strtod would take.
  size_t number_length() const {
    size_t j = i_;
    auto digits = [&] {
      const size_t k = j;
      while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') ++j;
      return j > k;
    };
    if (j < s_.size() && s_[j] == '-') ++j;
    if (!digits()) return 0;
    if (j < s_.size() && s_[j] == '.' && (++j, !digits())) return 0;
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      ++j;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (!digits()) return 0;
    }
    return j - i_;
  }
  std::string string() {
    std::string out;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
        const char e = s_[++i_];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  static constexpr int kMaxDepth = 32;
  const std::string& s_;
  std::string file_;
  size_t i_ = 0;
  int depth_ = 0;
};

// A short rendering of a JSON value for error messages.
std::string describe(const Json& x) {
  switch (x.kind) {
    case Json::kNull: return "null";
    case Json::kBool: return x.b ? "true" : "false";
    case Json::kNum: {
      std::ostringstream o;
      o << x.num;
      return o.str();
    }
    case Json::kStr: return "the string \"" + x.str + "\"";
    case Json::kArr: return "a list";
    default: return "an object";
  }
}

std::string dir_of(const std::string& p) {
  const size_t k = p.rfind('/');
  return k == std::string::npos ? "." : p.substr(0, k);
}

}  // namespace

PartyConfig PartyConfig::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw mpc::ArgError("cannot read party configuration '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
}

PartyConfig PartyConfig::parse(const std::string& text, const std::string& path) {
  if (text.size() > (1 << 20)) throw mpc::ArgError("party configuration " + path + ": larger than 1 MiB");
  Json root = Parser(text, path).parse();
  auto bad = [&](const std::string& what) { throw mpc::ArgError("party configuration " + path + ": " + what); };
  if (root.kind != Json::kObj) bad("the top level must be an object");
  const std::string dir = dir_of(path);
  auto resolve = [&](const std::string& p) { return p.empty() || p[0] == '/' ? p : dir + "/" + p; };
  static const char* known[] = {"protocol",   "truncation", "timeout",    "transport",     "ca",
                                "roles",      "parties",    "output",     "network",       "latency_ms",
                                "bandwidth_mbps"};
  for (auto& [k, v] : root.obj) {
    bool ok = false;
    for (auto* n : known) ok |= k == n;
    if (!ok) bad("unknown key '" + mpc::printable(k) + "' (valid: protocol, truncation, timeout, transport, ca, roles, parties, output, "
        "network, latency_ms, bandwidth_mbps)");
    (void)v;
  }
  PartyConfig c;
  c.path = path;
  auto str = [&](const char* k, std::string def) {
    auto it = root.obj.find(k);
    if (it == root.obj.end()) return def;
    if (it->second.kind != Json::kStr) bad(std::string("'") + k + "' must be a string");
    return it->second.str;
  };
  c.protocol = str("protocol", "rep3");
  c.truncation = str("truncation", "probabilistic");
  if (c.truncation != "probabilistic" && c.truncation != "exact") bad("'truncation' must be probabilistic or exact");
  c.output = str("output", "values");  // what the recipients learn: every party must agree
  if (c.output != "values" && c.output != "argmax") bad("'output' must be 'values' or 'argmax'");
  const std::string tr = str("transport", "tls");
  if (tr != "tls" && tr != "tcp-insecure") bad("'transport' must be 'tls' or 'tcp-insecure'");
  c.tls = tr == "tls";
  if (auto it = root.obj.find("timeout"); it != root.obj.end()) {
    if (it->second.kind != Json::kNum || !(it->second.num > 0 && it->second.num <= 86400))
      bad("'timeout' must be a positive number of seconds (at most a day)");
    c.timeout = it->second.num;
  }
  c.net = mpc::NetEmu::profile_named(str("network", "none"), "party configuration " + path + ": 'network': ");
  for (const char* k : {"latency_ms", "bandwidth_mbps"}) {
    auto it = root.obj.find(k);
    if (it == root.obj.end()) continue;
    const std::string what = "party configuration " + path + ": '" + k + "': ";
    const double x = it->second.kind == Json::kNum ? it->second.num : -1;  // not a number: rejected
    const bool lat = std::string(k) == "latency_ms";
    c.net.override_with(lat ? &x : nullptr, lat ? nullptr : &x, what);
  }
  c.ca = resolve(str("ca", ""));
  auto pit = root.obj.find("parties");
  if (pit == root.obj.end() || pit->second.kind != Json::kArr || pit->second.arr.size() != 3)
    bad("'parties' must list exactly 3 parties");
  c.parties.resize(3);
  c.certs.resize(3);
  c.keys.resize(3);
  std::vector<bool> seen(3, false);
  for (auto& p : pit->second.arr) {
    if (p.kind != Json::kObj) bad("each party must be an object");
    auto num = [&](const char* k) -> int {
      auto it = p.obj.find(k);
      if (it == p.obj.end() || it->second.kind != Json::kNum || it->second.num != std::floor(it->second.num))
        bad(std::string("each party needs an integer '") + k + "'");
      const double x = it->second.num;  // a value beyond int would not convert
      if (!(x >= -1 && x <= 65536)) bad(std::string("party '") + k + "' out of range");
      return static_cast<int>(x);
    };
    auto s = [&](const char* k) -> std::string {
      auto it = p.obj.find(k);
      return it == p.obj.end() || it->second.kind != Json::kStr ? "" : it->second.str;
    };
    const int id = num("id");
    if (id < 0 || id > 2 || seen[id]) bad("party ids must be 0, 1 and 2, each once");
    seen[id] = true;
    const int port = num("port");
    if (port <= 0 || port > 65535) bad("party " + std::to_string(id) + ": invalid port");
    c.parties[id] = {id, s("host").empty() ? "127.0.0.1" : s("host"), port};
    c.certs[id] = resolve(s("cert"));
    c.keys[id] = resolve(s("key"));
  }
  if (auto rit = root.obj.find("roles"); rit != root.obj.end()) {
    if (rit->second.kind != Json::kObj) bad("'roles' must be an object");
    auto& r = rit->second.obj;
    for (auto& [k, v] : r) {
      (void)v;
      if (k != "data_owner" && k != "model_owner" && k != "output_to")
        bad("unknown role '" + k + "' (valid: data_owner, model_owner, output_to)");
    }
    // A party id is a JSON integer 0, 1 or 2: not 1.5, true or "0".
    auto party_id = [&](const Json& x, const std::string& what) {
      if (x.kind != Json::kNum || x.num != std::floor(x.num) || x.num < 0 || x.num > 2)
        bad(what + " must be a party id 0, 1 or 2 (a JSON integer), got " + describe(x));
      return static_cast<int>(x.num);
    };
    auto role = [&](const char* k, int def) {
      auto it = r.find(k);
      return it == r.end() ? def : party_id(it->second, std::string("role '") + k + "'");
    };
    c.data_owner = role("data_owner", 0);
    c.model_owner = role("model_owner", 1);
    if (auto it = r.find("output_to"); it != r.end()) {
      c.output_to.clear();
      if (it->second.kind == Json::kArr) {
        for (auto& x : it->second.arr) {
          const int id = party_id(x, "each entry of 'output_to'");
          if (std::count(c.output_to.begin(), c.output_to.end(), id))
            bad("'output_to' lists party " + std::to_string(id) + " twice");
          c.output_to.push_back(id);
        }
      } else {
        c.output_to.push_back(party_id(it->second, "'output_to'"));
      }
      if (c.output_to.empty()) bad("'output_to' must name at least one party");
      std::sort(c.output_to.begin(), c.output_to.end());
    }
  }
  if (c.tls && c.ca.empty()) bad("'ca' is required with transport 'tls'");
  return c;
}

mpc::TcpOptions PartyConfig::tcp_options(int me, const std::string& hello) const {
  mpc::TcpOptions o;
  o.me = me;
  o.parties = parties;
  o.timeout = timeout;
  o.hello = hello;
  o.tls.enabled = tls;
  o.tls.ca = ca;
  if (me >= 0 && me < 3) {
    o.tls.cert = certs[me];
    o.tls.key = keys[me];
    if (tls && (o.tls.cert.empty() || o.tls.key.empty()))
      throw mpc::ArgError("party configuration " + path + ": party " + std::to_string(me) + " needs 'cert' and 'key'");
  }
  return o;
}

}  // namespace tflite_mpc
