"""Integer-exact plain-Python/numpy re-implementation of TFLite's *reference*
int8 kernels (the ones ``tf.lite.Interpreter(...,
experimental_op_resolver_type=OpResolverType.BUILTIN_REF)`` runs) for

  * SOFTMAX   (activations.cc SoftmaxPrepare<kReference> /
               reference_ops::Softmax<int8_t, int8_t> in reference/softmax.h)
  * MEAN      (reduce.cc PrepareMeanOrSum + EvalMean<kReference> ->
               EvalQuantizedMean -> reference_ops::QuantizedMeanOrSum in
               reference/reduce.h)
  * AVERAGE_POOL_2D (pooling.cc AverageEval<kReference> ->
               reference_integer_ops::AveragePool)
  * ADD       (add.cc Prepare / EvalAddQuantized<kReference> ->
               reference_integer_ops::Add / BroadcastAdd...; AddFunc)

Everything is written from the TFLite / gemmlowp sources (quantization_util.cc,
internal/common.{h,cc}, gemmlowp fixedpoint/fixedpoint.h) for the default
*double-rounding* build (TFLITE_SINGLE_ROUNDING off), which is what the TF
2.21 pip wheel uses.

Verified bit-exact against BUILTIN_REF in TF 2.21 (single-op models from the
stock converter, plus copies with patched scales / zero points / beta):
SOFTMAX 2733 random inputs (rows of 10/100/1000, 2-D and 3-D, input scales
1.6e-8 .. 32, betas 0.01 .. 10), MEAN 1680 (axes (1,2) 4-D keep_dims
True/False, 1x1..13x13, equal and different in/out quantization, plus other
axes / batch > 1), AVERAGE_POOL_2D 240, ADD 200 -- 0 mismatches.

Surprises worth knowing
-----------------------
* The converter never folds a logit scale into SOFTMAX's beta
  (``tf.nn.softmax(x * b)`` -> MUL + SOFTMAX(beta=1)); beta != 1 only comes
  from other producers (tests patch the flatbuffer).
* BUILTIN_REF SOFTMAX aborts the process (SIGABRT, TFLITE_CHECK) when
  sum_of_exps >= 2^28 (real sum >= 512 -- long rows with many entries near
  the max), and in Prepare when beta*input_scale*2^26 <= 1.  The default
  (optimized, float-LUT) kernel does neither.  See ``SoftmaxAbort``.
* A 1x1 GlobalAveragePooling2D(keepdims=True) converts to an EMPTY graph
  (input tensor == output tensor, float32, no quantization); keepdims=False
  gives MEAN with identical in/out quantization.

Conventions
-----------
* "int32" values are carried in numpy int64 (or Python int) and every int32
  wrap-around that C++ would do is reproduced explicitly (``wrap32``) where it
  can happen.  All helpers accept scalars or numpy arrays (vectorised with
  np.where), and return numpy int64.
* Tensor scales are float32 in the flatbuffer; TFLite converts them to double
  (or keeps float where the C++ does).  Pass Python floats / np.float32 --
  they are rounded to float32 first, as TFLite sees them.

SOFTMAX, step by step (int8 in, int8 out with scale 1/256, zero point -128;
the output quantization is forced by Prepare)
------------------------------------------------------------------------
Prepare (kReference branch of SoftmaxPrepare):
  real  = min(double(beta_f32) * double(input_scale_f32) * 2^26, 2^31 - 1)
          (PreprocessSoftmaxScaling, kScaledDiffIntegerBits = 5, 2^(31-5))
  (multiplier, left_shift) = QuantizeMultiplierGreaterThanOne(real)
          (frexp; q_fixed = round_half_away(q * 2^31); CHECK real > 1 -- the
           process aborts if beta*scale <= 2^-26)
  diff_min = -floor(31 * 2^26 / 2^left_shift)      (CalculateInputRadius(5,
           left_shift, 31), computed in double)
Eval, per row (last axis), with max_in_row and d = max_in_row - x in [0,255]:
  1. input_diff = -d; included iff input_diff >= diff_min
  2. rescaled = SRDHM(input_diff * 2^left_shift, multiplier)      (Q5.26)
  3. e = exp_on_negative_values<IntegerBits=5>(rescaled)          (Q0.31)
     (0 for excluded d)                      -> ``softmax_exp_table``
  4. sum_of_exps (Q12.19) = sum over the row of RDBPOT(e, 12) (plain int32 adds)
                                             -> ``softmax_sum``
  5. GetReciprocal(sum, 12): hp1 = clz32(sum); nbou = 12 - hp1;
     shifted_scale = one_over_one_plus_x_for_x_in_0_1((sum << hp1) - 2^31)
     exponent = nbou + 31 - 8                 -> ``softmax_reciprocal``
  6. out = clamp(RDBPOT(SRDHM(shifted_scale, e), exponent) - 128, -128, 127)
     (excluded entries give -128; with e = 0 the formula gives -128 too)
                                             -> ``softmax_output``
The whole op is ``softmax_int8``.

MEAN (int8, any axes / keep_dims), step by step
-----------------------------------------------
Prepare (PrepareMeanOrSum): (M, s) = QuantizeMultiplier(double(in_scale) /
double(out_scale)).  Eval (kReference, TF 2.21): ALWAYS
reference_ops::QuantizedMeanOrSum<int8_t, int32_t>(compute_sum=false) -- no
separate branch for equal input/output quantization nor for the 4-D axes
(1, 2) keep_dims case (those branches existed in older TF and are only in the
kGenericOptimized path now):
  sum   = int32 sum of the raw int8 inputs over the reduced axes
  n     = number of reduced elements
  shift = min(floor(log2 n), 32, 31 + s)        (63 - clz64(n))
  M'    = (M << shift) // n     (int64, truncating), s' = s - shift
  out   = clamp(MultiplyByQuantizedMultiplier(int32(sum - in_zp * n), M', s')
                + out_zp, -128, 127)
where MultiplyByQuantizedMultiplier(x, M, s) = RDBPOT(SRDHM(x * 2^max(s,0),
M), max(-s,0)).  -> ``mean_params``, ``mean_count_multiplier``, ``mean_int8``.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    # primitives
    "wrap32", "srdhm", "rounding_divide_by_pot", "saturating_rounding_mul_by_pot",
    "rescale", "rounding_half_sum", "count_leading_zeros32", "quantize_multiplier",
    "quantize_multiplier_greater_than_one", "quantize_multiplier_smaller_than_one_exp",
    "multiply_by_quantized_multiplier", "multiply_by_quantized_multiplier_gt_one",
    "multiply_by_quantized_multiplier_smaller_than_one_exp", "tflite_round",
    # gemmlowp math
    "exp_on_interval_between_negative_one_quarter_and_0_excl",
    "exp_on_negative_values", "one_over_one_plus_x_for_x_in_0_1", "get_reciprocal",
    "calculate_input_radius",
    # softmax
    "softmax_params", "softmax_exp", "softmax_exp_table", "softmax_exp_rescaled",
    "softmax_exp_rescaled_table", "softmax_sum", "softmax_reciprocal",
    "softmax_output", "softmax_int8", "softmax_would_abort", "SoftmaxAbort",
    # mean
    "mean_params", "mean_count_multiplier", "mean_int8",
    "mean_int8_legacy_4d", "mean_int8_legacy_same_quant",
    # pooling / add
    "activation_range_int8", "compute_padding", "average_pool2d_int8",
    "add_params", "add_int8",
]


# ---------------------------------------------------------------------------
# fixed-point primitives (gemmlowp fixedpoint.h, TFLite internal/common.h)
# ---------------------------------------------------------------------------

def _i64(x):
    return np.asarray(x, dtype=np.int64)


def wrap32(x):
    """Two's-complement int32 wrap-around of an integer (array)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b):
    (a*b + nudge) / 2^31 with C truncating division, nudge = 2^30 if a*b >= 0
    else 1 - 2^30; INT32_MIN*INT32_MIN saturates to INT32_MAX."""
    a = _i64(a)
    b = _i64(b)
    ab = a * b
    s = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where((a == b) & (a == INT32_MIN), np.int64(INT32_MAX), q)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: round-half-away-from-zero x / 2^exponent."""
    x = _i64(x)
    e = _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_mul_by_pot(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raw values
    (saturating left shift for exponent > 0, RDBPOT for exponent < 0)."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    r = wrap32(x << exponent)
    r = np.where(x > threshold, np.int64(INT32_MAX), r)
    return np.where(x < -threshold, np.int64(INT32_MIN), r)


def rescale(x, src_integer_bits: int, dst_integer_bits: int):
    """gemmlowp Rescale<dst>(FixedPoint<int32, src>)."""
    return saturating_rounding_mul_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a, b):
    """gemmlowp RoundingHalfSum(int32): (a + b + sign) / 2, C division."""
    s = _i64(a) + _i64(b)
    t = s + np.where(s >= 0, np.int64(1), np.int64(-1))
    return np.where(t >= 0, t // 2, -((-t) // 2))


def count_leading_zeros32(x):
    """CountLeadingZeros(static_cast<uint32_t>(x)); 32 for 0."""
    x = _i64(x) & 0xFFFFFFFF
    v = x.copy()
    n = np.zeros(x.shape, dtype=np.int64)
    for sh in (16, 8, 4, 2, 1):
        empty = v < (np.int64(1) << (32 - sh))   # top `sh` bits are zero
        n = np.where(empty, n + sh, n)
        v = np.where(empty, (v << sh) & 0xFFFFFFFF, v)
    out = np.where(x == 0, np.int64(32), n)
    return out if out.shape else np.int64(out)


def tflite_round(v: float) -> float:
    """TfLiteRound / std::round: half away from zero."""
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def quantize_multiplier(m: float):
    """TFLite QuantizeMultiplier(double) -> (q_fixed, shift) (double-rounding
    build: no shift > 30 saturation)."""
    m = float(m)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(tflite_round(q * (1 << 31)))
    assert q_fixed <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return q_fixed, shift


def quantize_multiplier_greater_than_one(m: float):
    if not m > 1.0:
        raise ValueError("QuantizeMultiplierGreaterThanOne: TFLITE_CHECK_GT(m, 1) "
                         "fails (the TFLite process aborts)")
    q, s = quantize_multiplier(m)
    assert s >= 0
    return q, s


def quantize_multiplier_smaller_than_one_exp(m: float):
    if not (0.0 < m < 1.0):
        raise ValueError("QuantizeMultiplierSmallerThanOneExp needs 0 < m < 1")
    q, s = quantize_multiplier(m)
    assert s <= 0
    return q, s


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier(int32 x, M, shift), double rounding:
    RDBPOT(SRDHM(x * 2^max(shift,0), M), max(-shift,0)) (the left shift wraps
    like C int32)."""
    shift = _i64(shift)
    ls = np.maximum(shift, 0)
    rs = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap32(_i64(x) << ls), multiplier), rs)


def multiply_by_quantized_multiplier_gt_one(x, multiplier, left_shift):
    """MultiplyByQuantizedMultiplierGreaterThanOne: SRDHM(x * 2^ls, M)."""
    return srdhm(wrap32(_i64(x) << _i64(left_shift)), multiplier)


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, left_shift):
    """MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0):
    RDBPOT(SRDHM(x, M), -left_shift)."""
    return rounding_divide_by_pot(srdhm(x, multiplier), -_i64(left_shift))


# ---------------------------------------------------------------------------
# gemmlowp transcendental helpers (FixedPoint<int32, *> raw values)
# ---------------------------------------------------------------------------

def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out."""
    a = _i64(a)
    constant_term = 1895147668          # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))           # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(
        wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
               (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int):
    """gemmlowp exp_on_negative_values(FixedPoint<int32, integer_bits> a) ->
    Q0.31 raw value of exp(a) for a <= 0."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, mult in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, mult), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, np.int64(0), result)
    return np.where(a == 0, np.int64(INT32_MAX), result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 a in [0,1) ->
    Q0.31 raw of 1/(1+a) (Newton-Raphson, 3 iterations, in Q2.29)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    c48_17 = 1515870810
    cneg32_17 = -1010580540
    one_f2 = 1 << 29
    x = wrap32(c48_17 + srdhm(half_denominator, cneg32_17))
    for _ in range(3):
        hdx = srdhm(half_denominator, x)
        one_minus = wrap32(one_f2 - hdx)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    # Rescale<0>(ExactMulByPot<-1>(x)): same raw, F1 -> F0
    return rescale(x, 1, 0)


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal(int32 x > 0, x_integer_digits) ->
    (shifted_scale Q0.31 raw, num_bits_over_unit)."""
    x = _i64(x)
    hp1 = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - hp1
    shifted_sum_minus_one = wrap32(((x & 0xFFFFFFFF) << hp1) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """quantization_util.cc CalculateInputRadius (non-TFLITE_EMULATE_FLOAT)."""
    v = (1.0 * ((1 << input_integer_bits) - 1)
         * float(1 << (total_signed_bits - input_integer_bits))
         / float(1 << input_left_shift))
    return int(math.floor(v))


# ---------------------------------------------------------------------------
# SOFTMAX
# ---------------------------------------------------------------------------

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_ACCUMULATION_INTEGER_BITS = 12
SOFTMAX_OUTPUT_SCALE = 1.0 / 256
SOFTMAX_OUTPUT_ZERO_POINT = -128


def _f32(v) -> float:
    return float(np.float32(v))


def softmax_params(input_scale, beta=1.0) -> dict:
    """SoftmaxPrepare<kReference> for int8: PreprocessSoftmaxScaling(beta,
    input_scale, 5) and diff_min = -CalculateInputRadius(5, left_shift).

    Returns {'multiplier', 'left_shift', 'diff_min', 'real_multiplier'}.
    Raises ValueError where TFLite would abort (beta*scale*2^26 <= 1)."""
    real = min(_f32(beta) * _f32(input_scale)
               * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    mult, ls = quantize_multiplier_greater_than_one(real)
    diff_min = -calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, ls)
    return {"multiplier": mult, "left_shift": ls, "diff_min": diff_min,
            "real_multiplier": real}


def softmax_exp(d, params):
    """Q0.31 exp value for d = max_in_row - x >= 0 (array ok); 0 where
    -d < diff_min (those entries are skipped by TFLite)."""
    diff = -_i64(d)
    included = diff >= params["diff_min"]
    safe = np.where(included, diff, 0)  # avoid int32 overflow on skipped ones
    rescaled = multiply_by_quantized_multiplier_gt_one(
        safe, params["multiplier"], params["left_shift"])
    e = exp_on_negative_values(rescaled, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    return np.where(included, e, np.int64(0))


def softmax_exp_table(params) -> list:
    """256 Q0.31 int32 values: table[d] = exp value for input_diff = -d."""
    return [int(v) for v in softmax_exp(np.arange(256), params)]


def softmax_exp_rescaled(e):
    """The Q12.19 summand of one exp value: Rescale<12>(Q0.31) = RDBPOT(e, 12)."""
    return rounding_divide_by_pot(e, SOFTMAX_ACCUMULATION_INTEGER_BITS)


def softmax_exp_rescaled_table(params) -> list:
    """256 int32 values: RDBPOT(softmax_exp_table[d], 12) (so the secure sum
    can be a plain table lookup too)."""
    return [int(v) for v in softmax_exp_rescaled(softmax_exp(np.arange(256), params))]


def softmax_sum(exp_values, axis=-1):
    """sum_of_exps (FixedPoint<int32, 12> raw): plain (wrapping) int32 sum of
    RDBPOT(e, 12) along ``axis``."""
    return wrap32(np.sum(softmax_exp_rescaled(exp_values), axis=axis))


def softmax_reciprocal(sum_of_exps):
    """GetReciprocal(sum_of_exps, 12) -> (shifted_scale Q0.31, exponent) where
    exponent = num_bits_over_unit + 31 - 8 is the final RDBPOT shift.
    sum_of_exps >= 2^19 always (the max element contributes exp(0))."""
    shifted_scale, nbou = get_reciprocal(sum_of_exps, SOFTMAX_ACCUMULATION_INTEGER_BITS)
    exponent = _i64(nbou) + 31 - 8
    return shifted_scale, exponent


class SoftmaxAbort(ValueError):
    """TFLite's reference Softmax has ``TFLITE_CHECK(0 <= exponent && exponent
    <= 31)`` (tensorflow PR #62851, 2024): it aborts the whole process when
    sum_of_exps >= 2^28 raw (i.e. the real sum of exps >= 512, e.g. a long row
    whose entries are mostly within a few LSB of the row max)."""


def softmax_would_abort(sum_of_exps):
    """True where the BUILTIN_REF kernel would abort (exponent > 31)."""
    return _i64(sum_of_exps) >= (1 << 28)


def softmax_output(exp_values, shifted_scale, exponent):
    """int8 output: clamp(RDBPOT(SRDHM(shifted_scale, e), exponent) - 128).
    shifted_scale/exponent broadcast against exp_values (per row)."""
    unsat = rounding_divide_by_pot(srdhm(shifted_scale, exp_values), exponent)
    return np.clip(unsat - 128, -128, 127).astype(np.int8)


def softmax_int8(q, input_scale, beta=1.0, check=True):
    """Whole int8 SOFTMAX over the last axis of ``q`` (any leading shape).
    Raises SoftmaxAbort where the TFLite reference kernel would abort."""
    q = np.asarray(q).astype(np.int64)
    p = softmax_params(input_scale, beta)
    table = np.asarray(softmax_exp_table(p), dtype=np.int64)
    d = q.max(axis=-1, keepdims=True) - q
    e = table[d]
    s = softmax_sum(e, axis=-1)
    if check and np.any(softmax_would_abort(s)):
        raise SoftmaxAbort("TFLite's reference SOFTMAX aborts on this input "
                           "(sum_of_exps >= 2^28, exponent > 31)")
    scale, exponent = softmax_reciprocal(s)
    # (with check=False, exponent 32 is fed to RDBPOT like an unchecked build)
    return softmax_output(e, scale[..., None], exponent[..., None])


# ---------------------------------------------------------------------------
# MEAN
# ---------------------------------------------------------------------------

def mean_params(input_scale, output_scale):
    """PrepareMeanOrSum: QuantizeMultiplier(double(in_scale)/double(out_scale))."""
    return quantize_multiplier(_f32(input_scale) / _f32(output_scale))


def mean_count_multiplier(multiplier: int, shift: int, num_elements: int):
    """QuantizedMeanOrSum's folding of 1/num_elements into the multiplier."""
    n = int(num_elements)
    sh = n.bit_length() - 1            # 63 - CountLeadingZeros(uint64 n)
    sh = min(sh, 32)
    sh = min(sh, 31 + shift)
    m = (int(multiplier) << sh) // n   # int64 division, both >= 0
    m = ((m + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # static_cast<int32_t>
    return m, shift - sh


def _norm_axes(axes, ndim):
    out = []
    for a in np.atleast_1d(axes):
        a = int(a)
        a = a + ndim if a < 0 else a
        if a not in out:
            out.append(a)
    return tuple(sorted(out))


def mean_int8(q, input_scale, input_zero_point, output_scale, output_zero_point,
              axes=(1, 2), keep_dims=False):
    """int8 MEAN as BUILTIN_REF computes it in TF 2.21
    (reference_ops::QuantizedMeanOrSum, compute_sum=false), any axes."""
    q = np.asarray(q).astype(np.int64)
    ax = _norm_axes(axes, q.ndim)
    n = int(np.prod([q.shape[a] for a in ax])) if ax else 1
    if not ax:
        return q.astype(np.int8)
    m, s = mean_params(input_scale, output_scale)
    m2, s2 = mean_count_multiplier(m, s, n)
    total = wrap32(q.sum(axis=ax, keepdims=keep_dims))
    shifted = wrap32(total - int(input_zero_point) * n)
    out = multiply_by_quantized_multiplier(shifted, m2, s2) + int(output_zero_point)
    return np.clip(out, -128, 127).astype(np.int8)


def mean_int8_legacy_4d(q, input_scale, input_zero_point, output_scale,
                        output_zero_point, keep_dims=True):
    """OLD TFLite (<= ~2.15) kReference branch for 4-D, axes (1,2), keep_dims:
    reference_integer_ops::Mean: acc = sum(q - in_zp); acc = MBQM(acc, M, s);
    acc = round-half-away(acc / n); + out_zp; clamp.  NOT what TF 2.21 runs
    (kept for comparison)."""
    q = np.asarray(q).astype(np.int64)
    n = q.shape[1] * q.shape[2]
    m, s = mean_params(input_scale, output_scale)
    acc = wrap32((q - int(input_zero_point)).sum(axis=(1, 2), keepdims=keep_dims))
    acc = multiply_by_quantized_multiplier(acc, m, s)
    acc = np.where(acc > 0, (acc + n // 2) // n, -((-(acc - n // 2)) // n))
    return np.clip(acc + int(output_zero_point), -128, 127).astype(np.int8)


def mean_int8_legacy_same_quant(q, axes=(1, 2), keep_dims=False):
    """OLD TFLite kReference branch when in/out scale and zero point are equal:
    reference_ops::Mean<int8_t, int>: static_cast<int8>(sum / n) with C
    truncating division and no zero-point handling.  NOT what TF 2.21 runs."""
    q = np.asarray(q).astype(np.int64)
    ax = _norm_axes(axes, q.ndim)
    n = int(np.prod([q.shape[a] for a in ax]))
    s = q.sum(axis=ax, keepdims=keep_dims)
    r = np.where(s >= 0, s // n, -((-s) // n))
    return wrap32(r).astype(np.int8)


# ---------------------------------------------------------------------------
# AVERAGE_POOL_2D
# ---------------------------------------------------------------------------

def activation_range_int8(activation, output_scale, output_zero_point):
    """CalculateActivationRangeQuantized for int8 (activation: None/'NONE',
    'RELU', 'RELU6', 'RELU_N1_TO_1'); quantize(f) = zp + round(f / scale) in
    float32, round half away from zero."""
    qmin, qmax = -128, 127
    sc = np.float32(output_scale)
    zp = int(output_zero_point)

    def quant(f):
        return zp + int(tflite_round(float(np.float32(f) / sc)))
    act = (activation or "NONE").upper()
    if act == "RELU":
        return max(qmin, quant(0.0)), qmax
    if act == "RELU6":
        return max(qmin, quant(0.0)), min(qmax, quant(6.0))
    if act in ("RELU_N1_TO_1", "RELU1"):
        return max(qmin, quant(-1.0)), min(qmax, quant(1.0))
    return qmin, qmax


def compute_padding(in_size, filter_size, stride, padding):
    """TFLite ComputeOutSize + ComputePaddingWithOffset (dilation 1):
    returns (out_size, pad_before)."""
    padding = padding.upper()
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - filter_size + stride) // stride
    total = max((out - 1) * stride + filter_size - in_size, 0)
    return out, total // 2


def average_pool2d_int8(q, filter_hw, strides=None, padding="VALID",
                        activation=None, output_scale=None, output_zero_point=0):
    """reference_integer_ops::AveragePool on NHWC int8 (input and output share
    quantization, so no rescale): per window, acc = sum of the raw int8 values
    that lie inside the input (padding excluded from the count),
    acc = acc > 0 ? (acc + cnt/2) / cnt : (acc - cnt/2) / cnt  (C division ->
    round half away from zero), then clamp to the activation range."""
    q = np.asarray(q).astype(np.int64)
    fh, fw = filter_hw
    sh, sw = strides if strides is not None else (fh, fw)
    b, h, w, c = q.shape
    oh, ph = compute_padding(h, fh, sh, padding)
    ow, pw = compute_padding(w, fw, sw, padding)
    if activation and output_scale is not None:
        amin, amax = activation_range_int8(activation, output_scale, output_zero_point)
    else:
        amin, amax = -128, 127
    out = np.empty((b, oh, ow, c), dtype=np.int64)
    for oy in range(oh):
        y0 = oy * sh - ph
        ys, ye = max(0, y0), min(h, y0 + fh)
        for ox in range(ow):
            x0 = ox * sw - pw
            xs, xe = max(0, x0), min(w, x0 + fw)
            cnt = (ye - ys) * (xe - xs)
            acc = q[:, ys:ye, xs:xe, :].sum(axis=(1, 2))
            r = np.where(acc > 0, (acc + cnt // 2) // cnt,
                         -((-(acc - cnt // 2)) // cnt))
            out[:, oy, ox, :] = r
    return np.clip(out, amin, amax).astype(np.int8)


# ---------------------------------------------------------------------------
# ADD
# ---------------------------------------------------------------------------

def add_params(scale1, zp1, scale2, zp2, out_scale, out_zp, activation=None):
    """add.cc Prepare for int8 (left_shift 20)."""
    s1, s2, so = np.float32(scale1), np.float32(scale2), np.float32(out_scale)
    left_shift = 20
    twice_max = float(np.float32(2) * max(s1, s2))     # float arithmetic in C++
    r1 = float(s1) / twice_max
    r2 = float(s2) / twice_max
    ro = twice_max / float(np.float32(1 << left_shift) * so)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(r1)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(r2)
    mo, sho = quantize_multiplier_smaller_than_one_exp(ro)
    amin, amax = activation_range_int8(activation, out_scale, out_zp)
    return {"left_shift": left_shift,
            "input1_offset": -int(zp1), "input2_offset": -int(zp2),
            "output_offset": int(out_zp),
            "input1_multiplier": m1, "input1_shift": sh1,
            "input2_multiplier": m2, "input2_shift": sh2,
            "output_multiplier": mo, "output_shift": sho,
            "act_min": amin, "act_max": amax}


def add_int8(q1, q2, params):
    """reference_integer_ops AddFunc, numpy-broadcast over q1, q2."""
    p = params
    a = _i64(q1) + p["input1_offset"]
    b = _i64(q2) + p["input2_offset"]
    a = wrap32(a << p["left_shift"])
    b = wrap32(b << p["left_shift"])
    sa = multiply_by_quantized_multiplier_smaller_than_one_exp(
        a, p["input1_multiplier"], p["input1_shift"])
    sb = multiply_by_quantized_multiplier_smaller_than_one_exp(
        b, p["input2_multiplier"], p["input2_shift"])
    raw = wrap32(sa + sb)
    out = multiply_by_quantized_multiplier_smaller_than_one_exp(
        raw, p["output_multiplier"], p["output_shift"]) + p["output_offset"]
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)
