"""tflite-mpc: secure multi-party evaluation of quantized TFLite models.

The engine (`Engine`) runs three parties of the rep3 protocol (replicated secret
sharing over Z_2^64) as threads of this process; see `tflite_mpc.engine`.
"""
from ._native import Engine, Secret  # noqa: F401
from ._native import protocols, simd_level, prg_backend  # noqa: F401
from ._native import CheatingDetected  # noqa: F401  (an actively secure protocol caught a deviating party)
from .delegate import OPTIONS, CheckResult, argmax, check, library_path, load_delegate, report, validate_options  # noqa: F401

__version__ = "0.1.0"
