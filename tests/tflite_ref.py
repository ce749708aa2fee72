"""Plain-integer reference of TFLite's (gemmlowp) requantization arithmetic,
written from the semantics in shared/notes/tflite-int8-semantics.md. Vectorised
with numpy int64 / Python ints so tests can compare secure results exactly."""
import numpy as np


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul(a, b) for int32 a, b (b > 0 here)."""
    a = np.asarray(a, dtype=np.int64)
    ab = a * np.int64(b) if np.isscalar(b) else a * np.asarray(b, dtype=np.int64)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    s = ab + nudge
    # C division toward zero by 2^31
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    sat = (a == np.iinfo(np.int32).min) & (np.asarray(b) == np.iinfo(np.int32).min)
    return np.where(sat, np.iinfo(np.int32).max, q)


def rounding_divide_by_pot(x, e):
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, mult, shift):
    """TFLite MultiplyByQuantizedMultiplier (default double-rounding build)."""
    shift = np.asarray(shift, dtype=np.int64)
    ls = np.maximum(shift, 0)
    rs = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(np.asarray(x, dtype=np.int64) * (np.int64(1) << ls), mult), rs)


def quantize_multiplier(m):
    """TFLite QuantizeMultiplier(double) -> (q_fixed, shift)."""
    import math
    if m == 0:
        return 0, 0
    q, shift = math.frexp(m)
    # std::round: ties away from zero (Python round() would round ties to even)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5)) if q >= 0 else -int(math.floor(-q * (1 << 31) + 0.5))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift
