"""Fault injection (mpc/fault.h), the test hook of issue 9 (active security): one chosen party
tampers with one chosen kind of message (or its PRG stream, or a share it holds) by adding a
random non-zero value, flipping a bit, or sending values inconsistent between its recipients.

rep3 is secure against semi-honest parties only: these tests show the expected contrast, that
it never notices the deviation (no error, ever) and returns wrong outputs. An actively secure
protocol (mal3) must instead abort in every trial."""
import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import _native, modelgen

# rep3's message kinds (MsgKind labels), and "prg" (a party's PRG output)
KINDS = ["setup", "input", "reshare", "and", "cross", "ot", "help", "radix4", "b2a", "reveal", "prg"]
MODES = ["add", "flip", "inconsistent"]

rng = np.random.default_rng(7)
X = rng.integers(-128, 128, 3000)
W = rng.integers(-128, 128, 3000)
WANT = [np.clip((X * W) >> 4, -128, 127), ((X * W) < 0).astype(np.int64), (X * W) >> 3]


def pipeline():
    """Input sharing by two owners, a product, a requantization, a comparison and an exact
    truncation, each opened to party 0 alone (a reveal to all would let the test harness
    compare the parties' views, which is not part of the protocol)."""
    e = tflite_mpc.Engine("rep3")
    acc = e.mul(e.share(X, 0), e.share(W, 1))
    outs = [e.requant(acc, 1, 0, 4, -128, 127), e.msb(acc, 32), e.trunc(acc, 3)]
    return [e.reveal(o, to=0) for o in outs]


pytestmark = pytest.mark.usefixtures("no_faults")


def test_pipeline_is_correct_without_faults():
    assert all(np.array_equal(g, w) for g, w in zip(pipeline(), WANT))
    assert _native._fault_tampered() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_rep3_never_detects_a_deviating_party(kind):
    """Every mode, every party, three seeds: no run ever fails, the hook did alter messages of
    this kind, and some runs return wrong outputs without any error."""
    hits = wrong = 0

    def run(mode, party, seed):
        nonlocal hits, wrong
        _native._fault_arm(party, kind, mode, seed=seed, count=-1)
        got = pipeline()  # raises nothing: rep3 has no checks
        n = _native._fault_tampered()
        _native._fault_disarm()
        hits += n > 0
        wrong += n > 0 and any(not np.array_equal(g, w) for g, w in zip(got, WANT))

    for mode in MODES:
        for party in range(3):
            for seed in range(3):
                run(mode, party, seed)
    # A kind one party sends a few times may alter only values the output never uses (an OT
    # entry not chosen, a copy party 0 does not read): more seeds until one run is wrong
    # (each altering run is wrong with probability about 1/2 for "ot").
    for seed in range(3, 23):
        if wrong:
            break
        for mode in ("add", "flip"):
            for party in range(3):
                run(mode, party, seed)
    assert hits > 0, f"no message of kind {kind!r} was sent"
    assert wrong > 0, f"tampering with {kind!r} never changed an output"


def test_plan_selects_the_messages_and_counts_them():
    # party 0 sends exactly one input message (X, to party 1): altered and counted once
    _native._fault_arm(0, "input", "flip", seed=2, count=-1)
    pipeline()
    assert _native._fault_tampered() == 1
    # inconsistent mode never alters what goes to the previous party only (party 1's part of
    # the openings to party 0)...
    _native._fault_arm(1, "reveal", "inconsistent", seed=2, count=-1)
    assert all(np.array_equal(g, w) for g, w in zip(pipeline(), WANT))
    assert _native._fault_tampered() == 0
    # ... and alters the copy to the next party: rep3's resharings send half of their words
    # each way (the product's and the requantization's: two messages to the next party)
    _native._fault_arm(0, "reshare", "inconsistent", seed=2, count=-1)
    pipeline()
    assert _native._fault_tampered() == 2
    # party 1 shares W: one input message (to party 2); the first one is W's
    _native._fault_arm(1, "input", "add", seed=3, skip=0, count=1)
    got = pipeline()
    assert _native._fault_tampered() == 1
    assert not np.array_equal(got[2], WANT[2])
    _native._fault_arm(1, "input", "add", seed=3, skip=1, count=1)  # party 1 sends one input message
    assert all(np.array_equal(g, w) for g, w in zip(pipeline(), WANT))
    assert _native._fault_tampered() == 0
    _native._fault_disarm()
    assert all(np.array_equal(g, w) for g, w in zip(pipeline(), WANT))
    for bad in [dict(party=3, kind="input"), dict(party=0, kind=""), dict(party=0, kind="input", mode="swap"),
                dict(party=0, kind="input", count=0), dict(party=0, kind="input", skip=-1)]:
        with pytest.raises(ValueError):
            _native._fault_arm(**bad)


@pytest.mark.parametrize("kind, party", [("share", 1), ("reshare", 2), ("prg", 0)])
def test_rep3_delegate_returns_wrong_outputs_silently(kind, party):
    """Through the delegate (digits CNN, exact): a party that alters a layer output it holds,
    its resharing messages, or its PRG stream makes the data owner's output wrong, and the
    inference succeeds."""
    model = modelgen.digits_cnn()[0]
    x = modelgen.random_input(model, seed=5)
    want = modelgen.run_tflite(model, x, reference=True)[0]
    _native._fault_arm(party, kind, "add", seed=11, count=-1)
    d = tflite_mpc.load_delegate(truncation="exact")
    got = modelgen.run_tflite(model, x, reference=False, delegates=[d])[0]
    assert _native._fault_tampered() > 0
    _native._fault_disarm()
    assert not np.array_equal(got, want)
    d = tflite_mpc.load_delegate(truncation="exact")
    assert np.array_equal(modelgen.run_tflite(model, x, reference=False, delegates=[d])[0], want)
