// Wire format of the TCP/TLS transport, and its parser. Pure code (no
// sockets), shared by the transport and the fuzz entries of tests/fuzz.
//
// Each connection carries, in both directions, frames of an 8-byte header
// (a little-endian u64: the frame kind in the top 8 bits, the payload length
// in the low 56) followed by the payload:
//   kHello  once, first: "<party id>\n<session hello>", at most kMaxHello bytes
//   kData   a protocol message; its length must be exactly what the receiver
//           asks for in its next recv from this peer
//   kBye    last: the sender ends the session; the payload is a short reason
//           ("finished", "shutting down", ...), at most kMaxBye bytes
// Nothing is allocated for a frame before its header is checked against what
// the receiver expects; a receiver that has asked for nothing reads nothing
// past the next header (the peer's data waits in its own send queue and the
// kernel's socket buffers), so no peer can make us buffer unbounded data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "common.h"
#include "pool.h"
#include "stats.h"

namespace mpc {

enum class FrameKind : uint8_t { kData = 0, kHello = 1, kBye = 2 };

constexpr size_t kMaxHello = 4096;  // bytes of a hello payload
constexpr size_t kMaxBye = 256;     // bytes of a goodbye reason
constexpr uint64_t kLengthMask = (uint64_t(1) << 56) - 1;

inline uint64_t frame_header(FrameKind kind, uint64_t bytes) {
  return (static_cast<uint64_t>(kind) << 56) | (bytes & kLengthMask);
}
// A whole frame (header and payload) as bytes, for small frames (hello, bye).
std::string make_frame(FrameKind kind, const std::string& payload);

// The session ended because a peer said goodbye (not a failure of this party).
struct SessionEnded : Error {
  using Error::Error;
};

// Incremental parser of the frames arriving from one peer. The caller reads
// from the socket into space() (never more than it says), then commit()s what
// it read; expect_*() says what the next frame must be. Errors throw Error
// naming the peer; after an error the reader must not be used again.
class FrameReader {
 public:
  explicit FrameReader(std::string peer) : peer_(std::move(peer)) {}
  // Where the next bytes go and how many are wanted now (0: read nothing).
  std::pair<uint8_t*, size_t> space();
  void commit(size_t n);
  // The next frame must be a hello (the handshake) ...
  void expect_hello();
  // ... or a data frame of exactly `bytes` bytes (the receiver's next recv).
  void expect_data(size_t bytes);
  bool expecting() const { return want_ != kNothing; }
  // A complete expected frame is available: take it (bytes: its exact length).
  bool ready() const { return state_ == kDone; }
  Vec take(size_t* bytes);
  std::string take_hello();
  // The peer said goodbye (reason: sanitized text); nothing follows.
  bool ended() const { return state_ == kEnded; }
  const std::string& bye_reason() const { return bye_; }
  // Part of a frame has arrived (a connection closing now cut a message).
  bool mid_frame() const { return (state_ == kHeader && got_ > 0) || state_ == kPayload; }

 private:
  enum State { kHeader, kHeaderDone, kPayload, kDone, kEnded };
  enum Want { kNothing, kWantHello, kWantData };
  [[noreturn]] void fail(const std::string& what) const;
  void on_header();
  void start_payload();
  std::string peer_;
  State state_ = kHeader;
  Want want_ = kNothing;
  size_t want_bytes_ = 0;
  uint8_t hdr_[8];
  size_t got_ = 0;  // bytes of the header or payload read so far
  FrameKind kind_ = FrameKind::kData;
  uint64_t len_ = 0;
  Vec payload_;
  std::string bye_;
};

// The hello payload: "<id>\n<session hello>".
std::string hello_payload(int me, const std::string& hello);
struct PeerHello {
  int id = -1;
  std::string hello;
};
// Throws Error on a malformed payload (id: 1 to 3 decimal digits).
PeerHello parse_hello_payload(const std::string& payload);
// "party <me>: session refused, party <id> disagrees on <key>: ours '..', party <id>'s '..'";
// hellos are "key=value;key=value;...". Peer text is sanitized and truncated.
std::string describe_mismatch(int me, int id, const std::string& ours, const std::string& theirs);

// The cost message (distributed mode): after the outputs of a partition are opened, every
// compute party sends its own figures for that partition to the data owner and the output
// recipients, as one data frame (the receiver asks for its exact length, which follows from
// the public plan). Numbers only, never a share or a value; not counted in the stats.
// Layout, little-endian u64 words: kCostMagic, the sender's id, the number of entries, then
// per entry (weight sharing, each layer, the openings): bytes_sent, bytes_recv, rounds,
// depth, bytes_to[0..2], and the seconds as the bits of an IEEE double.
constexpr uint64_t kCostMagic = 0x3154534f43504d54ULL;  // "TMPCOST1"
constexpr size_t kCostWordsPerEntry = 8;
constexpr size_t kMaxCostEntries = size_t(1) << 16;  // a message of at most 4 MiB
inline size_t cost_message_words(size_t entries) { return 3 + kCostWordsPerEntry * entries; }
Vec encode_cost_message(int sender, const std::vector<OpCost>& entries);
// Checks a received cost message of `n` words from party `sender` announcing `entries`
// entries: returns "" and fills *out, or says (in our own words) why it is refused
// (bad header, a count or time out of range): the figures are then left out.
std::string decode_cost_message(const u64* words, size_t n, int sender, size_t entries, std::vector<OpCost>* out);

}  // namespace mpc
