// Pseudo-random generator: AES-128 in counter mode with hardware AES
// (AES-NI, or VAES on AVX-512 machines), keyed from the OS CSPRNG.
// Machines without AES-NI fall back to OpenSSL's EVP AES-128-CTR.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "pool.h"

namespace mpc {

using Key = std::array<uint8_t, 16>;

// 16 bytes from getrandom(2). Throws on failure; never falls back to a weak source.
Key os_random_key();
void os_random_bytes(void* out, size_t n);

class Prg {
 public:
  explicit Prg(const Key& key);
  Prg();  // keyed from the OS CSPRNG
  ~Prg();
  Prg(Prg&&) noexcept;
  Prg& operator=(Prg&&) noexcept;

  // Next n 64-bit words of the key stream (whole AES blocks are consumed, so
  // two holders of one key stay in step as long as they ask for equal sizes).
  void fill(u64* out, size_t n);
  Vec next(size_t n) {
    Vec v(n);
    fill(v.data(), n);
    return v;
  }
  u64 blocks_used() const { return counter_; }
  // Tests of active security: the party whose stream this is, so that a fault plan of kind
  // "prg" (mpc/fault.h) can alter its output; -1 (default): never altered.
  void set_owner(int party) { owner_ = party; }
  // Random access into the stream: skip() reserves the next `words` words
  // (whole blocks) and returns their first block; fill_at() generates words
  // from any block, so callers can produce a reserved range in chunks.
  u64 skip(size_t words) {
    const u64 b = counter_;
    counter_ += (words + 1) / 2;
    return b;
  }
  void fill_at(u64 block, u64* out, size_t n);  // `block` + whole words: chunk starts must be even

  // Test hook: AES-128 encryption of one block under `key` (FIPS-197 check).
  static std::array<uint8_t, 16> encrypt_block(const Key& key, const std::array<uint8_t, 16>& in);
  static const char* backend();  // "vaes", "aesni" or "openssl"

 private:
  alignas(16) uint8_t rk_[11][16];
  Key key_;
  u64 counter_ = 0;
  int owner_ = -1;
  struct Evp;
  std::unique_ptr<Evp> evp_;  // only without AES-NI
};

}  // namespace mpc
