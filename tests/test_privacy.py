"""A party's own view must not predict a secret-dependent outcome better than chance.

The security review's experiment: secret-share the same value many times, apply the
primitive, reveal, and try to predict each outcome from one party's shares (input and
output components), knowing the secret. With the old one-round probabilistic
truncation, whether an element rounded up was a threshold function of one component's
low bits: every party predicted 100% of outcomes. Here every party, every d, and a
learned predictor (per-bucket majority over the low bits of each share component,
trained on half the runs, scored on the other half) must stay within a small tolerance
of the base rate, and the round-up rate must match (x mod 2^d) / 2^d.
"""
import numpy as np
import pytest

import tflite_mpc

RUNS = 20000
TOL = 0.03  # accuracy above the base rate that counts as prediction


def features(engine, secrets, party, d):
    """Low-bit features of every component this party holds of each secret."""
    out = []
    for s in secrets:
        a, b = engine.view(s, party)
        a, b = a.astype(np.uint64), b.astype(np.uint64)
        for comp in (a, b, a + b, np.uint64(0) - a, np.uint64(0) - b):
            mask = np.uint64((1 << d) - 1) if d < 64 else np.uint64(~0 & (2**64 - 1))
            low = comp & mask
            shift = np.uint64(max(d - 6, 0))
            out.append((low >> shift).astype(np.int64))  # top 6 of the low d bits
    return out


def best_predictor_accuracy(feats, outcome):
    """Per-bucket majority predictor: trained on the first half, scored on the second."""
    half = len(outcome) // 2
    best = 0.0
    for f in feats:
        tr_f, te_f = f[:half], f[half:]
        tr_y, te_y = outcome[:half], outcome[half:]
        buckets = int(f.max()) + 1
        ones = np.bincount(tr_f, weights=tr_y, minlength=buckets)
        cnt = np.bincount(tr_f, minlength=buckets)
        guess = (ones * 2 > cnt).astype(np.int64)
        best = max(best, float(np.mean(guess[te_f] == te_y)))
    return best


def rounding_run(engine, d, frac, owner):
    """trunc_pr of RUNS fresh sharings of one value: outcomes are 0/1 at the right rate."""
    x = (1000 << d) + frac
    X = engine.share(np.full(RUNS, x, dtype=np.int64), owner)
    Y = engine.trunc_pr(X, d)
    up = engine.reveal(Y) - (x >> d)
    assert set(np.unique(up)) <= {0, 1}
    p = frac / 2**d
    assert abs(up.mean() - p) < 5 * np.sqrt(p * (1 - p) / RUNS) + 1e-9, (up.mean(), p)
    return X, Y, up, max(p, 1 - p)


@pytest.fixture(scope="module")
def eng():
    return tflite_mpc.Engine("rep3")


@pytest.mark.parametrize("d,frac", [(1, 1), (8, 77), (12, 1234), (20, 300001), (31, 2**30 + 12345)])
def test_trunc_pr_rounding_unpredictable(eng, d, frac):
    X, Y, up, base = rounding_run(eng, d, frac, 1)
    for party in range(3):
        acc = best_predictor_accuracy(features(eng, [X, Y], party, d), up)
        assert acc <= base + TOL, f"party {party} predicts {acc:.3f} of roundings (base rate {base:.3f})"


@pytest.mark.parametrize("d,frac", [(8, 77), (31, 2**30 + 12345)])
def test_requant_stochastic_rounding_unpredictable(eng, d, frac):
    """The fused requantization's stochastic rounding (three chunks with different OT
    senders, a secret offset per element): no party's view predicts it."""
    x = (1000 << d) + frac
    X = eng.share(np.full(RUNS, x, dtype=np.int64), 1)
    Y = eng.requant(X, 1, 0, d, -32768, 32767, 0, acc_bits=48, stochastic=True)
    up = eng.reveal(Y) - 1000
    assert set(np.unique(up)) <= {0, 1}
    p = frac / 2**d
    assert abs(up.mean() - p) < 5 * np.sqrt(p * (1 - p) / RUNS), (up.mean(), p)
    base = max(p, 1 - p)
    for party in range(3):
        acc = best_predictor_accuracy(features(eng, [X, Y], party, d), up)
        assert acc <= base + TOL, f"party {party} predicts {acc:.3f} of roundings (base rate {base:.3f})"


def test_trunc_pr_rounding_bound_with_a_short_window(eng):
    """With a rounding window shorter than d, the low d - k bits are rounded by the
    split (predictable), which moves a probability by less than 2^-k."""
    eng2 = tflite_mpc.Engine("rep3")
    eng2._set_round_bits(4)
    d = 8
    X, Y, up, base = rounding_run(eng2, d, 77, 0)
    # Given the split's own rounding bit, the outcome probability is (H + B1) / 16 with
    # H = 4 (bits 4..7 of 77): 4/16 or 5/16; the base rate is 77/256. Majority guessing
    # cannot beat the base rate here (both conditional rates are below 1/2).
    for party in range(3):
        acc = best_predictor_accuracy(features(eng2, [X, Y], party, d), up)
        assert acc <= base + TOL


def test_old_one_round_split_rounding_would_be_caught(eng):
    """The predictor is strong enough: on outcomes that ARE a threshold of a party's
    component (the old scheme), it predicts almost all of them."""
    d, frac = 8, 77
    x = (1000 << d) + frac
    X = eng.share(np.full(RUNS, x, dtype=np.int64), 1)
    a, b = eng.view(X, 0)
    b_lo = b.astype(np.uint64) & np.uint64(255)
    up = (b_lo <= np.uint64(frac - 1)).astype(np.int64)  # a threshold of party 0's component
    acc = best_predictor_accuracy(features(eng, [X], 0, d), up)
    assert acc > 0.95


@pytest.mark.parametrize("op", ["msb", "relu", "trunc", "clamp", "requant"])
def test_comparison_outcomes_unpredictable_from_output_shares(eng, op):
    """Deterministic secret-dependent outcomes (sign, clamp side, exact rounding carry):
    a party's shares of the input and the result carry no information about them."""
    rng = np.random.default_rng(7)
    x = rng.integers(-(2**20), 2**20, size=RUNS)
    # a fresh sharing that no party knows (the data owner of an input would know x)
    X = eng.mul(eng.share(x, 0), eng.share(np.ones(RUNS, dtype=np.int64), 1))
    if op == "msb":
        Y, outcome = eng.msb(X, 32), (x < 0)
    elif op == "relu":
        Y, outcome = eng.relu(X, 32), (x < 0)
    elif op == "trunc":
        Y, outcome = eng.trunc(X, 8), ((x & 255) >= 128)
    elif op == "clamp":
        Y, outcome = eng.clamp(X, -1000, 1000, 32), (np.abs(x) > 1000)
    else:  # fused requantization: which side of the clamp (computed on the accumulator)
        f = (3 * x) // 4
        Y, outcome = eng.requant(X, 3, 0, 2, -30000, 30000), (f < -30000) | (f > 30000)
    outcome = outcome.astype(np.int64)
    base = max(outcome.mean(), 1 - outcome.mean())
    for party in range(3):
        acc = best_predictor_accuracy(features(eng, [X, Y], party, 32), outcome)
        assert acc <= base + TOL, f"{op}: party {party} predicts {acc:.3f} (base {base:.3f})"
