"""The same plugin file in tflite_runtime 2.14 (its own virtual environment,
numpy < 2). The venv is created once under ~/.cache/tflite-mpc and reused."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tflite_mpc
from tflite_mpc import modelgen

VENV = os.path.join(os.path.expanduser(os.environ.get("TFLITE_MPC_CACHE", "~/.cache/tflite-mpc")),
                    "venv-tflite-runtime-2.14")


def _venv_python():
    py = os.path.join(VENV, "bin", "python")
    marker = os.path.join(VENV, ".ready")
    if not os.path.exists(marker):
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        r = subprocess.run([py, "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2"],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.fail("could not install tflite-runtime 2.14 in a venv:\n" + r.stderr[-2000:])
        open(marker, "w").close()
    return py


@pytest.mark.parametrize("which", ["conv", "fc"])
def test_tflite_runtime_2_14(tmp_path, which):
    # fc: a layer large enough that tflite-runtime 2.14's two-step FULLY_CONNECTED rounding
    # differs from TF 2.21's single step (fc_rounding=auto picks "double" there).
    b = (modelgen.conv2d(k=3, stride=2, activation="relu6") if which == "conv" else
         modelgen.fully_connected(batch=16, in_features=512, out_features=4096))
    op = "CONV_2D" if which == "conv" else "FULLY_CONNECTED"
    model = tmp_path / "m.tflite"
    model.write_bytes(b)
    x = modelgen.random_input(b, seed=7)[0]
    np.save(tmp_path / "x.npy", x)
    want = modelgen.run_tflite(b, [x], reference=True)[0]
    script = textwrap.dedent(f"""
        import numpy as np, tflite_runtime, tflite_runtime.interpreter as tfl
        import tflite_mpc
        assert tflite_runtime.__version__.startswith("2.14"), tflite_runtime.__version__
        assert np.__version__.startswith("1."), np.__version__
        d = tflite_mpc.load_delegate(runtime="tflite_runtime", truncation="exact")
        it = tfl.Interpreter(model_path={str(model)!r}, experimental_delegates=[d])
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.load({str(tmp_path / 'x.npy')!r}))
        it.invoke()
        np.save({str(tmp_path / 'y.npy')!r}, it.get_tensor(it.get_output_details()[0]["index"]))
        rep = tflite_mpc.report(d)
        assert rep["layers"][-1]["op"] == {op!r}, rep
        assert rep["fc_rounding"] == "double", rep
        ref = tfl.Interpreter(model_path={str(model)!r},
                              experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_REF)
        ref.allocate_tensors()
        ref.set_tensor(ref.get_input_details()[0]["index"], np.load({str(tmp_path / 'x.npy')!r}))
        ref.invoke()
        np.save({str(tmp_path / 'r.npy')!r}, ref.get_tensor(ref.get_output_details()[0]["index"]))
        print("ok", tflite_mpc.library_path())
    """)
    # Expose only the installed tflite_mpc package (not the rest of this environment's
    # site-packages, whose numpy 2 would shadow the venv's numpy < 2).
    pkg_root = tmp_path / "pkg"
    pkg_root.mkdir()
    os.symlink(os.path.dirname(tflite_mpc.__file__), pkg_root / "tflite_mpc")
    env = dict(os.environ, PYTHONPATH=str(pkg_root))
    r = subprocess.run([_venv_python(), "-c", script], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tmp_path)  # not the source tree, whose tflite_mpc has no built library
    assert r.returncode == 0, r.stdout + r.stderr
    used = r.stdout.split("ok ", 1)[1].strip()
    assert os.path.realpath(used) == os.path.realpath(tflite_mpc.library_path())  # the very same plugin file
    ref = np.load(tmp_path / "r.npy")  # 2.14's own reference kernels
    assert np.array_equal(np.load(tmp_path / "y.npy"), ref)
    if which == "conv":
        assert np.array_equal(ref, want)  # CONV_2D: the same in both runtimes
    else:
        assert not np.array_equal(ref, want)  # FULLY_CONNECTED: 2.14 rounds twice, 2.21 once
