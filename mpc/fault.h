// Fault injection, for tests of active security (issue 9): compiled in, inert unless a test
// arms it (tflite_mpc._native._fault_arm). One chosen party deviates on one chosen kind of
// message, or its PRG stream, or a share it holds:
//   add           a random non-zero value added to one random word
//   flip          one random bit flipped
//   inconsistent  only the copy sent to the next party is altered (a random non-zero value
//                 added), the copy to the previous party is not: values inconsistent between
//                 the recipients (for "prg" and "share": as add). A kind the party sends only
//                 to its previous party (rep3: reshare, and, reveal) is then never altered, and
//                 tampered() stays 0: tests check it.
// Kinds are labels protocols give their messages (MsgKind in transport.h); rep3's: setup,
// input, reveal, reshare, and (the bitsliced AND of the carry tree), ot, help, radix4, b2a,
// cross (the requantization's output stage: the sender's masked coefficients); plus "prg" (the party's PRG
// output, tampered where the protocol draws it) and "share" (a layer output the party holds,
// tampered right after the kernel wrote it; the delegate applies it).
// A plan tampers with messages number skip, skip + 1, ..., skip + count - 1 of its kind sent
// by its party (count -1: every one from skip on); tampered() counts what was altered.
#pragma once
#include <string>

#include "common.h"

namespace mpc::fault {

enum class Mode { kAdd, kFlip, kInconsistent };

struct Plan {
  int party = -1;
  std::string kind;
  Mode mode = Mode::kAdd;
  u64 seed = 0;
  long skip = 0;
  long count = 1;
};

void arm(const Plan& p);
void disarm();
bool armed();  // one relaxed atomic load: the cost when nothing is armed
long tampered();
// Alters data[0..words) in place if the plan says so for party `me` sending a message of
// `kind` to `to` (-1: not a message, e.g. PRG output). Returns whether it did.
bool maybe_tamper(int me, int to, const char* kind, u64* data, size_t words);

}  // namespace mpc::fault
