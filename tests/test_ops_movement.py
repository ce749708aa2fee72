"""Data-movement ops on secret shares (kernels/movement.cc): PAD, PADV2, MIRROR_PAD,
CONCATENATION, TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, PACK, GATHER,
GATHER_ND, DEPTH_TO_SPACE, SPACE_TO_DEPTH, RESIZE_NEAREST_NEIGHBOR, TILE, EXPAND_DIMS,
BROADCAST_TO, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND.

Each model is a 1x1 CONV_2D (so the op reads a secret int8 tensor computed in the graph)
followed by the op; the secure result must equal TFLite's BUILTIN_REF interpreter bit for
bit in exact mode and within 1 LSB in probabilistic mode (a gather is exact in both), and
nothing of the model may run on TFLite's CPU kernels."""
import numpy as np
import pytest
import tensorflow as tf

import tflite_mpc
from tflite_mpc import modelgen
from secure import check_model, graph_hash

P4 = [[0, 0], [1, 2], [0, 1], [0, 0]]

# (id, expected op, builder kwargs)
CASES = [
    # PAD / PADV2 / MIRROR_PAD
    ("pad_hw", "PAD", dict(kind="pad", params={"paddings": P4})),
    ("pad_batch2_all_axes", "PAD", dict(kind="pad", batch=2, params={"paddings": [[1, 0], [0, 0], [2, 0], [0, 1]]})),
    ("pad_rank3", "PAD", dict(kind="pad", reshape=(4, 12), params={"paddings": [[0, 0], [1, 1], [2, 0]]})),
    ("pad_rank5", "PAD", dict(kind="pad", reshape=(2, 2, 4, 3), params={
        "paddings": [[0, 0], [1, 0], [0, 1], [2, 1], [0, 1]]})),
    ("zero_padding2d", "PAD", dict(kind="zero_padding2d", params={"padding": ((1, 0), (2, 1))})),
    ("padv2_value", "PADV2", dict(kind="pad", params={"paddings": P4, "constant_values": 0.7})),
    ("mirror_reflect", "MIRROR_PAD", dict(kind="mirror_pad", params={"paddings": [[0, 0], [1, 3], [3, 1], [0, 0]],
                                                                     "mode": "REFLECT"})),
    ("mirror_symmetric", "MIRROR_PAD", dict(kind="mirror_pad", batch=2,
                                            params={"paddings": [[0, 0], [2, 4], [0, 3], [1, 0]], "mode": "SYMMETRIC"})),
    # CONCATENATION
    ("concat_last", "CONCATENATION", dict(kind="concat", params={"axis": -1})),
    ("concat_h_four_inputs", "CONCATENATION", dict(kind="concat", params={"axis": 1, "repeat": 2})),
    ("concat_batch2_axis0", "CONCATENATION", dict(kind="concat", batch=2, params={"axis": 0})),
    ("concat_rank5_neg", "CONCATENATION", dict(kind="concat", reshape=(2, 2, 4, 3), params={"axis": -2})),
    ("keras_concatenate", "CONCATENATION", dict(kind="concatenate", batch=2, params={"axis": 2})),
    ("concat_constant", "CONCATENATION", dict(kind="concat_const", params={"axis": 2})),
    # TRANSPOSE
    ("transpose_hw", "TRANSPOSE", dict(kind="transpose", params={"perm": [0, 2, 1, 3]})),
    ("transpose_batch2", "TRANSPOSE", dict(kind="transpose", batch=2, params={"perm": [3, 1, 0, 2]})),
    ("permute", "TRANSPOSE", dict(kind="permute", params={"dims": (3, 1, 2)})),
    ("transpose_rank3", "TRANSPOSE", dict(kind="transpose", reshape=(4, 12), params={"perm": [2, 0, 1]})),
    ("transpose_rank5", "TRANSPOSE", dict(kind="transpose", reshape=(2, 2, 4, 3), params={"perm": [0, 4, 2, 1, 3]})),
    ("transpose_rank6", "TRANSPOSE", dict(kind="transpose", reshape=(2, 2, 2, 2, 3),
                                          params={"perm": [0, 5, 1, 4, 2, 3]})),
    # SLICE / STRIDED_SLICE
    ("slice", "SLICE", dict(kind="slice", params={"begin": [0, 1, 0, 1], "size": [1, 2, -1, 2]})),
    ("slice_rank3", "SLICE", dict(kind="slice", reshape=(4, 12), params={"begin": [0, 1, 3], "size": [1, 2, 7]})),
    ("slice_batch2", "SLICE", dict(kind="slice", batch=2, params={"begin": [1, 0, 1, 0], "size": [1, -1, 2, 3]})),
    ("cropping2d", "STRIDED_SLICE", dict(kind="cropping2d", params={"cropping": ((1, 0), (1, 2))})),
    ("strided_step2", "STRIDED_SLICE", dict(kind="strided_slice", params={
        "begin": [0, 1, 0, 0], "end": [1, 4, 4, 3], "strides": [1, 2, 1, 1]})),
    ("strided_negative", "STRIDED_SLICE", dict(kind="strided_slice", batch=2, params={
        "begin": [0, -1, 3, 0], "end": [0, 0, 0, 0], "strides": [1, -1, -2, 1], "begin_mask": 1, "end_mask": 9})),
    ("strided_shrink", "STRIDED_SLICE", dict(kind="strided_slice", params={
        "begin": [0, 1, 0, 0], "end": [1, 2, 4, 2], "strides": [1, 1, 1, 1], "shrink_axis_mask": 2})),
    ("strided_ellipsis", "STRIDED_SLICE", dict(kind="strided_slice", params={
        "begin": [0, 1], "end": [0, 3], "strides": [1, 1], "ellipsis_mask": 1})),
    ("strided_new_axis", "STRIDED_SLICE", dict(kind="strided_slice", params={
        "begin": [0, 0, 1], "end": [1, 0, 3], "strides": [1, 1, 1], "new_axis_mask": 2})),
    ("strided_rank5", "STRIDED_SLICE", dict(kind="strided_slice", reshape=(2, 2, 4, 3), params={
        "begin": [0, 1, 0, -1, 0], "end": [1, 2, 2, 0, 3], "strides": [1, 1, 1, -2, 2], "end_mask": 8})),
    # SPLIT / SPLIT_V / UNPACK / PACK
    ("split_c", "SPLIT", dict(kind="split", shape=(4, 4, 4), params={"splits": 2, "axis": 3})),
    ("split_h_neg", "SPLIT", dict(kind="split", params={"splits": 4, "axis": -3})),
    ("split_rank5", "SPLIT", dict(kind="split", reshape=(2, 2, 4, 3), params={"splits": 2, "axis": 3})),
    ("split_v", "SPLIT_V", dict(kind="split", shape=(4, 4, 4), params={"splits": [1, -1, 2], "axis": -1})),
    ("unstack", "UNPACK", dict(kind="unstack", params={"axis": 1})),
    ("unstack_last", "UNPACK", dict(kind="unstack", batch=2, params={"axis": -1})),
    ("unstack_rank5", "UNPACK", dict(kind="unstack", reshape=(2, 2, 4, 3), params={"axis": -2})),
    ("stack_first", "PACK", dict(kind="stack", params={"axis": 0})),
    ("stack_last", "PACK", dict(kind="stack", params={"axis": -1})),
    # GATHER / GATHER_ND
    ("gather_axis1", "GATHER", dict(kind="gather", params={"indices": [2, 0, 2], "axis": 1})),
    ("gather_2d_indices_neg_axis", "GATHER", dict(kind="gather", params={"indices": [[0, 2], [1, 1]], "axis": -1})),
    ("gather_batch_dims", "GATHER", dict(kind="gather", batch=2, params={
        "indices": [[0, 3], [2, 1]], "axis": 1, "batch_dims": 1})),
    ("gather_rank5", "GATHER", dict(kind="gather", reshape=(2, 2, 4, 3), params={"indices": [1, 1, 0], "axis": 2})),
    ("gather_int64", "GATHER", dict(kind="gather", params={"indices": [3, 1], "axis": 2, "index_dtype": "int64"})),
    ("gather_nd", "GATHER_ND", dict(kind="gather_nd", params={"indices": [[0, 1], [0, 3]]})),
    ("gather_nd_depth3", "GATHER_ND", dict(kind="gather_nd", batch=2, params={"indices": [[[1, 0, 2]], [[0, 3, 3]]]})),
    # DEPTH_TO_SPACE / SPACE_TO_DEPTH
    ("depth_to_space", "DEPTH_TO_SPACE", dict(kind="depth_to_space", shape=(3, 2, 8), params={"block": 2})),
    ("space_to_depth", "SPACE_TO_DEPTH", dict(kind="space_to_depth", batch=2, params={"block": 2})),
    # RESIZE_NEAREST_NEIGHBOR
    ("resize_x2", "RESIZE_NEAREST_NEIGHBOR", dict(kind="resize_nearest", params={"size": [8, 8]})),
    ("resize_align", "RESIZE_NEAREST_NEIGHBOR", dict(kind="resize_nearest", params={"size": [7, 5], "align_corners": True})),
    ("resize_half_pixel", "RESIZE_NEAREST_NEIGHBOR", dict(kind="resize_nearest", batch=2, params={
        "size": [6, 10], "half_pixel_centers": True})),
    ("resize_down", "RESIZE_NEAREST_NEIGHBOR", dict(kind="resize_nearest", params={"size": [3, 2]})),
    ("upsampling2d_is_tile", "TILE", dict(kind="upsampling2d", params={"size": (2, 3)})),
    # TILE / EXPAND_DIMS / BROADCAST_TO
    ("tile", "TILE", dict(kind="tile", params={"multiples": [1, 2, 1, 2]})),
    ("tile_rank3", "TILE", dict(kind="tile", reshape=(4, 12), params={"multiples": [2, 1, 2]})),
    ("tile_batch2", "TILE", dict(kind="tile", batch=2, params={"multiples": [2, 1, 3, 1]})),
    ("expand_dims", "EXPAND_DIMS", dict(kind="expand_dims", params={"axis": 1})),
    ("expand_dims_neg", "EXPAND_DIMS", dict(kind="expand_dims", params={"axis": -1})),
    ("broadcast_to", "BROADCAST_TO", dict(kind="broadcast_to", reshape=(1, 4, 12), params={"shape": [1, 3, 4, 12]})),
    # SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND
    ("space_to_batch", "SPACE_TO_BATCH_ND", dict(kind="space_to_batch", params={
        "block": [2, 2], "paddings": [[1, 1], [0, 2]]})),
    ("space_to_batch_rank3", "SPACE_TO_BATCH_ND", dict(kind="space_to_batch", reshape=(4, 12), params={
        "block": [2], "paddings": [[1, 1]]})),
    ("batch_to_space_rank3", "BATCH_TO_SPACE_ND", dict(kind="batch_to_space", batch=2, reshape=(4, 12), params={
        "block": [2], "crops": [[1, 0]]})),
    ("batch_to_space", "BATCH_TO_SPACE_ND", dict(kind="batch_to_space", batch=4, shape=(2, 3, 3), params={
        "block": [2, 2], "crops": [[0, 1], [1, 0]]})),
]


KW = {c[0]: c[2] for c in CASES}


def _model(kw):
    return modelgen.movement(**kw)


def delegated_on_cpu(b):
    """Nodes that ran on TFLite's CPU kernels although the delegate was applied: built with
    BUILTIN_WITHOUT_DEFAULT_DELEGATES, any non-SHAPE node whose output is a graph output or
    feeds a DELEGATE node, and that no DELEGATE node produces."""
    R = tf.lite.experimental.OpResolverType
    it = tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate(truncation="exact")],
                             experimental_op_resolver_type=R.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = it._get_ops_details()
    dele = [o for o in ops if o["op_name"] == "DELEGATE"]
    assert dele, "the delegate claimed nothing"
    made = {int(t) for o in dele for t in o["outputs"]}
    fed = {int(t) for o in dele for t in o["inputs"]} | {int(d["index"]) for d in it.get_output_details()}
    return [f"{o['index']} {o['op_name']}" for o in ops
            if o["op_name"] not in ("DELEGATE", "SHAPE") and any(int(t) in fed and int(t) not in made
                                                                 for t in o["outputs"])]


# Further grid points (model conversion dominates a cold cache: the default run keeps one
# or two cases per op and variant, about 40 models).
SLOW = {"pad_rank3", "concat_batch2_axis0", "transpose_batch2", "transpose_rank3", "transpose_rank5", "slice_batch2",
        "strided_step2", "strided_rank5", "split_h_neg", "unstack_last", "stack_first", "gather_int64",
        "gather_nd_depth3", "resize_down", "resize_x2", "tile_batch2", "expand_dims_neg", "upsampling2d_is_tile"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW else [])
                                  for c in CASES])
def test_movement_conformance(case):
    _, op, kw = case
    b = _model(kw)
    ops = modelgen.op_names(b)
    assert op in ops, ops
    assert set(ops) <= {"CONV_2D", "RESHAPE", "QUANTIZE", op}, ops
    check_model(b)
    assert delegated_on_cpu(b) == []


def test_cpu_placement_check_flags_public_shape_arithmetic():
    # The check itself: without a fixed batch, Flatten is SHAPE -> STRIDED_SLICE -> PACK ->
    # RESHAPE; the int32 shape arithmetic stays on TFLite's CPU kernels (public data) and
    # feeds the delegate, so the check must name it (and only it).
    keras = modelgen.keras
    m = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    b = modelgen.convert_int8(m, [np.random.default_rng(k).random((1, 6, 6, 3), np.float32) for k in range(4)])
    cpu = delegated_on_cpu(b)
    assert cpu and all(n.split()[1] in ("STRIDED_SLICE", "PACK") for n in cpu), cpu


def _refused(b, match):
    with pytest.raises(RuntimeError, match=match):
        tf.lite.Interpreter(model_content=b, experimental_delegates=[tflite_mpc.load_delegate()])


def _set_output_quant(b, scale_factor=1.0, zp_shift=0):
    m = modelgen._parse(b)
    sg = m.subgraphs[0]
    for t in sg.operators[-1].outputs:
        q = sg.tensors[t].quantization
        q.scale = [float(q.scale[0]) * scale_factor]
        q.zeroPoint = [int(q.zeroPoint[0]) + zp_shift]
    return modelgen._pack(m)


@pytest.mark.parametrize("op,kw", [("TRANSPOSE", "transpose_hw"), ("PAD", "pad_hw"), ("GATHER", "gather_axis1"),
                                   ("SPLIT", "split_c")])
def test_mismatched_quantization_is_refused(op, kw):
    b = _model(KW[kw])
    node = modelgen.op_names(b).index(op)
    _refused(_set_output_quant(b, scale_factor=2.0),
             rf"node {node} \({op}\).*quantization .* differs from the output's.*refused")
    _refused(_set_output_quant(b, zp_shift=1), rf"node {node} \({op}\).*differs from the output's")


def test_concatenation_with_other_scales_is_refused_as_tflite_does():
    b = _set_output_quant(_model(KW["concat_last"]), scale_factor=1.5)
    _refused(b, r"\(CONCATENATION\).*input 0 quantization.*differs")


def test_gather_index_out_of_range_is_refused():
    b = _model(KW["gather_axis1"])
    m = modelgen._parse(b)
    sg = m.subgraphs[0]
    op = sg.operators[-1]
    buf = m.buffers[sg.tensors[op.inputs[1]].buffer]
    buf.data = np.frombuffer(np.asarray([2, -1, 2], np.int32).tobytes(), np.uint8)
    _refused(modelgen._pack(m), r"\(GATHER\).*index -1 outside \[0, 4\)")


def test_strided_slice_offset_flag():
    # The converter never sets StridedSliceOptions.offset (end relative to begin): patched in,
    # with ends made relative, the op must compute the same slice as the unpatched model.
    b = _model(KW["strided_step2"])
    m = modelgen._parse(b)
    sg = m.subgraphs[0]
    op = sg.operators[-1]
    assert modelgen._OP_NAME[m.operatorCodes[op.opcodeIndex].builtinCode] == "STRIDED_SLICE"
    op.builtinOptions.offset = True
    end = m.buffers[sg.tensors[op.inputs[2]].buffer]
    end.data = np.frombuffer(np.asarray([1, 3, 4, 3], np.int32).tobytes(), np.uint8)
    patched = modelgen._pack(m)
    x = modelgen.random_input(b, seed=4)
    assert np.array_equal(modelgen.run_tflite(patched, x)[0], modelgen.run_tflite(b, x)[0])
    check_model(patched)


@pytest.mark.parametrize("kw,field,value", [("mirror_reflect", "mode", 1), ("resize_align", "halfPixelCenters", True),
                                            ("resize_align", "alignCorners", False), ("unstack", "axis", -3)])
def test_graph_hash_binds_movement_parameters(kw, field, value):
    # Two parties whose models differ only in such a parameter must not agree on the graph.
    b = _model(KW[kw])
    m = modelgen._parse(b)
    opts = m.subgraphs[0].operators[-1].builtinOptions
    assert hasattr(opts, field)
    setattr(opts, field, value)
    assert graph_hash(modelgen._pack(m)) != graph_hash(b)


def test_unknown_mirror_pad_mode_is_refused():
    b = _model(KW["mirror_reflect"])
    m = modelgen._parse(b)
    m.subgraphs[0].operators[-1].builtinOptions.mode = 7  # neither REFLECT (0) nor SYMMETRIC (1)
    _refused(modelgen._pack(m), r"\(MIRROR_PAD\).*unknown mode")


@pytest.mark.parametrize("data_owner,model_owner", [(0, 1), (1, 2), (2, 0)])
@pytest.mark.parametrize("kind,params", [("pad", {"paddings": P4}),
                                         ("space_to_batch", {"block": [2, 2], "paddings": [[1, 1], [0, 2]]}),
                                         ("concat", {"axis": 2})])
def test_on_the_input_sharing_for_every_owner(kind, params, data_owner, model_owner):
    # The op reads the data owner's input sharing itself (a component publicly zero) and
    # fills padded positions with a zero point far from 0 (add_public on a gathered sharing).
    b = modelgen.movement_on_input(kind, params=params)
    assert modelgen.op_names(b)[-1] in ("PAD", "SPACE_TO_BATCH_ND", "CONCATENATION")
    assert modelgen.output_details(b)[0]["quantization"][1] != 0
    check_model(b, data_owner=data_owner, model_owner=model_owner)


@pytest.mark.parametrize("kw,op,what", [("transpose_hw", "TRANSPOSE", "perm"), ("gather_axis1", "GATHER", "indices")])
def test_index_tensor_from_the_data_owner_is_refused(kw, op, what):
    # Indices given at run time (here a second graph input: the data owner's secret) are not
    # public parameters of the graph: the node is refused, never run in plaintext.
    m = modelgen._parse(_model(KW[kw]))
    sg = m.subgraphs[0]
    node = sg.operators[-1]
    t = int(node.inputs[1])
    m.buffers[sg.tensors[t].buffer].data = None
    sg.inputs = np.asarray(list(sg.inputs) + [t], np.int32)
    m.signatureDefs = None
    _refused(modelgen._pack(m), rf"\({op}\).*{what} must be a constant tensor.*refused")


def test_unet_block_end_to_end():
    b = modelgen.unet_block()
    ops = modelgen.op_names(b)
    for op in ("PAD", "CONCATENATION", "TRANSPOSE", "STRIDED_SLICE", "TILE"):
        assert op in ops, ops
    # exact: bit-identical; probabilistic: the data movement adds no error, but the 1 LSB of
    # each of the three stacked conv layers compounds through the next one's weights
    check_model(b, pr_bound=4)
    assert delegated_on_cpu(b) == []


def test_hostile_index_values_are_refused_before_allocating():
    # TILE multiples asking for 2^62 elements (the model's output has 96): refused with a
    # clear message before any per-element map is allocated.
    m = modelgen._parse(_model(KW["tile"]))
    sg = m.subgraphs[0]
    t = int(sg.operators[-1].inputs[1])
    m.buffers[sg.tensors[t].buffer].data = np.frombuffer(np.asarray([1, 1 << 30, 1, 1 << 30], np.int32).tobytes(),
                                                         np.uint8)
    _refused(modelgen._pack(m), r"\(TILE\).*computed output shape .* differs from the model's")


def test_uint8_concatenation_rescales_inputs_with_other_quantization():
    # TFLite's uint8 CONCATENATION rescales an input whose quantization differs from the
    # output's (ConcatenationWithScaling); the stock converter never leaves such inputs, so the
    # model is two convs + Concatenate (per-tensor), rewritten to uint8 (modelgen.to_uint8, the
    # flatbuffer schema) with input 0's quantization edited (scale x 1.7, zero point + 9).
    from crafted import Edit, OP
    L = modelgen.keras.layers
    x = modelgen.keras.Input((4, 4, 3), batch_size=1)
    m = modelgen.keras.Model(x, L.Concatenate()([L.Conv2D(3, 1)(x), L.Conv2D(2, 1)(x)]))
    rng = np.random.default_rng(0)
    b = modelgen.convert_int8(m, [rng.standard_normal((1, 4, 4, 3)).astype(np.float32) for _ in range(8)],
                              per_tensor=True)
    e = Edit(modelgen.to_uint8(b))
    t = e.sg.tensors[e.ops[e.find(OP.CONCATENATION)].inputs[0]]
    t.quantization.scale = [float(t.quantization.scale[0]) * 1.7]
    t.quantization.zeroPoint = [int(t.quantization.zeroPoint[0]) + 9]
    # exact: bit-identical; probabilistic: the conv's 1 LSB, scaled by 1.7 in the rescaling
    check_model(e.bytes(), pr_bound=2)
