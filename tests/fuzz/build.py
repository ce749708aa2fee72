"""Build tests/fuzz/build/_fuzz_native: the fuzz entries and the real parser
sources (mpc/wire.cc, delegate/config.cc, ...) compiled with GCC's comparison
tracing (-fsanitize-coverage=trace-cmp, which atheris' libFuzzer uses as
coverage with -use_value_profile=1), UBSan and libstdc++ assertions, linked
against atheris' libFuzzer. For long runs (README.md); the short test run uses
tflite_mpc._native as it is.

    python tests/fuzz/build.py
"""
import glob
import os
import subprocess
import sys
import sysconfig

import atheris
import pybind11

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCES = ["mpc/bindings_fuzz.cc", "mpc/wire.cc", "mpc/common.cc", "mpc/pool.cc", "delegate/config.cc"]


def build():
    out_dir = os.path.join(HERE, "build")
    os.makedirs(out_dir, exist_ok=True)
    fuzzer = glob.glob(os.path.join(os.path.dirname(atheris.__file__), "core_with_libfuzzer*.so"))[0]
    out = os.path.join(out_dir, "_fuzz_native" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = ["g++", "-std=c++17", "-O1", "-g", "-shared", "-fPIC", "-fvisibility=hidden",
           "-fsanitize-coverage=trace-cmp", "-fsanitize=undefined,float-cast-overflow", "-fno-sanitize-recover=all",
           "-D_GLIBCXX_ASSERTIONS", f"-I{ROOT}", f"-I{pybind11.get_include()}",
           f"-I{sysconfig.get_paths()['include']}", os.path.join(HERE, "fuzz_module.cc")]
    cmd += [os.path.join(ROOT, s) for s in SOURCES]
    cmd += ["-o", out, fuzzer, f"-Wl,-rpath,{os.path.dirname(fuzzer)}"]
    subprocess.run(cmd, check=True)
    return out


if __name__ == "__main__":
    print(build())
    sys.exit(0)
