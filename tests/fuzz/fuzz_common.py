"""What the fuzz targets share: which native module runs the parsers."""
import os
import sys


def native():
    """tflite_mpc._native, or with TFLITE_MPC_FUZZ_INSTRUMENTED=1 the module that
    build.py makes from the same sources with coverage instrumentation."""
    if os.environ.get("TFLITE_MPC_FUZZ_INSTRUMENTED") == "1":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "build"))
        import _fuzz_native

        return _fuzz_native
    from tflite_mpc import _native

    return _native
