"""mal3 (issue 9): security with abort against one actively corrupted party.

The fault hook (mpc/fault.h) lets one chosen party deviate on one chosen kind of message, its PRG
stream or (in the delegate) a share it holds. For every kind mal3 sends, every party and >= 20
trials each, the honest parties must either return the correct output or raise CheatingDetected,
never a wrong output; and where the deviation necessarily changes what the others use, they
must raise CheatingDetected every time. The same plans on rep3 go unnoticed (test_faults.py)."""
import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import _native

# mal3's message kinds: rep3's sharing, resharing and AND, the reveal (both holders send), and
# the verification's own messages; plus "prg" (a party's PRG output).
KINDS = ["setup", "input", "reshare", "and", "reveal", "coin", "proof", "challenge", "open", "verdict", "prg"]
MODES = ["add", "flip", "inconsistent"]
# Kinds whose alteration always reaches a check (the altered words are all used).
ALWAYS_CAUGHT = {"reshare", "and", "reveal", "proof", "open", "verdict"}

rng0 = np.random.default_rng(11)
A = rng0.integers(-128, 128, (6, 40))
B = rng0.integers(-128, 128, (40, 5))
X = rng0.integers(-128, 128, (1, 7, 6, 3))
W = rng0.integers(-127, 128, (4, 3, 3, 3))
DW = rng0.integers(-127, 128, (1, 3, 3, 3))


def conv_ref(x, w, depthwise=False):
    n, h, wd, c = x.shape
    kh, kw = w.shape[1], w.shape[2]
    oc = w.shape[3] if depthwise else w.shape[0]
    out = np.zeros((n, h, wd, oc), dtype=np.int64)
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    for ky in range(kh):
        for kx in range(kw):
            px = xp[:, ky:ky + h, kx:kx + wd, :]
            out += px * w[0, ky, kx, :] if depthwise else px @ w[:, ky, kx, :].T
    return out


AB = A @ B
WANT = [AB, A * A, conv_ref(X, W), conv_ref(X, DW, depthwise=True),
        np.clip((AB * 3 + 8) >> 4, -128, 127), (A < 0).astype(np.int64), A >> 3]


def pipeline(protocol="mal3"):
    """Three owners share; a matmul, an elementwise product, a conv and a depthwise conv, a
    second product on reshared values, a requantization, a comparison and a truncation
    (Boolean circuits: ANDs, and products turning bits into arithmetic sharings), everything
    opened to party 0 alone."""
    e = tflite_mpc.Engine(protocol)
    a, b = e.share(A, 0), e.share(B, 1)
    x, w, dw = e.share(X, 2), e.share(W, 1), e.share(DW, 0)
    ab = e.matmul(a, b)
    outs = [ab, e.mul(a, a), e.conv2d(x, w), e.depthwise_conv2d(x, dw)]
    one = e.share(np.ones((6, 5), dtype=np.int64), 2)
    outs[0] = e.mul(ab, one)  # a product of a reshared value: its messages are checked too
    # non-linear steps: a requantization (truncation and clamp), a comparison, a truncation
    outs += [e.requant(outs[0], 3, 8, 4, -128, 127), e.msb(a, 16), e.trunc(a, 3)]
    return [e.reveal(o, to=0) for o in outs]


pytestmark = pytest.mark.usefixtures("no_faults")


def outcome(protocol="mal3"):
    try:
        got = pipeline(protocol)
    except tflite_mpc.CheatingDetected as ex:
        return "abort", str(ex)
    return ("correct" if all(np.array_equal(g, w) for g, w in zip(got, WANT)) else "WRONG"), None


def test_pipeline_is_correct_without_faults():
    assert outcome() == ("correct", None)
    assert _native._fault_tampered() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_mal3_aborts_or_is_correct_for_every_deviation(kind):
    """Every party, 20 effective trials each (modes in turn, random seeds, every message of the
    kind altered from a random one on): never a wrong output. A trial whose plan altered nothing
    (e.g. 'inconsistent' on a message sent to the previous party only) does not count."""
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    for party in range(3):
        effective = aborted = attempts = 0
        while effective < 20 and attempts < 80:
            mode = MODES[attempts % 3]
            attempts += 1
            _native._fault_arm(party, kind, mode, seed=int(rng.integers(2**32)), skip=int(rng.integers(0, 2)), count=-1)
            res, msg = outcome()
            n = _native._fault_tampered()
            _native._fault_disarm()
            assert res != "WRONG", f"{kind} by party {party} ({mode}): a wrong output was returned"
            if n:
                effective += 1
                aborted += res == "abort"
                if kind in ALWAYS_CAUGHT:
                    assert res == "abort", f"{kind} by party {party} ({mode}) went unnoticed"
                    assert msg.startswith("mal3 verification") or msg.startswith("reveal")
        if kind == "reveal" and party == 0:
            assert effective == 0  # the output goes to party 0: it sends no reveal message
            continue
        assert effective == 20, f"party {party} sent too few {kind} messages for the test to mean something"
        if kind not in ("coin", "challenge"):
            assert aborted > 0


def test_owner_altering_its_own_input_message_is_caught_when_used():
    """The sharing party's message to its next party and its own copy then differ: its later
    resharing messages use its copy, the checks use the receiver's, so the proof fails."""
    for seed in range(20):
        _native._fault_arm(0, "input", "add", seed=seed, count=1)
        assert outcome()[0] == "abort"


def test_every_altered_message_of_the_verification_aborts():
    """Each single message of the proof, challenge, opening and verdict steps, altered alone."""
    for kind, party in [("proof", 0), ("proof", 2), ("open", 1), ("verdict", 2), ("challenge", 1)]:
        skip = 0
        while True:
            _native._fault_arm(party, kind, "flip", seed=skip, skip=skip, count=1)
            res, _ = outcome()
            n = _native._fault_tampered()
            _native._fault_disarm()
            if n == 0:
                break
            # the last challenge is answered by nothing: the prover never uses it
            assert res == "abort" or (kind == "challenge"), (kind, party, skip)
            skip += 1
        assert skip > 0


def test_rep3_does_not_notice_the_same_plans():
    """The documented contrast: rep3 returns wrong outputs, silently."""
    wrong = 0
    for party in range(3):
        _native._fault_arm(party, "reshare", "add", seed=party, count=-1)
        res, _ = outcome("rep3")
        _native._fault_disarm()
        wrong += res == "WRONG"
    assert wrong == 3


def test_session_is_unusable_after_cheating_is_detected():
    e = tflite_mpc.Engine("mal3")
    a = e.share(A, 0)
    _native._fault_arm(1, "reshare", "add", seed=1, count=-1)
    p = e.mul(a, a)
    _native._fault_disarm()
    with pytest.raises(tflite_mpc.CheatingDetected, match="mal3 verification: ((elementwise )?products: the proof for party 1|party . reported)"):
        e.reveal(p)
    with pytest.raises(RuntimeError, match="cannot be reused"):
        e.reveal(a)


@pytest.mark.parametrize("level", ["scalar", "avx2", "native"])
def test_proofs_at_every_simd_level(level):
    """The proofs' kernels at a forced SIMD level (scalar, avx2: the non-AVX-512 dispatch, with
    PCLMULQDQ where the CPU has it; native: AVX-512 and VPCLMULQDQ here): honest runs verify (the prover's first-step values and the verifiers' claims come from
    different kernels, so a wrong one fails the check) and a deviation is still caught."""
    rng_ = np.random.default_rng(9)
    x = rng_.integers(-(2**30), 2**30, 700)
    try:
        if level != "native":
            _native.force_simd_level(level)
        e = tflite_mpc.Engine("mal3")
        X = e.share(x, 0)
        assert np.array_equal(e.reveal(e.msb(X, 32)), (x < 0).astype(np.int64))
        assert np.array_equal(e.reveal(e.mul(X, X)), x * x)
        e = tflite_mpc.Engine("mal3")
        X = e.share(x, 0)
        _native._fault_arm(1, "and", "add", seed=5, count=1)
        m = e.msb(X, 32)
        assert _native._fault_tampered()
        _native._fault_disarm()
        with pytest.raises(tflite_mpc.CheatingDetected):
            e.reveal(m)
    finally:
        _native._fault_disarm()
        _native.force_simd_level("")


def test_nonlinear_primitives(rng_=np.random.default_rng(4)):
    """Comparison, exact truncation at every shift, bit decomposition, probabilistic truncation
    (mal3 rounds to nearest: within its contract), ReLU, at the edges of their ranges."""
    e = tflite_mpc.Engine("mal3")
    x = rng_.integers(-(2**40), 2**40, 600)
    x[:6] = [0, -1, 1, 2**40 - 1, -(2**40), -(2**39)]
    X = e.share(x, 1)
    assert np.array_equal(e.reveal(e.msb(X, 42)), (x < 0).astype(np.int64))
    d = np.arange(600) % 63
    big = rng_.integers(-(2**62), 2**62, 600)
    big[:4] = [2**62 - 1, -(2**62), -1, 0]
    B = e.share(big, 2)
    assert np.array_equal(e.reveal(e.trunc(B, list(d))), big >> d)
    assert np.array_equal(e.reveal(e.trunc_pr(B, 7)), (big + 64) >> 7)  # rounds to nearest
    bits = e.bits(X, 64)
    assert all(np.array_equal(e.reveal(b), (x >> i) & 1) for i, b in enumerate(bits))
    assert np.array_equal(e.reveal(e.relu(X, 42)), np.maximum(x, 0))


def test_verification_cost_is_small_and_logarithmic():
    """The proof's traffic and rounds grow with log2 of the compressed claim, not with the
    tensors: a 16x larger product adds rounds only for its doubling steps."""
    def cost(m):
        e = tflite_mpc.Engine("mal3")
        a = e.share(np.ones((m, 64), dtype=np.int64), 0)
        b = e.share(np.ones((64, m), dtype=np.int64), 1)
        e.reveal(e.matmul(a, b), to=0)
        v = e.stats()[0]["verify"]
        return v["rounds"], v["bytes_sent"]
    r1, b1 = cost(16)
    r2, b2 = cost(256)
    assert r1 == r2  # the claim of a matmul is 2K long whatever M and N are
    assert b1 == b2 < 20000
    e = tflite_mpc.Engine("mal3")
    x = e.share(np.arange(4096), 0)
    e.reveal(e.mul(x, x), to=0)
    v = e.stats()[0]["verify"]
    # coin, the 16-ary first step (8192 cross terms -> 512 groups), 10 halving steps (514 -> 1:
    # odd lengths gain a zero), open, verdict
    assert v["rounds"] == 1 + 2 * (1 + 10) + 2


def test_large_products_are_proven_in_bounded_pieces():
    """An elementwise product larger than the proof's memory bound (2^20 cross terms) runs in
    chunks, each proven when the bound is reached: exact, and a deviation in any chunk is still
    caught; the proof count grows with the size (the price of bounded memory)."""
    n = 1_100_000  # 2 cross terms per element: 3 chunks
    x = np.arange(n, dtype=np.int64) - n // 2
    e = tflite_mpc.Engine("mal3")
    X = e.share(x, 0)
    assert np.array_equal(e.reveal(e.mul(X, X)), x * x)
    assert e.stats()[0]["verify"]["calls"] >= 3
    e = tflite_mpc.Engine("mal3")
    X = e.share(x, 0)
    _native._fault_arm(2, "reshare", "add", seed=3, skip=2, count=1)  # in the third chunk
    p = e.mul(X, X)
    tampered = _native._fault_tampered()
    _native._fault_disarm()
    assert tampered
    with pytest.raises(tflite_mpc.CheatingDetected):
        e.reveal(p)


def test_galois_ring_product_is_the_polynomial_product_mod_f():
    """GR(2^64, 48) = Z_2^64[X] / (X^48 + X^11 + X^5 + X + 1), checked against exact integer
    polynomial arithmetic; and X generates a field modulo 2 (f irreducible): X^(2^48) = X."""
    f = {0: 1, 1: 1, 5: 1, 11: 1}

    def mul(a, b):
        c = [0] * 95
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                c[i + j] += int(x) * int(y)
        for k in range(94, 47, -1):
            for e in f:
                c[k - 48 + e] -= c[k]
            c[k] = 0
        return [v % 2**64 for v in c[:48]]

    rng = np.random.default_rng(5)
    for _ in range(5):
        a = rng.integers(0, 2**64, 48, dtype=np.uint64)
        b = rng.integers(0, 2**64, 48, dtype=np.uint64)
        assert [int(v) for v in _native._gr_mul(a, b)] == mul(a, b)
    x = np.zeros(48, dtype=np.uint64)
    x[1] = 1
    p = x.copy()
    for _ in range(48):  # p = X^(2^48) modulo 2
        p = _native._gr_mul(p, p) & np.uint64(1)
    assert np.array_equal(p, x)
    with pytest.raises(ValueError):
        _native._gr_mul(np.zeros(3, dtype=np.uint64), x)


@pytest.fixture(params=["avx2", "native"])
def simd_level(request):
    """A forced SIMD level for a kernel test (native: AVX-512, VPCLMULQDQ and GFNI where the CPU
    has them; avx2: the portable vector clones)."""
    if request.param != "native":
        _native.force_simd_level(request.param)
    yield request.param
    _native.force_simd_level("")


def test_galois_ring_vector_kernels(simd_level):
    """The proof's vector kernels (blocked matrix-product inner products, the register fold by
    an element of A) against element-by-element polynomial products (_gr_mul), at lengths
    around their blocks (4-row tiles, 256-element chunks), with words near 2^64."""
    rng = np.random.default_rng(6)

    def gsum(vs):
        return [sum(int(v[j]) for v in vs) % 2**64 for j in range(48)]

    for n in (1, 3, 255, 256, 257, 600):
        a = rng.integers(0, 2**64, (2 * n, 48), dtype=np.uint64)
        b = rng.integers(0, 2**64, (2 * n, 48), dtype=np.uint64)
        if n == 3:
            a[:], b[:] = np.uint64(2**64 - 1), np.uint64(2**64 - 2)
        want = gsum([_native._gr_mul(a[k], b[k]) for k in range(2 * n)])
        assert [int(v) for v in _native._gr_vec("inner", a, b, 0)] == want
        want = gsum([_native._gr_mul(a[n + k] - a[k], b[n + k] - b[k]) for k in range(n)])
        assert [int(v) for v in _native._gr_vec("inner_diff", a, b, 0)] == want
        for r in (1, 2**48 - 1, int(rng.integers(0, 2**48))):
            rv = np.array([(r >> j) & 1 for j in range(48)], dtype=np.uint64)
            got = _native._gr_vec("fold", a, b, r)
            for k in range(n):
                assert np.array_equal(got[k], a[k] + _native._gr_mul(rv, a[n + k] - a[k])), (n, r, k)


def test_word_lane_kernels(simd_level):
    # the elementwise proof's first step on words in groups of K (alpha_g in A per group: its
    # bits select coefficients), against GR arithmetic in Python; bits of words selecting
    # coefficients to XOR (the AND proof's bit-sliced sums)
    rng = np.random.default_rng(7)
    M = 2**64
    for K, G in ((8, 1), (8, 5), (16, 3), (16, 37), (32, 6)):
        al = rng.integers(0, 2**48, G, dtype=np.uint64)
        X = rng.integers(0, 2**64, K * G, dtype=np.uint64)
        Y = rng.integers(0, 2**64, K * G, dtype=np.uint64)
        bits = [[(int(al[g]) >> c) & 1 for c in range(48)] for g in range(G)]
        T = _native._lane_kernel("spread_acc", al, X, X)
        for c in range(48):
            for s in range(K):
                assert int(T[K * c + s]) == sum(bits[g][c] * int(X[K * g + s]) for g in range(G)) % M
        N = _native._lane_kernel("moments", al, X, Y)
        for c in (0, 1, 17, 47):
            for s in range(K):
                for t in range(K):
                    want = sum(bits[g][c] * int(X[K * g + s]) * int(Y[K * g + t]) for g in range(G)) % M
                    assert int(N[(c * K + s) * K + t]) == want, (K, G, c, s, t)
        coef = rng.integers(0, 2**64, (K, 48), dtype=np.uint64)
        for with_alpha in (True, False):
            got = _native._lane_kernel("combine", al if with_alpha else np.zeros(0, np.uint64), X, coef)
            for g in range(G):
                w = np.zeros(48, dtype=np.uint64)
                for s in range(K):
                    w += coef[s] * X[K * g + s]
                if with_alpha:
                    w = _native._gr_mul(np.array(bits[g], dtype=np.uint64), w)
                assert np.array_equal(got[g], w), (K, G, g, with_alpha)
    for n in (1, 5, 300):
        u = rng.integers(0, 2**48, n, dtype=np.uint64)
        x = rng.integers(0, 2**64, n, dtype=np.uint64)
        y = rng.integers(0, 2**64, n, dtype=np.uint64)
        v = x & y
        want = [0] * 64
        for k in range(n):
            for b in range(64):
                if (int(v[k]) >> b) & 1:
                    want[b] ^= int(u[k])
        assert [int(w) for w in _native._lane_kernel("xor_spread", y, x, u)] == want


def test_and_proof_kernels_with_and_without_pclmul_agree():
    # dot products, folds and first steps of the GF(2^64) proof: PCLMULQDQ, AVX-512 and portable
    # builds, GFNI where the CPU has it (lengths below, at and off multiples of the 8-word
    # vectors; the GFNI first step from 256 words on)
    for seed, n in ((1, 1), (2, 7), (3, 1000), (4, 13), (5, 1003)):
        assert _native._gf_kernels_agree(seed, n)
    # with the dispatch forced below AVX-512, the portable first step against the definition
    try:
        _native.force_simd_level("avx2")
        assert _native._gf_kernels_agree(6, 1003)
    finally:
        _native.force_simd_level("")


# ---------------------------------------------------------------- through the delegate
@pytest.fixture(scope="module")
def digits():
    from tflite_mpc import modelgen
    model = modelgen.digits_cnn()[0]
    xs = [modelgen.random_input(model, seed=s) for s in (5, 6)]
    return model, xs, [modelgen.run_tflite(model, x, reference=True)[0] for x in xs]


@pytest.mark.parametrize("truncation", ["exact", "probabilistic"])
def test_digits_cnn_under_mal3(digits, truncation):
    """conv, conv, max pool, reshape, fully connected, softmax: exact is bit-identical to
    TFLite's reference kernels, probabilistic within 1 LSB; the report names the protocol and
    the proof's own costs."""
    from tflite_mpc import modelgen
    model, xs, wants = digits
    d = tflite_mpc.load_delegate(truncation=truncation, protocol="mal3")
    for x, want in zip(xs, wants):
        got = modelgen.run_tflite(model, x, reference=False, delegates=[d])[0]
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).max()
        assert diff == 0 if truncation == "exact" else diff <= 1
    r = tflite_mpc.report(d)
    assert r["protocol"] == "mal3"


@pytest.mark.parametrize("kind, party", [("share", 1), ("reshare", 2), ("and", 0), ("prg", 2)])
def test_delegate_aborts_where_rep3_returned_wrong_outputs(digits, kind, party):
    """The plans under which rep3 returns wrong outputs silently (test_faults.py): mal3 fails the
    inference with the failed check named, and a new session is correct again."""
    from tflite_mpc import modelgen
    model, xs, wants = digits
    _native._fault_arm(party, kind, "add", seed=11, count=-1)
    d = tflite_mpc.load_delegate(truncation="exact", protocol="mal3")
    with pytest.raises(RuntimeError, match="mal3 verification|reveal: the two parties"):
        modelgen.run_tflite(model, xs[0], reference=False, delegates=[d])
    assert _native._fault_tampered() > 0
    _native._fault_disarm()
    d = tflite_mpc.load_delegate(truncation="exact", protocol="mal3")
    assert np.array_equal(modelgen.run_tflite(model, xs[0], reference=False, delegates=[d])[0], wants[0])


def test_three_processes_over_tls(tmp_path):
    """Distributed mode: the data owner here, parties 1 and 2 as `tflite-mpc party` processes,
    protocol mal3 from the party configuration: the same output as TFLite's reference kernels,
    and the handshake names the protocol (a rep3 party would refuse a mal3 session)."""
    import json
    from tflite_mpc import modelgen
    from distributed_helpers import Parties, client, infer, make_session
    d = str(tmp_path)
    cfg, model, paths = make_session(d)
    conf = json.load(open(cfg))
    conf["protocol"] = "mal3"
    json.dump(conf, open(cfg, "w"))
    ps = Parties(cfg, {1: paths["model"], 2: paths["public"]}, d)
    try:
        ps.start_all([1, 2])
        it, dlg = client(cfg, paths["public"])
        x = modelgen.random_input(model, seed=3)[0]
        assert np.array_equal(infer(it, x), modelgen.run_tflite(model, [x], reference=True)[0])
        rep = tflite_mpc.report(dlg)
        assert rep["protocol"] == "mal3" and rep.parties_seen == [0, 1, 2]
        del it, dlg
    finally:
        ps.stop()


def test_requant_range_guard_covers_every_broadcast_combination():
    """Parameters broadcast as v[i % size]: with sizes 2 and 3 the pair (mult[1], add[2]) first
    meets at element 5. The fused requantization computes every combination exactly, that one
    included (far outside the composition's exact range); where the fused circuit does not fit
    (d + span bits > 64) mal3 composes, and the composition's range guard sees that pair too
    and refuses (a guard that looked at three combinations only let it through)."""
    e = tflite_mpc.Engine("mal3")
    x = e.share(np.arange(6), 0)
    mult, add = np.array([1, 2**30] * 3, dtype=object), np.array([0, 0, -(2**62) + 2**40] * 2, dtype=object)
    got = e.reveal(e.requant(x, [1, 2**30], [0, 0, -(2**62) + 2**40], 31, -128, 127))
    want = [min(max(int(v) >> 31, -128), 127) for v in np.arange(6).astype(object) * mult + add]
    assert list(got) == want
    with pytest.raises(ValueError, match="mal3: requantization"):  # d = 50, span 2^16: composed
        e.requant(x, [1, 2**30], [0, 0, -(2**62) + 2**40], 50, -32768, 32767)
    ok = e.requant(x, [1, 2**30], [0, 0, -(2**40)], 50, -32768, 32767)  # in range: computed
    assert np.array_equal(e.reveal(ok), np.clip((np.arange(6) * np.array([1, 2**30] * 3) + np.array([0, 0, -(2**40)] * 2)) >> 50, -32768, 32767))


def test_options():
    """protocol=mal3 is a valid option; the cost model (estimate=true) refuses it, saying why."""
    tflite_mpc.validate_options({"protocol": "mal3", "truncation": "exact"})
    with pytest.raises(ValueError, match="estimate=true supports protocol rep3 only"):
        tflite_mpc.validate_options({"protocol": "mal3", "estimate": "true"})
    with pytest.raises(ValueError, match="valid protocols are rep3, mal3"):
        tflite_mpc.validate_options({"protocol": "mal4"})


RANGES = [(-128, 8, -129), (-128, 8, 128), (-128, 8, 2**40), (0, 8, 256), (0, 8, -1),
          (-(2**31), 32, 2**31), (-(2**31), 32, -(2**31) - 1), (-5, 3, 3)]


@pytest.mark.parametrize("lo, bits, bad", RANGES, ids=[f"{lo}+2^{b}:{v}" for lo, b, v in RANGES])
def test_input_outside_its_type_range_is_caught(lo, bits, bad):
    """Protocol::check_ranges (the delegate runs it on the data owner's inputs every inference
    and on the model owner's weights once): values at both ends of [lo, lo + 2^bits) pass and
    open correctly; one value just outside (or far outside) makes the next verification raise.
    rep3 does not check (every party follows the protocol there)."""
    good = np.array([lo, lo + 2**bits - 1, lo + 1, lo + 2**(bits - 1)] * 50, dtype=np.int64)
    eng = tflite_mpc.Engine("mal3")
    x = eng.check_range(eng.share(good, 1), lo, bits)
    assert np.array_equal(eng.reveal(x), good)
    y = eng.check_range(eng.share(np.append(good, bad), 2), lo, bits)
    with pytest.raises(tflite_mpc.CheatingDetected, match="outside its tensor's type range"):
        eng.reveal(y)
    r = tflite_mpc.Engine("rep3")
    assert eng is not r and r.reveal(r.check_range(r.share(np.append(good, bad), 2), lo, bits))[-1] == bad
