"""rep3 engine: every primitive against a plaintext numpy reference, cost
accounting, view independence, and bad-input handling."""
import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import _native
import tflite_ref as ref

I32_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 2**31 - 2, -(2**31) + 1, 127, -128, 255]
U64 = np.uint64


def wrap(a):
    """Python ints -> numpy int64 with two's-complement wraparound (Z_2^64)."""
    return np.array([((int(v) + 2**63) % 2**64) - 2**63 for v in np.ravel(a)], dtype=np.int64).reshape(np.shape(a))


# ---------------------------------------------------------------- building blocks
def test_aes_fips197_vector():
    key = bytes(range(16))
    pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert _native.aes128_encrypt_block(key, pt).hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


def test_prg_stream_is_aes_ctr():
    key = bytes(range(16))
    s = _native.prg_stream(key, 5)
    for blk in range(3):
        ctr = blk.to_bytes(8, "little") + bytes(8)
        c = _native.aes128_encrypt_block(key, ctr)
        words = np.frombuffer(c, dtype=np.uint64)
        assert s[2 * blk] == words[0]
        if 2 * blk + 1 < 5:
            assert s[2 * blk + 1] == words[1]
    assert not np.array_equal(_native.prg_stream(bytes(16), 8), _native.prg_stream(bytes([1] + [0] * 15), 8))


@pytest.mark.parametrize("level", ["scalar", "avx512"])
@pytest.mark.parametrize("n,planes", [(1, 1), (63, 7), (64, 64), (65, 47), (1000, 22), (4096, 9), (70, 65)])
def test_bit_planes_every_simd_level(level, n, planes, rng):
    """The bit slicer (rep3's and mal3's carry circuits) against its definition, portable and
    AVX-512 (VBMI) paths, on lengths on and off the 64-value block."""
    if level == "avx512" and tflite_mpc.simd_level() != "avx512":
        pytest.skip("no AVX-512 here")
    v = rng.integers(0, 2**64, size=n, dtype=U64)
    try:
        _native.force_simd_level(level)
        got = _native.bit_planes(v, planes)
    finally:
        _native.force_simd_level("")
    W = (n + 63) // 64
    bits = np.zeros((n, planes), dtype=U64)  # [n, planes]; planes from 64 on are zero
    low = min(planes, 64)
    bits[:, :low] = (v[:, None] >> np.arange(low, dtype=U64)[None, :]) & U64(1)
    pad = np.zeros((W * 64, planes), dtype=U64)
    pad[:n] = bits
    want = (pad.reshape(W, 64, planes) << np.arange(64, dtype=U64)[None, :, None]).sum(axis=1, dtype=U64).T
    assert got.shape == (planes, W)
    assert np.array_equal(got.astype(U64), want)


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_gemm_every_simd_level(level, rng):
    if level == "avx512" and tflite_mpc.simd_level() != "avx512":
        pytest.skip("no AVX-512 here")
    a = rng.integers(0, 2**64, size=(37, 300), dtype=U64)
    b = rng.integers(0, 2**64, size=(300, 21), dtype=U64)
    try:
        _native.force_simd_level(level)
        got = _native.gemm_u64(a, b)
    finally:
        _native.force_simd_level("")
    assert np.array_equal(got, a @ b)  # numpy uint64 matmul wraps mod 2^64


# ---------------------------------------------------------------- sharing
@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_share_reveal_roundtrip(engine, rng, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=(3, 5, 7), dtype=dtype, endpoint=True)
    x.flat[:2] = [info.min, info.max]
    for owner in range(3):
        s = engine.share(x, owner=owner)
        assert s.shape == x.shape
        if dtype == np.uint64:
            assert np.array_equal(engine.reveal(s, signed=False), x)
        else:
            assert np.array_equal(engine.reveal(s), x.astype(np.int64))


@pytest.mark.protocols("rep3", "mal3")
def test_reveal_to_one_party(engine, rng, protocol):
    x = rng.integers(-1000, 1000, size=50)
    s = engine.share(x, owner=2)
    for to in range(3):
        engine.reset_stats()
        assert np.array_equal(engine.reveal(s, to=to), x)
        st = engine.stats()
        sent = [p["reveal"]["bytes_sent"] for p in st]
        if protocol == "rep3":  # only the recipient's next party sends, exactly one component
            assert sent[(to + 1) % 3] == 8 * x.size and sum(sent) == 8 * x.size
        else:  # mal3: both parties holding the missing component send it; the recipient compares
            assert sent[(to + 1) % 3] == sent[(to + 2) % 3] == 8 * x.size and sent[to] == 0


def test_share_components_hide_the_secret(engine):
    # No non-owner's pair of components equals the secret or a trivial function of it.
    x = np.full(1000, 12345)
    s = engine.share(x, owner=0)
    for party in (1, 2):
        a, b = engine.view(s, party)
        assert not np.array_equal(a.view(np.int64), x) and not np.array_equal(b.view(np.int64), x)
        assert not np.array_equal((a + b).view(np.int64), x)


# ---------------------------------------------------------------- linear
@pytest.mark.protocols("rep3", "mal3")
def test_linear_ops_wrap_mod_2_64(engine, rng):
    x = rng.integers(-(2**63), 2**63 - 1, size=200, dtype=np.int64)
    y = rng.integers(-(2**63), 2**63 - 1, size=200, dtype=np.int64)
    x[:4] = [2**63 - 1, -(2**63), 0, -1]
    X, Y = engine.share(x, 0), engine.share(y, 1)
    with np.errstate(over="ignore"):
        assert np.array_equal(engine.reveal(engine.add(X, Y)), x + y)
        assert np.array_equal(engine.reveal(engine.sub(X, Y)), x - y)
        assert np.array_equal(engine.reveal(engine.neg(X)), -x)
        assert np.array_equal(engine.reveal(engine.add_public(X, 7)), x + 7)
        assert np.array_equal(engine.reveal(engine.mul_public(X, -3)), x * -3)
    c = rng.integers(-5, 5, size=8)
    X2 = engine.share(rng.integers(-100, 100, size=(25, 8)), 0)
    v = engine.reveal(X2)
    assert np.array_equal(engine.reveal(engine.add_public(X2, c)), v + c)  # per-channel broadcast
    assert np.array_equal(engine.reveal(engine.mul_public(X2, c)), v * c)


# ---------------------------------------------------------------- products
@pytest.mark.protocols("rep3", "mal3")
def test_mul_elementwise_edges(engine, rng):
    e = np.array(I32_EDGES, dtype=np.int64)
    x = np.concatenate([np.repeat(e, len(e)), rng.integers(-(2**31), 2**31, size=500)])
    y = np.concatenate([np.tile(e, len(e)), rng.integers(-(2**31), 2**31, size=500)])
    got = engine.reveal(engine.mul(engine.share(x, 0), engine.share(y, 1)))
    assert np.array_equal(got, x * y)


@pytest.mark.protocols("rep3", "mal3")
def test_mul_full_ring_wraparound(engine, rng):
    x = rng.integers(0, 2**64, size=300, dtype=U64)
    y = rng.integers(0, 2**64, size=300, dtype=U64)
    got = engine.reveal(engine.mul(engine.share(x, 2), engine.share(y, 0)), signed=False)
    assert np.array_equal(got, x * y)


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 5), (64, 300, 33), (3136 // 16, 128, 128)])
def test_matmul(engine, rng, m, k, n):
    a = rng.integers(-128, 128, size=(m, k))
    b = rng.integers(-128, 128, size=(k, n))
    assert np.array_equal(engine.reveal(engine.matmul(engine.share(a, 0), engine.share(b, 1))), a @ b)
    a64 = rng.integers(0, 2**64, size=(m, k), dtype=U64)
    b64 = rng.integers(0, 2**64, size=(k, n), dtype=U64)
    got = engine.reveal(engine.matmul(engine.share(a64, 0), engine.share(b64, 1)), signed=False)
    assert np.array_equal(got, a64 @ b64)


def conv_ref(x, w, stride, dilation, padding, depthwise=False, dm=1):
    n, h, wd, c = x.shape
    if depthwise:
        kh, kw, oc = w.shape[1], w.shape[2], w.shape[3]
    else:
        oc, kh, kw = w.shape[0], w.shape[1], w.shape[2]
    ekh, ekw = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    if padding == "same":
        oh, ow = -(-h // stride), -(-wd // stride)
        pt = max(0, (oh - 1) * stride + ekh - h) // 2
        pl = max(0, (ow - 1) * stride + ekw - wd) // 2
    else:
        oh, ow = (h - ekh) // stride + 1, (wd - ekw) // stride + 1
        pt = pl = 0
    out = np.zeros((n, oh, ow, oc), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * stride - pt + ky * dilation, ox * stride - pl + kx * dilation
                    if 0 <= iy < h and 0 <= ix < wd:
                        px = x[:, iy, ix, :]
                        if depthwise:
                            out[:, oy, ox, :] += np.repeat(px, dm, axis=1) * w[0, ky, kx, :]
                        else:
                            out[:, oy, ox, :] += px @ w[:, ky, kx, :].T
    return out


@pytest.mark.parametrize("k,stride,dilation,padding", [(1, 1, 1, "same"), (3, 1, 1, "same"), (3, 2, 1, "same"),
                                                        (3, 2, 1, "valid"), (3, 1, 2, "same"), (5, 3, 1, "valid"),
                                                        (2, 2, 1, "same")])
@pytest.mark.protocols("rep3", "mal3")
def test_conv2d(engine, rng, k, stride, dilation, padding):
    x = rng.integers(-128, 128, size=(2, 9, 8, 5))
    w = rng.integers(-127, 128, size=(6, k, k, 5))
    got = engine.reveal(engine.conv2d(engine.share(x, 0), engine.share(w, 1), stride=stride, dilation=dilation,
                                      padding=padding))
    assert np.array_equal(got, conv_ref(x, w, stride, dilation, padding))


@pytest.mark.parametrize("k,stride,dilation,padding,dm", [(3, 1, 1, "same", 1), (3, 2, 1, "same", 1),
                                                           (3, 1, 2, "valid", 1), (3, 2, 1, "same", 2),
                                                           (5, 1, 1, "same", 3)])
@pytest.mark.protocols("rep3", "mal3")
def test_depthwise_conv2d(engine, rng, k, stride, dilation, padding, dm):
    x = rng.integers(-128, 128, size=(1, 10, 9, 4))
    w = rng.integers(-127, 128, size=(1, k, k, 4 * dm))
    got = engine.reveal(engine.depthwise_conv2d(engine.share(x, 0), engine.share(w, 1), stride=stride,
                                                dilation=dilation, padding=padding, depth_multiplier=dm))
    assert np.array_equal(got, conv_ref(x, w, stride, dilation, padding, depthwise=True, dm=dm))


@pytest.mark.protocols("rep3", "mal3")
def test_independent_products_share_one_round(engine, rng):
    a = [engine.share(rng.integers(-99, 99, size=(8, 8)), 0) for _ in range(4)]
    b = [engine.share(rng.integers(-99, 99, size=(8, 8)), 1) for _ in range(4)]
    engine.reset_stats()
    outs = engine.mul_many(list(zip(a, b)), matmul=True)
    st = engine.stats()
    assert all(p["mul"]["rounds"] == 1 for p in st)
    for o, x, y in zip(outs, a, b):
        assert np.array_equal(engine.reveal(o), engine.reveal(x) @ engine.reveal(y))
    # resharing traffic equals the output size, independent of the inner dimension
    assert all(p["mul"]["bytes_sent"] == 4 * 64 * 8 for p in st)


# ---------------------------------------------------------------- truncation
def trunc_inputs(rng, n=4000):
    lim = 2**62 - 1
    edges = [0, 1, -1, 2, -2, lim, -lim, 2**61, -(2**61), 2**31 - 1, -(2**31), 2**40 + 2**39, -(2**40) - 2**39]
    return np.concatenate([edges, rng.integers(-lim, lim, size=n // 2),
                           rng.integers(-(2**34), 2**34, size=n // 2)]).astype(np.int64)


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("d", [0, 1, 7, 31, 47, 62])
def test_trunc_probabilistic_within_one(engine, rng, d):
    x = trunc_inputs(rng)
    got = engine.reveal(engine.trunc_pr(engine.share(x, 1), d))
    diff = got - (x >> d)
    assert set(np.unique(diff)) <= {0, 1}
    if d == 0:
        assert np.array_equal(got, x)


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("d", [0, 1, 7, 31, 47, 62])
def test_trunc_exact_is_floor(engine, rng, d):
    x = trunc_inputs(rng)
    assert np.array_equal(engine.reveal(engine.trunc(engine.share(x, 2), d)), x >> d)


@pytest.mark.protocols("rep3", "mal3")
def test_trunc_per_channel_shifts(engine, rng):
    x = rng.integers(-(2**50), 2**50, size=(100, 6))
    d = [0, 3, 17, 31, 40, 62]
    assert np.array_equal(engine.reveal(engine.trunc(engine.share(x, 0), d)), x >> np.array(d))
    pr = engine.reveal(engine.trunc_pr(engine.share(x, 0), d)) - (x >> np.array(d))
    assert set(np.unique(pr)) <= {0, 1}


def test_trunc_probabilistic_is_unbiased(engine):
    # x = k + 1/4 (d = 2) rounds up with probability ~1/4: stochastic rounding.
    x = np.full(20000, 4 * 1000 + 1)
    got = engine.reveal(engine.trunc_pr(engine.share(x, 0), 2))
    frac_up = np.mean(got == 1001)
    assert set(np.unique(got)) <= {1000, 1001}
    assert 0.2 < frac_up < 0.3, frac_up


@pytest.mark.protocols("rep3", "mal3")
def test_round_div_pot_matches_gemmlowp(engine, rng):
    x = np.concatenate([np.array(I32_EDGES), rng.integers(-(2**31), 2**31, size=3000),
                        np.arange(-40, 41)]).astype(np.int64)
    for e in [0, 1, 2, 5, 12, 31]:
        got = engine.reveal(engine.round_div_pot(engine.share(x, 0), e, 32))
        assert np.array_equal(got, ref.rounding_divide_by_pot(x, e)), e


@pytest.mark.protocols("rep3", "mal3")
def test_requantize_exact_matches_tflite(engine, rng):
    x = np.concatenate([np.array(I32_EDGES[:-2]), rng.integers(-(2**31) + 1, 2**31, size=2000),
                        rng.integers(-5000, 5000, size=2000)]).astype(np.int64)
    for real in [0.0003, 0.0123456, 0.25, 0.5, 0.74, 0.99999, 1.5, 3.7]:
        mult, shift = ref.quantize_multiplier(real)
        xs = x if shift <= 0 else x >> shift  # keep x * 2^shift inside int32, as TFLite requires
        want = ref.multiply_by_quantized_multiplier(xs, mult, shift)
        got = engine.reveal(engine.requantize(engine.share(xs, 0), mult, shift, exact=True))
        assert np.array_equal(got, want), real
        pr = engine.reveal(engine.requantize(engine.share(xs, 0), mult, shift, exact=False))
        assert np.max(np.abs(pr - want)) <= 1, real


def _spec_out(spec, acc):
    """A fused requantization's plaintext result R(acc) clamped (the protocols' definition):
    R = floor((v - adj [v < 2^(d-1)]) / 2^d), v = acc * mult + add, as signed integers."""
    mult, add, d, adj, lo, hi = (int(t) for t in spec)
    signed = lambda u: u - (1 << 64) if u >= 1 << 63 else u  # noqa: E731
    add, lo, hi = signed(add), signed(lo), signed(hi)
    out = []
    for a in acc:
        v = int(a) * mult + add
        r = (v - (adj if v < (1 << (d - 1)) else 0)) >> d
        out.append(min(max(r, lo), hi))
    return np.array(out)


@pytest.mark.parametrize("acc_bits", [12, 18, 22, 26, 0])
def test_layer_requant_spec_arithmetic(acc_bits, rng):
    """The parameters a layer hands the fused requantization: exact mode reproduces TFLite's
    MultiplyByQuantizedMultiplier + zero point + clamp bit for bit; probabilistic mode (rounding
    to nearest with the multiplier cut to acc_bits fractional bits) stays within 1 LSB, checked
    at the accumulator's extremes where the shortened multiplier errs most."""
    ab = acc_bits or 32
    half = 1 << (ab - 1)
    for real in [0.00031, 0.0042, 0.0123456, 0.0771, 0.25, 0.7, 0.99]:
        mult, shift = ref.quantize_multiplier(real)
        for zp, lo, hi in [(-128, -128, 127), (-5, -128, 127), (3, -128, 127), (-128, -128, -1)]:
            anchor = int(rng.integers(-(1 << 20), 1 << 20)) if acc_bits else 0
            acc = np.concatenate([np.array([-half, -half + 1, -1, 0, 1, half - 2, half - 1]),
                                  rng.integers(-half, half, size=400),
                                  rng.integers(-half, -half + 4000, size=200), rng.integers(half - 4000, half, size=200)])
            x = acc + anchor
            x = x[(x >= -(2**31)) & (x < 2**31)]
            if real >= 0.5:  # keep x * 2^shift inside int32, as TFLite requires
                x = x[(x >= -(2**30)) & (x < 2**30)]
            acc = x - anchor
            want = np.clip(ref.multiply_by_quantized_multiplier(x, mult, shift) + zp, lo, hi)
            for exact in (True, False):
                spec = _native._layer_requant_spec(exact, mult, shift, zp, lo, hi, False, acc_bits, anchor)
                got = _spec_out(spec, acc) + zp
                diff = np.max(np.abs(got - want))
                if exact:
                    assert diff == 0, (real, zp, acc_bits)
                else:
                    assert diff <= 1, (real, zp, acc_bits, diff)
                    assert spec[2] == min(31 - min(shift, 0), ab)  # d' = min(d, acc_bits)


@pytest.mark.protocols("rep3", "mal3")
def test_requantize_per_channel(engine, rng):
    reals = [0.001, 0.02, 0.3, 0.0007]
    qm = [ref.quantize_multiplier(r) for r in reals]
    x = rng.integers(-(2**24), 2**24, size=(500, 4))
    want = np.stack([ref.multiply_by_quantized_multiplier(x[:, c], qm[c][0], qm[c][1]) for c in range(4)], axis=1)
    got = engine.reveal(engine.requantize(engine.share(x, 0), [m for m, _ in qm], [s for _, s in qm]))
    assert np.array_equal(got, want)


# ---------------------------------------------------------------- comparison
@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("bits", [2, 3, 8, 16, 31, 32, 33, 48, 63, 64])
def test_msb_at_boundaries(engine, rng, bits):
    lo, hi = -(2**(bits - 1)), 2**(bits - 1) - 1
    edges = [lo, lo + 1, -1, 0, 1, hi - 1, hi] + [v for k in range(bits - 1) for v in (2**k, -(2**k), 2**k - 1)]
    x = np.concatenate([np.array(edges, dtype=object).astype(np.int64),
                        rng.integers(lo, hi, size=2000, endpoint=True, dtype=np.int64)])
    x = np.clip(x, lo, hi)
    got = engine.reveal(engine.msb(engine.share(x, 2), bits))
    assert np.array_equal(got, (x < 0).astype(np.int64))


@pytest.mark.protocols("rep3", "mal3")
def test_relu_max_select_clamp(engine, rng):
    x = np.concatenate([np.array(I32_EDGES), rng.integers(-(2**31), 2**31, size=1000)]).astype(np.int64)
    y = rng.integers(-(2**31), 2**31, size=x.size)
    X, Y = engine.share(x, 0), engine.share(y, 1)
    assert np.array_equal(engine.reveal(engine.relu(X, 32)), np.maximum(x, 0))
    assert np.array_equal(engine.reveal(engine.max(X, Y, 33)), np.maximum(x, y))
    c = rng.integers(0, 2, size=x.size)
    assert np.array_equal(engine.reveal(engine.select(engine.share(c, 1), X, Y)), np.where(c == 1, x, y))
    assert np.array_equal(engine.reveal(engine.clamp(X, -128, 127, 33)), np.clip(x, -128, 127))
    lo, hi = np.array([-5, 0, -128]), np.array([5, 6, 127])
    X3 = engine.share(rng.integers(-300, 300, size=(50, 3)), 0)
    v = engine.reveal(X3)
    assert np.array_equal(engine.reveal(engine.clamp(X3, lo, hi, 16)), np.clip(v, lo, hi))


@pytest.mark.protocols("rep3", "mal3")
def test_batched_elementwise_share_rounds(engine, rng):
    xs = [engine.share(rng.integers(-1000, 1000, size=s), 0) for s in [(5,), (7, 3), (11,)]]
    engine.reset_stats()
    single = engine.relu(xs[0], 16)
    one = engine.stats()[0]["relu"]["rounds"]
    engine.reset_stats()
    flat = engine.concat(xs)
    outs = engine.split(engine.relu(flat, 16), [(5,), (7, 3), (11,)])
    assert engine.stats()[0]["relu"]["rounds"] == one
    for o, x in zip(outs, xs):
        assert np.array_equal(engine.reveal(o), np.maximum(engine.reveal(x), 0))
    assert single.shape == (5,)


# ---------------------------------------------------------------- cost accounting
OPS = {
    "mul": lambda e, x, y: e.mul(x, y),
    "trunc_pr": lambda e, x, y: e.trunc_pr(x, 12),
    "trunc": lambda e, x, y: e.trunc(x, 12),
    "msb": lambda e, x, y: e.msb(x, 32),
    "relu": lambda e, x, y: e.relu(x, 32),
    "clamp": lambda e, x, y: e.clamp(x, -128, 127, 32),
    "round_div_pot": lambda e, x, y: e.round_div_pot(x, 5, 32),
    "requantize": lambda e, x, y: e.requantize(x, 1 << 30, -3, True),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_rounds_do_not_grow_with_size(engine, rng, op):
    rounds = []
    for n in [1, 100, 20000]:
        x = engine.share(rng.integers(-(2**20), 2**20, size=n), 0)
        y = engine.share(rng.integers(-(2**20), 2**20, size=n), 1)
        engine.reset_stats()
        OPS[op](engine, x, y)
        st = engine.stats()
        rounds.append(st[0]["total"]["rounds"])
        assert st[0]["total"]["rounds"] == st[1]["total"]["rounds"] == st[2]["total"]["rounds"]
    assert rounds[0] == rounds[1] == rounds[2] and rounds[0] >= 1, rounds


def test_round_counts(engine, rng):
    x = engine.share(rng.integers(-100, 100, size=64), 0)
    # trunc_pr at d = 12: one round (OT and the radix-4 first carry layer: 6 two-bit groups),
    # ceil(log2 6) = 3 carry levels, one bit injection: the secret rounding offset costs a
    # carry circuit.
    expect = {"trunc_pr": 5, "mul": 1}
    for op, r in expect.items():
        engine.reset_stats()
        OPS[op](engine, x, x)
        assert engine.stats()[0][op]["rounds"] == r


# ---------------------------------------------------------------- privacy: a party's view
def test_views_independent_of_the_secret():
    """A party's share components must look uniform and be distributed the same for
    two different secrets (after sharing, a product and a truncation)."""
    eng = tflite_mpc.Engine("rep3")
    n = 40000
    for party in range(3):
        samples = {}
        for secret in (0, 2**40 + 12345):
            x = eng.share(np.full(n, secret), owner=(party + 1) % 3)  # someone else's input
            y = eng.mul(x, eng.share(np.full(n, 3), owner=(party + 2) % 3))
            z = eng.trunc_pr(y, 9)
            comps = []
            for s in (x, y, z):
                comps += [c.astype(U64) for c in eng.view(s, party)]
            samples[secret] = comps
        for c0, c1 in zip(samples[0], samples[2**40 + 12345]):
            if np.all(c0 == 0) and np.all(c1 == 0):
                continue  # a structurally zero component carries nothing
            for comp in (c0, c1):
                # every bit of every component is a fair coin
                bits = ((comp[:, None] >> np.arange(64, dtype=U64)) & U64(1)).mean(axis=0)
                assert np.all(np.abs(bits - 0.5) < 0.02), bits
            # low bytes: the two secrets give indistinguishable histograms (chi-square, 255 dof)
            h0 = np.bincount((c0 & U64(0xFF)).astype(np.int64), minlength=256)
            h1 = np.bincount((c1 & U64(0xFF)).astype(np.int64), minlength=256)
            tot = h0 + h1
            exp0 = tot * h0.sum() / tot.sum()
            exp1 = tot * h1.sum() / tot.sum()
            chi = np.sum((h0 - exp0) ** 2 / exp0 + (h1 - exp1) ** 2 / exp1)
            assert chi < 400, chi  # p ~ 1e-8 at 255 degrees of freedom


# ---------------------------------------------------------------- bad input
@pytest.mark.protocols("rep3", "mal3")
def test_bad_inputs_raise_python_errors(engine, rng):
    x = engine.share(np.arange(6), 0)
    y = engine.share(np.arange(7), 1)
    with pytest.raises(ValueError, match="shape"):
        engine.add(x, y)
    with pytest.raises(ValueError, match="shape"):
        engine.mul(x, y)
    with pytest.raises(ValueError, match="matmul"):
        engine.matmul(engine.share(np.ones((2, 3), dtype=np.int64)), engine.share(np.ones((2, 3), dtype=np.int64)))
    with pytest.raises(TypeError, match="integer"):
        engine.share(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="integer"):
        engine.share(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="owner"):
        engine.share(np.ones(3, dtype=np.int64), owner=3)
    with pytest.raises(ValueError, match="bit width"):
        engine.msb(x, 1)
    with pytest.raises(ValueError, match="shift"):
        engine.trunc(x, 63)
    with pytest.raises(ValueError, match="broadcast"):
        engine.add_public(x, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="padding"):
        engine.conv2d(engine.share(np.ones((1, 3, 3, 1), dtype=np.int64)),
                      engine.share(np.ones((1, 1, 1, 1), dtype=np.int64)), padding="full")
    with pytest.raises(ValueError, match="protocol"):
        tflite_mpc.Engine("nope")
    # the session is still usable after argument errors
    assert np.array_equal(engine.reveal(engine.mul(x, x)), np.arange(6) ** 2)


def test_debug_checks_catch_out_of_range_values():
    eng = tflite_mpc.Engine("rep3", debug_checks=True)
    with pytest.raises(ValueError, match="does not fit in 8 signed bits"):
        eng.msb(eng.share(np.array([1, 2, 300])), 8)
    with pytest.raises(ValueError, match="63 signed bits"):
        eng.trunc_pr(eng.share(np.array([2**62 + 5])), 4)
    assert np.array_equal(eng.reveal(eng.msb(eng.share(np.array([-5, 5])), 8)), [1, 0])


@pytest.mark.protocols("rep3", "mal3")
def test_products_with_and_without_known_zero_components(engine, rng):
    """Fresh input sharings have a publicly zero component that products skip;
    derived values (after a resharing) have none. Every pairing must agree."""
    def derived(s):  # same value, fully random components
        return engine.mul(s, engine.share(np.ones(s.shape, dtype=np.int64), 2))
    a = rng.integers(-128, 128, size=(9, 12))
    b = rng.integers(-128, 128, size=(12, 7))
    x = rng.integers(-128, 128, size=(1, 6, 5, 4))
    w = rng.integers(-127, 128, size=(3, 3, 3, 4))
    dw = rng.integers(-127, 128, size=(1, 3, 3, 4))
    for owner_a, owner_b in [(0, 1), (1, 1), (2, 0)]:
        A, B = engine.share(a, owner_a), engine.share(b, owner_b)
        for L in (A, derived(A)):
            for R in (B, derived(B)):
                assert np.array_equal(engine.reveal(engine.matmul(L, R)), a @ b)
        X, W, D = engine.share(x, owner_a), engine.share(w, owner_b), engine.share(dw, owner_b)
        for XX in (X, derived(X)):
            for WW in (W, derived(W)):
                assert np.array_equal(engine.reveal(engine.conv2d(XX, WW)), conv_ref(x, w, 1, 1, "same"))
            for DD in (D, derived(D)):
                assert np.array_equal(engine.reveal(engine.depthwise_conv2d(XX, DD)),
                                      conv_ref(x, dw, 1, 1, "same", depthwise=True))
        e1, e2 = engine.share(a, owner_a), engine.share(a[::-1].copy(), owner_b)
        for L in (e1, derived(e1)):
            for R in (e2, derived(e2)):
                assert np.array_equal(engine.reveal(engine.mul(L, R)), a * a[::-1])


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("owner", [0, 1, 2])
def test_add_public_on_an_input_sharing_then_product(engine, rng, owner):
    """add_public writes component x_0; for an input shared by party 1 that component
    was publicly zero, and products used to skip it (the conv input offset was lost
    with data_owner=1: exact mode off by up to 3 LSB)."""
    x = rng.integers(-128, 128, size=(6, 8))
    w = rng.integers(-127, 128, size=(8, 5))
    X = engine.add_public(engine.share(x, owner), 128)
    for wo in (0, 1, 2):
        W = engine.share(w, wo)
        assert np.array_equal(engine.reveal(engine.matmul(X, W)), (x + 128) @ w)
        assert np.array_equal(engine.reveal(engine.mul(X, engine.share(x, wo))), (x + 128) * x)


def test_pool_is_wiped_when_a_session_ends():
    """Pooled buffers held shares and plain values; after the session ends no cached
    block keeps any of it (blocks returned to the system allocator are wiped too)."""
    import gc
    from tflite_mpc import _native
    eng = tflite_mpc.Engine("rep3")
    x = eng.share(np.arange(1, 20001, dtype=np.int64), 0)
    y = eng.trunc(eng.mul(x, x), 3)
    assert eng.reveal(y)[5] == (36 >> 3)
    del x, y
    assert _native._pool_cached_bytes() > 0
    del eng
    gc.collect()
    assert _native._pool_cached_nonzero_bytes() == 0


# ---------------------------------------------------------------- fused requantization
def _requant_ref(x, mult, add, d, lo, hi, adj):
    """clamp(floor((v - adj [v < 2^(d-1)]) / 2^d), lo, hi), v = x mult + add, per channel."""
    C = len(mult)
    out = []
    for i, xi in enumerate(np.ravel(x)):
        c = i % C
        v = int(xi) * mult[c] + add[c]
        v -= adj[c] if v < (1 << (d[c] - 1)) else 0
        out.append(min(max(v >> d[c], lo[c]), hi[c]))
    return np.array(out, dtype=np.int64)


REQUANT_CASES = {
    # per-channel TFLite-like: double rounding (adj), ReLU6-like and no-activation bounds
    "tflite": dict(mult=[1234567, 2**30, 2**31 - 1, 1], add=[2**30, 2**30 + 2**35, 2**30 + 2**32, 2**30],
                   d=[31, 36, 33, 31], lo=[-128, 0, -1, -128], hi=[127, 6, 1, 127], adj=[0, 2**31, 2**31, 0]),
    # edges: d = 1 and d = 47 with the widest output span (2^16 - 1: d + 17 bits fill the
    # ring), zero multiplier, lo = hi
    "edges": dict(mult=[1, 2**61, 0, 3], add=[0, -(2**40), 5 * 2**10, 0], d=[1, 47, 10, 2],
                  lo=[-32768, -3, -128, 7], hi=[32767, 3, 127, 7], adj=[1, 2**46, 0, 0]),
    # d = 62 (only an output span of one value fits beside it; wider spans take the composition)
    "deep": dict(mult=[2**61, 2**40, 1, 2**50], add=[0, 2**61, -(2**61), 5], d=[62] * 4, lo=[0, -1, -1, 0],
                 hi=[0, -1, -1, 0], adj=[2**61, 0, 2**60, 0]),
    # tie correction where the clamp cuts the corrected region: hi < 0 and lo < h0
    "negative": dict(mult=[2**30] * 4, add=[2**30 + 2**31] * 4, d=[32] * 4, lo=[-128, -100, -1, 5],
                     hi=[127, -3, 1, 250], adj=[2**31] * 4),
}


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("case", sorted(REQUANT_CASES))
@pytest.mark.parametrize("acc_bits", [32, 17])
def test_requant_floor_exact_at_edges(engine, rng, case, acc_bits, protocol):
    c = REQUANT_CASES[case]
    lim = 2 ** (acc_bits - 1)
    x = rng.integers(-lim, lim, size=4000)
    edges = [0, 1, -1, lim - 1, -lim, lim - 2, -lim + 1] + [v for v in I32_EDGES if -lim <= v < lim]
    x[: len(edges)] = edges
    sx = engine.share(x, 1)
    got = engine.reveal(engine.requant(sx, c["mult"], c["add"], c["d"], c["lo"], c["hi"], c["adj"], acc_bits=acc_bits))
    want = _requant_ref(x, c["mult"], c["add"], c["d"], c["lo"], c["hi"], c["adj"])
    assert np.array_equal(got, want)
    # the generic composition (what a protocol without a fused requant runs) agrees
    if case not in ("edges", "deep") and acc_bits == 32:
        comp = engine.reveal(engine.requant(sx, c["mult"], c["add"], c["d"], c["lo"], c["hi"], c["adj"], composed=True))
        assert np.array_equal(comp, want)


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("case", sorted(REQUANT_CASES))
def test_requant_stochastic_within_one(engine, rng, case, protocol):
    c = REQUANT_CASES[case]
    x = rng.integers(-(2**31), 2**31, size=4000)
    x[: len(I32_EDGES)] = I32_EDGES
    sx = engine.share(x, 0)
    got = engine.reveal(engine.requant(sx, c["mult"], c["add"], c["d"], c["lo"], c["hi"], 0, stochastic=True))
    zero = [0] * len(c["mult"])
    down = _requant_ref(x, c["mult"], c["add"], c["d"], c["lo"], c["hi"], zero)
    up = _requant_ref(x, c["mult"], [a + (1 << d) - 1 for a, d in zip(c["add"], c["d"])], c["d"], c["lo"], c["hi"], zero)
    assert np.all((got == down) | (got == up))


def test_requant_stochastic_rounding_is_unbiased(engine):
    # v / 2^4 = k + 3/16 for every element: rounded up with probability 3/16
    n = 40000
    x = np.full(n, 16 * 5 + 3)
    got = engine.reveal(engine.requant(engine.share(x, 2), 1, 0, 4, -128, 127, 0, stochastic=True))
    assert set(np.unique(got)) <= {5, 6}
    frac = np.mean(got == 6)
    assert abs(frac - 3 / 16) < 0.01, frac


def test_requant_rounds_independent_of_size(engine, rng):
    c = REQUANT_CASES["tflite"]
    for stochastic in (False, True):
        counts = set()
        for n in (4, 4096):
            sx = engine.share(rng.integers(-(2**31), 2**31, size=n), 0)
            engine.reset_stats()
            engine.requant(sx, c["mult"], c["add"], c["d"], c["lo"], c["hi"], 0 if stochastic else c["adj"],
                           stochastic=stochastic)
            counts.add(engine.stats()[0]["requant"]["rounds"])
        # first carry layer, 4 AND levels (32-bit comparisons: 16 two-bit groups), the combine
        # of the split truncation carries, bit injection, the selecting product
        assert counts == {8}, (stochastic, counts)


@pytest.mark.protocols("rep3", "mal3")
def test_requant_wide_shift_and_span_falls_back_to_the_composition(engine, rng, protocol):
    # d = 50 and a 2^16 span need more than 64 ring bits for the fused circuits (rep3: d + 17 + 1,
    # mal3: d + 16)
    x = rng.integers(-(2**31), 2**31, size=500)
    sx = engine.share(x, 0)
    args = ([2**31 - 1], [2**39 + 2**30], [50], [-32768], [32767], [2**31])
    got = engine.reveal(engine.requant(sx, *args))
    assert np.array_equal(got, _requant_ref(x, *args))
    if protocol == "mal3":  # there mal3 composes, exact only while |v| < 2^62: beyond, refused
        with pytest.raises(ValueError, match="mal3: requantization"):
            engine.requant(sx, [2**61], [0], [50], [-32768], [32767], [0])


@pytest.mark.protocols("rep3", "mal3")
@pytest.mark.parametrize("case", sorted(REQUANT_CASES))
@pytest.mark.parametrize("stochastic", [False, True])
def test_requant_narrow_ring_chain(engine, rng, case, stochastic, protocol):
    """A product needed only as far as its requantization reads it (Product::out_bits =
    requant_reads), then the requantization with its output needed mod 2^out_bits: the output
    agrees with the reference mod 2^out_bits (and exactly at 64), at every bit-width edge of
    the truncation window and the comparisons (negative accumulators: a requantization that
    read above its declared bits would see zeros there)."""
    c = REQUANT_CASES[case]
    ab = 26
    reads = _native._requant_reads(protocol, c["mult"], c["add"], c["d"], c["lo"], c["hi"], ab)
    assert 1 <= reads <= 64
    if protocol == "mal3":
        assert reads == 64
    x = rng.integers(-(2**12), 2**12, size=4000)
    w = rng.integers(-(2**12), 2**12, size=4000)
    acc = x * w
    acc[:8] = [0, -1, 1, 2**24 - 1, -(2**24), -(2**24) + 1, 2**25 - 1, -(2**25) + 1]
    w[:8] = 1
    x[:8] = acc[:8]
    prod = engine.mul(engine.share(x, 0), engine.share(w, 1), out_bits=reads)
    if reads < 64:
        got = engine.reveal(prod, bits=reads)
        assert np.all(((got - acc) % (1 << reads)) == 0)
    adj = [0] * 4 if stochastic else c["adj"]
    want = _requant_ref(acc, c["mult"], c["add"], c["d"], c["lo"], c["hi"], adj)
    for ob in (64, 40, 17, 8, 1):
        y = engine.reveal(engine.requant(prod, c["mult"], c["add"], c["d"], c["lo"], c["hi"], adj, acc_bits=ab,
                                         stochastic=stochastic, out_bits=ob), bits=ob)
        diff = (y - want) % (1 << ob) if ob < 64 else y - want
        if stochastic:
            diff = np.minimum(diff, (-diff) % (1 << ob)) if ob < 64 else np.abs(diff)
            assert np.all(diff <= 1), (ob, int(diff.max()))
        else:
            assert np.all(diff == 0), (ob, int(np.count_nonzero(diff)))


def test_narrow_ring_messages_are_shorter(rng):
    """rep3 sends the product's resharing and the requantization's last messages in out_bits."""
    eng = tflite_mpc.Engine("rep3")
    x = eng.share(rng.integers(-128, 128, 6000), 0)
    y = eng.share(rng.integers(-128, 128, 6000), 1)

    def sent(fn):
        eng.reset_stats()
        fn()
        return max(p["total"]["bytes_sent"] for p in eng.stats())

    full, narrow = sent(lambda: eng.mul(x, y)), sent(lambda: eng.mul(x, y, out_bits=20))
    assert narrow <= full * 20 / 64 + 64, (full, narrow)
    acc = eng.mul(x, y)
    args = (acc, 1518500250, 1 << 36, 37, -128, 127)
    r64 = sent(lambda: eng.requant(*args, acc_bits=17))
    r40 = sent(lambda: eng.requant(*args, acc_bits=17, out_bits=40))
    assert r40 < r64, (r64, r40)


@pytest.mark.protocols("rep3", "mal3")
def test_requant_extreme_clamp_bounds(engine, protocol):
    # hi = 2^63 - 1: the threshold of hi + 1 must not wrap; lo = -2^63, hi = 2^63 - 1 is a span
    # beyond 2^16 (refused), not an empty one
    top = 2**63 - 1
    sx = engine.share(np.arange(-4, 4), 0)
    got = engine.reveal(engine.requant(sx, 0, 0, 1, top - 1, top))
    assert list(got) == [top - 1] * 8
    with pytest.raises(ValueError, match="lo <= hi < lo"):
        engine.requant(sx, 1, 0, 4, -(2**63), top)


def test_requant_rejects_bad_parameters(engine):
    sx = engine.share(np.arange(8), 0)
    with pytest.raises(ValueError, match="lo <= hi"):
        engine.requant(sx, 1, 0, 4, 5, 4)
    with pytest.raises(ValueError, match="adj"):
        engine.requant(sx, 1, 0, 4, 0, 6, 9)  # adj > 2^(d-1)
    with pytest.raises(ValueError, match="acc_bits"):
        engine.requant(sx, 1, 0, 4, 0, 6, acc_bits=60)
    with pytest.raises(ValueError, match="shift"):
        engine.requant(sx, 1, 0, 0, 0, 6)
