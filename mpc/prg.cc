#include "prg.h"

#include <openssl/evp.h>
#include <sys/random.h>
#include <wmmintrin.h>
#include <immintrin.h>

#include <cerrno>
#include <cstring>

#include "cpu.h"
#include "fault.h"

namespace mpc {

void os_random_bytes(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("getrandom failed: ") + strerror(errno));
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

Key os_random_key() {
  Key k;
  os_random_bytes(k.data(), k.size());
  return k;
}

// ---------------------------------------------------------------- AES-NI
#define MPC_AES __attribute__((target("aes,sse4.1")))

MPC_AES static inline __m128i expand_step(__m128i key, __m128i gen) {
  gen = _mm_shuffle_epi32(gen, 0xff);
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  return _mm_xor_si128(key, gen);
}

MPC_AES static void expand_key(const uint8_t* key, uint8_t (*rk)[16]) {
  __m128i k[11];
  k[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
#define MPC_STEP(i, rcon) k[i] = expand_step(k[i - 1], _mm_aeskeygenassist_si128(k[i - 1], rcon))
  MPC_STEP(1, 0x01); MPC_STEP(2, 0x02); MPC_STEP(3, 0x04); MPC_STEP(4, 0x08);
  MPC_STEP(5, 0x10); MPC_STEP(6, 0x20); MPC_STEP(7, 0x40); MPC_STEP(8, 0x80);
  MPC_STEP(9, 0x1b); MPC_STEP(10, 0x36);
#undef MPC_STEP
  for (int i = 0; i < 11; ++i) _mm_store_si128(reinterpret_cast<__m128i*>(rk[i]), k[i]);
}

// Encrypt counter blocks [ctr, ctr + nblocks) into out (16 bytes each).
MPC_AES static void ctr_aesni(const uint8_t (*rkb)[16], u64 ctr, size_t nblocks, uint8_t* out) {
  __m128i rk[11];
  for (int i = 0; i < 11; ++i) rk[i] = _mm_load_si128(reinterpret_cast<const __m128i*>(rkb[i]));
  size_t b = 0;
  for (; b + 8 <= nblocks; b += 8) {
    __m128i x[8];
    for (int j = 0; j < 8; ++j) x[j] = _mm_xor_si128(_mm_set_epi64x(0, (long long)(ctr + b + j)), rk[0]);
    for (int r = 1; r < 10; ++r)
      for (int j = 0; j < 8; ++j) x[j] = _mm_aesenc_si128(x[j], rk[r]);
    for (int j = 0; j < 8; ++j)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * (b + j)), _mm_aesenclast_si128(x[j], rk[10]));
  }
  for (; b < nblocks; ++b) {
    __m128i x = _mm_xor_si128(_mm_set_epi64x(0, (long long)(ctr + b)), rk[0]);
    for (int r = 1; r < 10; ++r) x = _mm_aesenc_si128(x, rk[r]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * b), _mm_aesenclast_si128(x, rk[10]));
  }
}

// VAES: four blocks per 512-bit register, four registers in flight.
// (GCC 12's _mm512_broadcast_i32x4 starts from an undefined register and warns.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
__attribute__((target("vaes,avx512f,aes"))) static void ctr_vaes(const uint8_t (*rkb)[16], u64 ctr,
                                                                  size_t nblocks, uint8_t* out) {
  __m512i rk[11];
  for (int i = 0; i < 11; ++i)
    rk[i] = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(rkb[i])));
  const __m512i step = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
  __m512i c = _mm512_set_epi64(0, (long long)ctr + 3, 0, (long long)ctr + 2, 0, (long long)ctr + 1, 0,
                               (long long)ctr);
  size_t b = 0;
  for (; b + 16 <= nblocks; b += 16) {
    __m512i x[4];
    for (int j = 0; j < 4; ++j) {
      x[j] = _mm512_xor_si512(c, rk[0]);
      c = _mm512_add_epi64(c, step);
    }
    for (int r = 1; r < 10; ++r)
      for (int j = 0; j < 4; ++j) x[j] = _mm512_aesenc_epi128(x[j], rk[r]);
    for (int j = 0; j < 4; ++j)
      _mm512_storeu_si512(out + 16 * (b + 4 * j), _mm512_aesenclast_epi128(x[j], rk[10]));
  }
  if (b < nblocks) ctr_aesni(rkb, ctr + b, nblocks - b, out + 16 * b);
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------- OpenSSL fallback
struct Prg::Evp {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Evp() {
    if (ctx) EVP_CIPHER_CTX_free(ctx);
  }
};

static void ctr_openssl(EVP_CIPHER_CTX* ctx, const Key& key, u64 ctr, size_t nblocks, uint8_t* out) {
  // Counter block layout matches the AES-NI path: low 64 bits = ctr (little endian), high = 0.
  std::vector<uint8_t> in(16 * nblocks);
  for (size_t b = 0; b < nblocks; ++b) {
    u64 v = ctr + b;
    std::memcpy(in.data() + 16 * b, &v, 8);
  }
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
      EVP_EncryptUpdate(ctx, out, &len, in.data(), static_cast<int>(in.size())) != 1)
    throw Error("OpenSSL AES failed");
}

const char* Prg::backend() {
  return cpu().vaes512 ? "vaes" : cpu().aesni ? "aesni" : "openssl";
}

Prg::Prg(const Key& key) : key_(key) {
  if (cpu().aesni) {
    expand_key(key.data(), rk_);
  } else {
    evp_ = std::make_unique<Evp>();
    evp_->ctx = EVP_CIPHER_CTX_new();
    if (!evp_->ctx) throw Error("EVP_CIPHER_CTX_new failed");
  }
}
Prg::Prg() : Prg(os_random_key()) {}
Prg::~Prg() = default;
Prg::Prg(Prg&&) noexcept = default;
Prg& Prg::operator=(Prg&&) noexcept = default;

static void gen_blocks(const uint8_t (*rk)[16], u64 ctr, size_t nblocks, uint8_t* out,
                       void* evp, const Key& key) {
  if (evp) ctr_openssl(static_cast<EVP_CIPHER_CTX*>(evp), key, ctr, nblocks, out);
  else if (cpu().vaes512) ctr_vaes(rk, ctr, nblocks, out);
  else ctr_aesni(rk, ctr, nblocks, out);
}

void Prg::fill(u64* out, size_t n) { fill_at(skip(n), out, n); }

void Prg::fill_at(u64 block, u64* out, size_t n) {
  if (n == 0) return;
  size_t full = n / 2;
  void* evp = evp_ ? evp_->ctx : nullptr;
  // Generate in chunks so the OpenSSL path's staging buffer stays small.
  constexpr size_t kChunk = 1 << 14;
  for (size_t done = 0; done < full; done += kChunk) {
    size_t nb = std::min(kChunk, full - done);
    gen_blocks(rk_, block + done, nb, reinterpret_cast<uint8_t*>(out + 2 * done), evp, key_);
  }
  if (n & 1) {
    alignas(16) uint8_t tmp[16];
    gen_blocks(rk_, block + full, 1, tmp, evp, key_);
    std::memcpy(out + n - 1, tmp, 8);
  }
  if (owner_ >= 0 && fault::armed()) fault::maybe_tamper(owner_, -1, "prg", out, n);  // tests only
}

std::array<uint8_t, 16> Prg::encrypt_block(const Key& key, const std::array<uint8_t, 16>& in) {
  std::array<uint8_t, 16> out{};
  if (cpu().aesni) {
    alignas(16) uint8_t rk[11][16];
    expand_key(key.data(), rk);
    // encrypt one arbitrary block: reuse the CTR core on a counter equal to the block
    // is not possible for arbitrary input, so run the rounds directly.
    struct Local {
      MPC_AES static void enc(const uint8_t (*rk)[16], const uint8_t* in, uint8_t* out) {
        __m128i x = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in)),
                                  _mm_load_si128(reinterpret_cast<const __m128i*>(rk[0])));
        for (int r = 1; r < 10; ++r) x = _mm_aesenc_si128(x, _mm_load_si128(reinterpret_cast<const __m128i*>(rk[r])));
        x = _mm_aesenclast_si128(x, _mm_load_si128(reinterpret_cast<const __m128i*>(rk[10])));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), x);
      }
    };
    Local::enc(rk, in.data(), out.data());
  } else {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key.data(), nullptr);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), 16);
    EVP_CIPHER_CTX_free(ctx);
  }
  return out;
}

}  // namespace mpc
