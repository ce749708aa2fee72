#include "wire.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace mpc {

std::string make_frame(FrameKind kind, const std::string& payload) {
  const uint64_t h = frame_header(kind, payload.size());
  std::string f(reinterpret_cast<const char*>(&h), 8);
  return f + payload;
}

void FrameReader::fail(const std::string& what) const { throw Error(peer_ + ": " + what); }

std::pair<uint8_t*, size_t> FrameReader::space() {
  switch (state_) {
    case kHeader:
      return {hdr_ + got_, 8 - got_};
    case kPayload:
      return {reinterpret_cast<uint8_t*>(payload_.data()) + got_, len_ - got_};
    default:  // a header waiting for expect_*(), a frame waiting to be taken, or the end
      return {nullptr, 0};
  }
}

void FrameReader::commit(size_t n) {
  if (n > space().second) fail("internal error: more bytes committed than asked for");
  got_ += n;
  if (state_ == kHeader && got_ == 8) {
    on_header();
  } else if (state_ == kPayload && got_ == len_) {
    if (kind_ == FrameKind::kBye) {
      bye_ = printable(std::string(reinterpret_cast<const char*>(payload_.data()), len_));
      payload_ = Vec();
      state_ = kEnded;
    } else {
      state_ = kDone;
    }
  }
}

void FrameReader::on_header() {
  uint64_t h;
  std::memcpy(&h, hdr_, 8);
  const unsigned kind = static_cast<unsigned>(h >> 56);
  len_ = h & kLengthMask;
  got_ = 0;
  if (kind > static_cast<unsigned>(FrameKind::kBye))
    fail("malformed frame header (unknown frame kind " + std::to_string(kind) + ")");
  kind_ = static_cast<FrameKind>(kind);
  if (kind_ == FrameKind::kBye) {  // accepted whenever it comes: the peer leaves
    if (len_ > kMaxBye) fail("malformed goodbye (" + std::to_string(len_) + " bytes)");
    return start_payload();
  }
  state_ = kHeaderDone;
  if (want_ != kNothing) start_payload();
}

void FrameReader::start_payload() {
  if (kind_ == FrameKind::kHello) {
    if (want_ != kWantHello) fail("unexpected handshake message after the session started");
    if (len_ > kMaxHello) fail("handshake message too large (" + std::to_string(len_) + " bytes)");
  } else if (kind_ == FrameKind::kData) {
    if (want_ == kWantHello) fail("expected the handshake, got a data frame (not a tflite-mpc party?)");
    if (len_ != want_bytes_)
      fail("protocol desync: expected a message of " + std::to_string(want_bytes_) + " bytes, got a frame of " +
           std::to_string(len_) + " bytes");
  }
  // Bounded now: kMaxHello, kMaxBye, or the size the receiver asked for.
  payload_ = Vec((len_ + 7) / 8);
  got_ = 0;
  state_ = kPayload;
  if (len_ == 0) commit(0);
}

void FrameReader::expect_hello() {
  if (want_ != kNothing || state_ == kDone) fail("internal error: a frame is already expected");
  want_ = kWantHello;
  if (state_ == kHeaderDone) start_payload();
}

void FrameReader::expect_data(size_t bytes) {
  if (want_ != kNothing || state_ == kDone) fail("internal error: a frame is already expected");
  want_ = kWantData;
  want_bytes_ = bytes;
  if (state_ == kHeaderDone) start_payload();
}

Vec FrameReader::take(size_t* bytes) {
  if (state_ != kDone) fail("internal error: no frame to take");
  *bytes = len_;
  Vec v = std::move(payload_);
  payload_ = Vec();
  state_ = kHeader;
  want_ = kNothing;
  got_ = 0;
  return v;
}

std::string FrameReader::take_hello() {
  if (state_ != kDone || kind_ != FrameKind::kHello) fail("internal error: no handshake message to take");
  size_t n = 0;
  Vec v = take(&n);
  return std::string(reinterpret_cast<const char*>(v.data()), n);
}

std::string hello_payload(int me, const std::string& hello) { return std::to_string(me) + "\n" + hello; }

PeerHello parse_hello_payload(const std::string& payload) {
  const size_t nl = payload.find('\n');
  if (nl == std::string::npos || nl == 0 || nl > 3) throw Error("malformed handshake message (no party id)");
  PeerHello h;
  h.id = 0;
  for (size_t i = 0; i < nl; ++i) {
    if (payload[i] < '0' || payload[i] > '9') throw Error("malformed handshake message (party id is not a number)");
    h.id = h.id * 10 + (payload[i] - '0');
  }
  h.hello = payload.substr(nl + 1);
  return h;
}

std::string describe_mismatch(int me, int id, const std::string& ours, const std::string& theirs) {
  auto parse = [](const std::string& s) {
    std::vector<std::pair<std::string, std::string>> kv;
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(';', i);
      if (j == std::string::npos) j = s.size();
      const std::string item = s.substr(i, j - i);
      const size_t eq = item.find('=');
      if (!item.empty()) kv.emplace_back(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
      i = j + 1;
    }
    return kv;
  };
  auto a = parse(ours), b = parse(theirs);
  std::string diff;
  for (auto& [k, v] : a) {
    const std::string* other = nullptr;
    for (auto& [k2, v2] : b)
      if (k2 == k) other = &v2;
    if (!other || *other != v)
      diff += (diff.empty() ? "" : ", ") + k + ": ours '" + v + "', party " + std::to_string(id) + "'s " +
              (other ? "'" + printable(*other) + "'" : std::string("(missing)"));
  }
  return "party " + std::to_string(me) + ": session refused, party " + std::to_string(id) + " disagrees on " +
         (diff.empty() ? "the session parameters" : diff);
}

Vec encode_cost_message(int sender, const std::vector<OpCost>& entries) {
  Vec v;
  v.reserve(cost_message_words(entries.size()));
  v.push_back(kCostMagic);
  v.push_back(static_cast<u64>(sender));
  v.push_back(entries.size());
  for (const OpCost& c : entries) {
    u64 s;
    std::memcpy(&s, &c.seconds, 8);
    for (u64 w : {c.bytes_sent, c.bytes_recv, c.rounds, c.depth, c.bytes_to[0], c.bytes_to[1], c.bytes_to[2], s})
      v.push_back(w);
  }
  return v;
}

std::string decode_cost_message(const u64* words, size_t n, int sender, size_t entries, std::vector<OpCost>* out) {
  if (entries > kMaxCostEntries || n != cost_message_words(entries)) return "it has the wrong length";
  if (words[0] != kCostMagic) return "it is not a cost message";
  if (words[1] != static_cast<u64>(sender)) return "it names another sender";
  if (words[2] != entries) return "it has the wrong number of entries";
  constexpr u64 kMaxCount = u64(1) << 53;  // bytes, rounds: beyond any real inference
  std::vector<OpCost> got(entries);
  for (size_t e = 0; e < entries; ++e) {
    const u64* w = words + 3 + kCostWordsPerEntry * e;
    for (size_t k = 0; k < 7; ++k)
      if (w[k] > kMaxCount) return "a count is out of range";
    OpCost& c = got[e];
    c.bytes_sent = w[0];
    c.bytes_recv = w[1];
    c.rounds = w[2];
    c.depth = w[3];
    for (int k = 0; k < 3; ++k) c.bytes_to[k] = w[4 + k];
    if (c.bytes_to[0] + c.bytes_to[1] + c.bytes_to[2] > c.bytes_sent) return "its bytes per receiver exceed its bytes sent";
    std::memcpy(&c.seconds, &w[7], 8);
    if (!std::isfinite(c.seconds) || c.seconds < 0 || c.seconds > 1e7) return "a time is out of range";
    c.calls = 1;
  }
  *out = std::move(got);
  return "";
}

}  // namespace mpc
