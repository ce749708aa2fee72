"""Crafted models (security review, issue 7): only the interpreter's declared outputs
are ever revealed; any other path from secret data (the input, weights) to a value
leaving the plan is refused, naming the node; weights shared by several nodes; the
public-graph hash binds the whole graph but never the weights."""
import copy

import numpy as np
import pytest
import tensorflow as tf

import tflite_mpc
from tflite_mpc import modelgen
from tflite_mpc.cli import strip_model
from crafted import OP, T, Edit, fb, keras, tiny
from secure import check_model, graph_hash, run_secure


OP_NAMES = {v: k for k, v in vars(OP).items() if not k.startswith("_")}


def interpreter(b, **opts):
    return tf.lite.Interpreter(model_content=b,
                               experimental_delegates=[tflite_mpc.load_delegate(truncation="exact", **opts)])


def assert_refused(b, node, op, why):
    with pytest.raises(RuntimeError, match=rf"(?s)node {node} \({op}\).*{why}.*refused"):
        interpreter(b)


# ---------------------------------------------------------------- item 3: reveal only declared outputs
def test_dangling_dequantize_of_the_input_is_refused():
    # A public model with a DEQUANTIZE of the input whose output nobody reads and that is
    # not a model output: it used to reveal the data owner's input to output_to.
    e = Edit(modelgen.conv2d(k=3))
    x = int(e.sg.inputs[0])
    n = e.add_op(OP.DEQUANTIZE, [x], [e.tensor(e.shape(x), T.FLOAT32, "leak")], version=2)
    b = e.bytes()
    assert [d["index"] for d in modelgen.output_details(b)] == [int(e.sg.outputs[0])]
    assert_refused(b, n, "DEQUANTIZE", "not one of the interpreter's outputs")


def test_dangling_dequantize_of_an_intermediate_is_refused():
    e = Edit(tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.MaxPooling2D()]))
    h = int(e.ops[e.find(OP.CONV_2D)].outputs[0])
    n = e.add_op(OP.DEQUANTIZE, [h], [e.tensor(e.shape(h), T.FLOAT32, "leak")], version=2)
    assert_refused(e.bytes(), n, "DEQUANTIZE", "not one of the interpreter's outputs")


@pytest.mark.parametrize("what", ["CAST", "GATHER", "SLICE", "RESHAPE"])
def test_plain_ops_on_weights_are_refused(what):
    # Weights copied to a model output by a plaintext op (CAST) or by an op with a secure kernel
    # (RESHAPE used to reveal the shared weights; GATHER / SLICE): a node reading only model
    # constants is refused.
    e = Edit(modelgen.conv2d(k=3))
    w = int(e.ops[e.find(OP.CONV_2D)].inputs[1])
    shape = e.shape(w)
    q = (float(e.sg.tensors[w].quantization.scale[0]), 0)
    i32 = lambda v: e.tensor([len(v)], T.INT32, "c", data=np.asarray(v, np.int32))  # noqa: E731
    if what == "CAST":
        n = e.add_op(OP.CAST, [w], [e.tensor(shape, T.INT32, "w32")])
    elif what == "GATHER":
        n = e.add_op(OP.GATHER, [w, i32([0])], [e.tensor([1] + shape[1:], T.INT8, "w0", quant=q)])
    elif what == "SLICE":
        n = e.add_op(OP.SLICE, [w, i32([0, 0, 0, 0]), i32([1] + shape[1:])],
                     [e.tensor([1] + shape[1:], T.INT8, "w0", quant=q)])
    else:
        n = e.add_op(OP.RESHAPE, [w, i32([int(np.prod(shape))])],
                     [e.tensor([int(np.prod(shape))], T.INT8, "wflat", quant=q)])
    e.add_output(len(e.sg.tensors) - 1)
    why = "no secure kernel" if what == "CAST" else "every operand is a model constant"
    assert_refused(e.bytes(), n, what, why)


def test_bias_read_by_a_plaintext_op_is_refused_naming_the_node():
    # int32 biases are the model owner's secret too: a public CAST of one is refused.
    e = Edit(modelgen.conv2d(k=3))
    bias = int(e.ops[e.find(OP.CONV_2D)].inputs[2])
    n = e.add_op(OP.CAST, [bias], [e.tensor(e.shape(bias), T.FLOAT32, "b")])
    e.add_output(len(e.sg.tensors) - 1)
    assert_refused(e.bytes(), n, "CAST", f"reads constant tensor {bias}, a model weight, in plaintext")


def test_variable_tensor_is_refused():
    e = Edit(modelgen.conv2d(k=3))
    y = int(e.ops[0].outputs[0])
    v = e.tensor(e.shape(y), T.INT8, "state", like=y, variable=True)
    z = e.tensor(e.shape(y), T.INT8, "z", like=y)
    n = e.add_op(OP.ADD, [y, v], [z], version=2)
    e.sg.outputs = np.asarray([z], np.int32)
    assert_refused(e.bytes(), n, "ADD", "variable tensor")


def test_output_that_is_also_read_by_another_node_is_revealed():
    # An intermediate that is also a declared output: revealed (it used to come out as zeros).
    e = Edit(tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.MaxPooling2D()]))
    e.sg.outputs = np.asarray([int(e.ops[0].outputs[0])] + list(e.sg.outputs), np.int32)
    b = e.bytes()
    assert len(modelgen.output_details(b)) == 2
    check_model(b, seeds=(0,))


def test_output_that_is_a_graph_input():
    # The delegate reveals nothing for it: TFLite hands back, in each process, the tensor
    # that process set itself (the data owner's own input); the computed output is exact.
    e = Edit(modelgen.conv2d(k=3))
    e.sg.outputs = np.asarray([int(e.sg.inputs[0])] + list(e.sg.outputs), np.int32)
    b = e.bytes()
    x = modelgen.random_input(b, seed=1)
    want = modelgen.run_tflite(b, x, reference=True)
    got, rep = run_secure(b, x, "exact")
    assert [l["op"] for l in rep["layers"]] == ["share weights", "CONV_2D"]
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


# ---------------------------------------------------------------- item 8: shared weights
def _share_weights(b, code):
    e = Edit(b)
    first, second = e.ops[e.find(code, 0)], e.ops[e.find(code, 1)]
    second.inputs[1] = first.inputs[1]
    return e.bytes()


def test_weight_shared_by_two_fully_connected_nodes():
    b = tiny([keras.layers.Dense(16), keras.layers.Dense(16, activation="relu")], shape=(16,), batch=3)
    check_model(_share_weights(b, OP.FULLY_CONNECTED), seeds=(0, 1), pr=False)  # exact: bit-identical


def test_weight_shared_by_two_conv_nodes():
    b = tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Conv2D(4, 3, padding="same")])
    check_model(_share_weights(b, OP.CONV_2D), seeds=(0, 1), pr=False)


# ---------------------------------------------------------------- item 6: the public-graph hash
def test_graph_hash_binds_wiring_public_nodes_and_outputs_not_weights():
    e = Edit(tiny([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Conv2D(4, 3, padding="same")]))
    # the input gets the first conv output's quantization, so that rewiring changes nothing but indices
    e.sg.tensors[int(e.sg.inputs[0])].quantization = e.sg.tensors[int(e.ops[0].outputs[0])].quantization
    base = e.bytes()

    rewired = Edit(base)  # the second conv reads the input instead of the first conv's output
    rewired.ops[1].inputs[0] = rewired.sg.inputs[0]

    more_outputs = Edit(base)
    more_outputs.add_output(int(more_outputs.ops[0].outputs[0]))

    public_node = Edit(base)  # an extra SHAPE (runs in plaintext: it reads only dimensions)
    x = int(public_node.sg.inputs[0])
    opts = fb.ShapeOptionsT()
    opts.outType = T.INT32
    public_node.add_op(OP.SHAPE, [x], [public_node.tensor([4], T.INT32, "shape")],
                       options_type=fb.BuiltinOptions.ShapeOptions, options=opts)
    public_node.add_output(len(public_node.sg.tensors) - 1)

    h = graph_hash(base)
    assert len(h) == 64
    variants = {"rewired": rewired.bytes(), "outputs": more_outputs.bytes(), "public node": public_node.bytes()}
    for name, b in variants.items():
        assert graph_hash(b) != h, name
    # the model owner's model and the public (stripped) model hash the same
    stripped = strip_model(base)
    assert stripped != base
    assert graph_hash(stripped) == h


# ---------------------------------------------------------------- found by tests/fuzz/fuzz_delegate.py
def _malformed_wiring(kind):
    e = Edit(modelgen.conv2d(k=3))
    conv = e.ops[e.find(OP.CONV_2D)]
    y = int(conv.outputs[0])
    if kind == "self":  # the node reads its own output (the fuzzer's case: an op code changed to TRANSPOSE)
        conv.inputs[0] = y
        conv.opcodeIndex = e.opcode(OP.TRANSPOSE, 2)
    elif kind == "later":  # the conv reads what a later node computes from its output
        x = int(e.sg.inputs[0])
        z = e.tensor(e.shape(x), T.INT8, "z", like=x)
        conv.inputs[0] = z
        e.add_op(OP.RESHAPE, [y, e.tensor([4], T.INT32, "s", data=np.asarray(e.shape(z), np.int32))], [z])
    else:  # two nodes write the same tensor
        e.ops.append(copy.deepcopy(conv))
    return e.bytes()


@pytest.mark.parametrize("kind", ["self", "later", "twice"])
def test_node_reading_its_own_or_a_later_output_is_refused(kind):
    # A node reading its own output or a later node's crashed TFLite's graph partitioner
    # (SIGSEGV in PreviewDelegatePartitioning, which TFLite alone never calls on such a graph):
    # the delegate now checks the wiring first and refuses the model. A tensor written by two
    # nodes did not crash (it ran); it is refused by the same check.
    why = "also writes" if kind == "twice" else "computes only later"
    with pytest.raises(RuntimeError, match=f"{why}.*malformed model.*refused"):
        interpreter(_malformed_wiring(kind))


def test_graph_input_flagged_variable_is_refused():
    # The data owner's input in a tensor flagged variable was not treated as secret: the
    # SOFTMAX reading it was left to TFLite's plaintext kernel (the delegate ran nothing).
    e = Edit(modelgen.softmax(n=6))
    e.sg.tensors[int(e.sg.inputs[0])].isVariable = True
    assert_refused(e.bytes(), e.find(OP.SOFTMAX), "SOFTMAX", "variable tensor")


def _quant(e, t, scales=None, zero_points=None):
    q = e.sg.tensors[t].quantization
    if scales is not None:
        q.scale = np.asarray(scales, np.float32)
    if zero_points is not None:
        q.zeroPoint = np.asarray(zero_points, np.int64)


@pytest.mark.parametrize("case", ["weight scale -inf", "output scale inf", "output per-channel",
                                  "output zero point 2^20", "output scale 1e-10"])
def test_hostile_quantization_is_refused(case):
    # Each ran and gave an output that differs from TFLite's reference kernels.
    if case == "output zero point 2^20":
        e = Edit(modelgen.add(shape=(2, 3, 4), activation="relu"))
        n, why = e.find(OP.ADD), "output tensor"
        _quant(e, int(e.ops[n].outputs[0]), zero_points=[1 << 20])
    else:
        e = Edit(modelgen.fully_connected(batch=2, in_features=8, out_features=4))
        n = e.find(OP.FULLY_CONNECTED)
        w, y = int(e.ops[n].inputs[1]), int(e.ops[n].outputs[0])
        if case == "weight scale -inf":
            why = "filter tensor"
            _quant(e, w, scales=[0.005, -np.inf, 0.004, 0.004])
        elif case == "output scale inf":
            why = "output tensor"
            _quant(e, y, scales=[np.inf])
        elif case == "output scale 1e-10":  # effective multiplier > 1: TFLite's int32 left shift wraps
            why = "effective output scale"
            _quant(e, y, scales=[1e-10])
        else:
            why = "output tensor"
            _quant(e, y, scales=[0.5, 0.5], zero_points=[0, 0])
    assert_refused(e.bytes(), n, OP_NAMES[e.op_code(e.ops[n])], why)


def test_reshape_reading_its_data_as_the_new_shape_is_refused():
    # RESHAPE(x, x): TFLite reads the int8 input as the shape and fails; the delegate ignored
    # the shape input and returned the data under the output's static shape.
    e = Edit(modelgen.reshape(in_shape=(2, 2, 3), out_shape=(4, 3)))
    n = e.find(OP.RESHAPE)
    e.ops[n].inputs[1] = e.ops[n].inputs[0]
    assert_refused(e.bytes(), n, "RESHAPE", "must be an int32 tensor")


@pytest.mark.parametrize("code,bias", [(OP.CONV_2D, 2**31 - 1), (OP.FULLY_CONNECTED, -2**31)])
def test_bias_that_could_overflow_the_int32_accumulator_is_refused(code, bias):
    # TFLite's int32 accumulator wraps with such a bias; the ring does not: the result differed.
    # Only the model owner sees the bias: its party refuses to share it, and invoke() fails.
    b = modelgen.conv2d(k=3) if code == OP.CONV_2D else modelgen.fully_connected(batch=2, in_features=8)
    e = Edit(b)
    t = e.sg.tensors[int(e.ops[e.find(code)].inputs[2])]
    v = np.frombuffer(bytes(e.m.buffers[t.buffer].data), np.int32).copy()
    v[1] = bias
    e.m.buffers[t.buffer].data = np.frombuffer(v.tobytes(), np.uint8).copy()
    b = e.bytes()
    with pytest.raises(RuntimeError, match="bias .* of output channel 1 could overflow TFLite's int32 accumulator"):
        run_secure(b, modelgen.random_input(b, seed=0))


def test_dilated_filter_larger_than_the_input_is_refused():
    # dilation_h_factor 2^20 on a 5x5 input (SAME): the delegate's result differed from TFLite's.
    e = Edit(modelgen.conv2d(h=5, w=5, cin=2, cout=3, k=3, activation="relu"))
    n = e.find(OP.CONV_2D)
    e.ops[n].builtinOptions.dilationHFactor = 1 << 20
    assert_refused(e.bytes(), n, "CONV_2D", "dilated filter is larger than the input")


@pytest.mark.parametrize("width", [1 << 20, 2**31 - 1])
def test_pool_filter_larger_than_the_input_is_refused(width):
    # TFLite's reference AVERAGE_POOL_2D fails at invoke; the delegate computed an average
    # (2^20) or hung building the window counts (2^31 - 1).
    e = Edit(modelgen.average_pool2d(h=5, w=5, c=2, pool=2, stride=1, padding="same"))
    n = e.find(OP.AVERAGE_POOL_2D)
    e.ops[n].builtinOptions.filterWidth = width
    assert_refused(e.bytes(), n, "AVERAGE_POOL_2D", "filter is larger than the input")


def test_a_node_writing_a_constant_is_refused():
    # Found by fuzzing: the float output of the final DEQUANTIZE shared the bias's buffer, so
    # TFLite's own result used an overwritten bias and differed from the plan's (55 LSB).
    b = modelgen.fully_connected(in_features=6, out_features=3, int8_io=False)
    e = Edit(b)
    dq = e.find(OP.DEQUANTIZE)
    fc = e.find(OP.FULLY_CONNECTED)
    e.sg.tensors[e.ops[dq].outputs[0]].buffer = e.sg.tensors[e.ops[fc].inputs[2]].buffer
    with pytest.raises(RuntimeError, match=rf"node {dq} \(DEQUANTIZE\): it writes tensor \d+, a constant with data "
                                           r"in the model \(malformed model\)\. The model is refused"):
        interpreter(e.bytes())


@pytest.mark.parametrize("op", ["add", "mul", "maximum"])
def test_a_node_reading_only_model_constants_is_refused(op):
    # x + c with x rewired to a second constant: the output would be a function of the weights
    # alone, revealed as a graph output (the converter folds such nodes; a crafted graph may not).
    b = modelgen.binary(op, shape=(4, 4, 8), shape_b=(8,), const="b")
    e = Edit(b)
    code = {"add": OP.ADD, "mul": OP.MUL, "maximum": OP.MAXIMUM}[op]
    n = e.find(code)
    x = e.ops[n].inputs[0]
    t = e.sg.tensors[x]
    data = np.zeros([int(d) for d in t.shape], np.int8)
    e.ops[n].inputs[0] = e.tensor([int(d) for d in t.shape], t.type, "const_a", data=data, like=x)
    assert_refused(e.bytes(), n, modelgen.op_names(b)[n], "every operand is a model constant")


def _with_bias(model_bytes, code, values):
    e = Edit(model_bytes)
    t = e.sg.tensors[int(e.ops[e.find(code)].inputs[2])]
    v = np.frombuffer(bytes(e.m.buffers[t.buffer].data), np.int32).copy()
    v[:] = values[: v.size]
    e.m.buffers[t.buffer].data = np.frombuffer(v.astype(np.int32).tobytes(), np.uint8).copy()
    return e.bytes()


def _bias_sweep(n, top):
    """n biases: 0, then +-2^(8 + j/2) for j = 0, 1, ... (alternating signs), capped at +-top."""
    out = [0]
    j = 0
    while len(out) < n:
        m = min(int(round(2 ** (8 + j / 2))), top)
        out += [m, -m]
        j += 1
    return np.asarray(out[:n], np.int64)


NARROW = [
    ("conv", OP.CONV_2D, lambda: modelgen.conv2d(h=5, w=5, cin=3, cout=96, k=3, activation="relu6"), 27),
    ("depthwise", OP.DEPTHWISE_CONV_2D, lambda: modelgen.depthwise_conv2d(h=5, w=5, c=96, k=3), 9),
    ("fc", OP.FULLY_CONNECTED, lambda: modelgen.fully_connected(batch=3, in_features=40, out_features=96), 40),
]


@pytest.mark.parametrize("protocol", ["rep3", "mal3"])
@pytest.mark.parametrize("name,code,build,terms", NARROW, ids=[n[0] for n in NARROW])
def test_biases_far_outside_the_accumulator_range(name, code, build, terms, protocol):
    # The requantization runs on s + b', b' the bias shifted by a public anchor and saturated by
    # the model owner (kernels/kernel.h, NarrowAcc): biases from 0 to the largest TFLite allows,
    # both signs, put some channels in range, some always clamped and some at the saturation
    # bounds. Exact mode bit-identical; debug_checks also opens every requantization's
    # accumulator and checks that it fits the narrow width.
    top = 2**31 - 1 - terms * 255 * 128
    b = _with_bias(build(), code, _bias_sweep(96, top))
    check_model(b, seeds=(0, 1), pr_bound=1, protocol=protocol)
    check_model(b, seeds=(2,), pr=False, protocol=protocol, debug_checks=True)
