"""Fuzz target: the TCP transport's frame reader and handshake parser
(mpc/wire.cc, through tflite_mpc._native._fuzz_parse_frames).

    python tests/fuzz/fuzz_wire.py -max_total_time=300 CORPUS_DIR

The input chooses what the receiver asks for (a hello first or not, the sizes of
the data frames it expects, how the stream is cut into reads) and the stream.
Errors must be RuntimeError naming the peer; anything else, or a crash, is a bug."""
import struct
import sys

import atheris

from fuzz_common import native

_native = native()

# Outcomes made into Python branches, so that libFuzzer's coverage (Python only:
# the extension is built without sanitizer coverage) sees which checks a run hit.
OUTCOMES = ("unknown frame kind", "protocol desync", "handshake message too large", "unexpected handshake",
            "expected the handshake", "malformed handshake message (no party id)", "party id is not a number",
            "malformed goodbye")


@atheris.instrument_func
def classify(msg):
    for i, o in enumerate(OUTCOMES):
        if o in msg:
            return i
    return -1


def seeds():
    """A few valid streams, the starting corpus. The provider takes the receiver's
    parameters from the input first, so they start the mutator off near valid
    frames rather than being exact cases."""
    hello = b"2\ntflite-mpc=1;protocol=rep3;truncation=exact;roles=0,1,0;graph=00ff"
    frame = lambda k, p: struct.pack("<Q", (k << 56) | len(p)) + p  # noqa: E731
    return [frame(1, hello) + frame(0, b"k" * 16) + frame(2, b"finished"),
            frame(0, b"x" * 8) + frame(0, b"y" * 24),
            frame(1, b"7\ngraph=1;protocol=x")]


@atheris.instrument_func
def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    hello = fdp.ConsumeBool()
    chunk = fdp.ConsumeIntInRange(1, 64)
    expect = [fdp.ConsumeIntInRange(0, 128) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        frames, bye = _native._fuzz_parse_frames(stream, expect, chunk, hello)
    except RuntimeError as e:
        msg = str(e)
        classify(msg)
        if "internal error" in msg:  # the reader's own consistency checks
            raise
        assert msg.startswith("the peer: ") or "handshake" in msg, msg
        return
    assert len(frames) <= len(expect) + hello
    for f, n in zip(frames[1:] if hello and frames else frames, expect):
        assert len(f) == n
    assert bye is None or len(bye) <= 256 + 3


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
