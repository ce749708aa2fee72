"""Keep TensorFlow's start-up noise out of our commands, examples and benchmarks.

Importing TensorFlow 2.21 writes, straight to file descriptor 2 and before its own
logging is initialised, lines that ``TF_CPP_MIN_LOG_LEVEL`` does not reach:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

``TF_ENABLE_ONEDNN_OPTS=0`` would remove the oneDNN line but also changes TensorFlow's
float arithmetic (Keras training and the converter's calibration in ``modelgen``), so
instead the import runs with file descriptor 2 captured and every line that is not such
noise is written back. Nothing here is needed with the ``ai_edge_litert`` interpreter,
which imports no TensorFlow and prints nothing.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings

#: absl-formatted info/warning lines (I1202 12:00:00.123 ... / I0000 00:00:...), the absl
#: pre-initialisation banner, CPU-feature advice, the converter's calibration line and
#: CUDA/cuDNN/TensorRT lookups.
NOISE = re.compile(
    r"^[IW]\d{4} \d\d:\d\d:\d\d"
    r"|All log messages before absl::InitializeLog"
    r"|^To enable the following instructions:.*rebuild TensorFlow"
    r"|^fully_quantize: \d+, inference_type: "
    r"|^E\d{4} .*(cuda|cuDNN|cuBLAS|cuFFT|TensorRT|Unable to register)", re.I)

#: TFLite's own info lines, e.g. "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
TFLITE_INFO = re.compile(r"^INFO: (Created TensorFlow Lite|Initialized TensorFlow Lite)")


def set_environment() -> None:
    """TensorFlow's C++ logging: errors only (unless the caller chose a level)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")


@contextlib.contextmanager
def filtered_stderr(noise=NOISE):
    """Capture file descriptor 2 (C++ writes included) and write back the lines that
    do not match `noise`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """Import TensorFlow without its start-up noise (once; later imports are free)."""
    set_environment()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with filtered_stderr():
        import tensorflow
    return tensorflow
