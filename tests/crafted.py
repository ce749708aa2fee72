"""Crafted .tflite models: converter output edited with TFLite's own flatbuffer
schema (object API), to test what the delegate does with graphs a stock converter
would not write (dangling nodes, odd outputs, shared or re-used weights, state)."""
import numpy as np
from tensorflow.lite.python import schema_py_generated as fb

from tflite_mpc import modelgen

keras = modelgen.keras
OP = fb.BuiltinOperator
T = fb.TensorType


def tiny(layers, shape=(6, 6, 4), batch=1, int8_io=True):
    m = keras.Sequential([keras.Input(shape, batch_size=batch)] + layers)
    rng = np.random.default_rng(0)
    reps = [rng.random((batch,) + tuple(shape), dtype=np.float32) for _ in range(8)]
    return modelgen.convert_int8(m, reps, int8_io=int8_io)


class Edit:
    """m = Edit(model_bytes); ...; m.bytes() -> the edited model."""

    def __init__(self, model_bytes):
        self.m = modelgen._parse(model_bytes)
        self.sg = self.m.subgraphs[0]

    def bytes(self):
        self.m.signatureDefs = None  # signatures would name the old inputs / outputs
        return modelgen._pack(self.m)

    @property
    def ops(self):
        return self.sg.operators

    def op_code(self, op):
        oc = self.m.operatorCodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode)

    def find(self, code, k=0):
        """Index of the k-th op with this builtin code."""
        return [i for i, op in enumerate(self.ops) if self.op_code(op) == code][k]

    def opcode(self, code, version=1):
        for i, oc in enumerate(self.m.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code and oc.version == version:
                return i
        oc = fb.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = version
        self.m.operatorCodes.append(oc)
        return len(self.m.operatorCodes) - 1

    def tensor(self, shape, ttype, name, data=None, like=None, variable=False, quant=None):
        """Add a tensor (constant if `data` is given; quantization copied from tensor `like`
        or given as `quant` = (scale, zero_point))."""
        buf = fb.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).copy()
        self.m.buffers.append(buf)
        t = fb.TensorT()
        t.shape = np.asarray(shape, np.int32)
        t.type = ttype
        t.name = name
        t.buffer = len(self.m.buffers) - 1
        t.isVariable = variable
        if like is not None:
            t.quantization = self.sg.tensors[like].quantization
        if quant is not None:
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale = np.asarray([quant[0]], np.float32)
            t.quantization.zeroPoint = np.asarray([quant[1]], np.int64)
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def add_op(self, code, inputs, outputs, version=1, options_type=None, options=None):
        op = fb.OperatorT()
        op.opcodeIndex = self.opcode(code, version)
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        if options is not None:
            op.builtinOptionsType = options_type
            op.builtinOptions = options
        self.ops.append(op)
        return len(self.ops) - 1

    def shape(self, t):
        return [int(s) for s in self.sg.tensors[t].shape]

    def add_output(self, t):
        self.sg.outputs = np.asarray(list(self.sg.outputs) + [t], np.int32)
