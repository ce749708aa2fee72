"""Build tflite-mpc: one native library (engine, kernels, delegate) that is both
the Python extension `tflite_mpc._native` and the TFLite delegate plugin.

The binary is portable x86-64: no -march=native. SIMD fast paths (AVX-512,
AVX2, AES-NI/VAES) are compiled per function and chosen at run time.
"""
import glob
import os

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup

ParallelCompile("TFLITE_MPC_BUILD_JOBS", default=2).install()

HERE = os.path.dirname(os.path.abspath(__file__))


def sources():
    out = []
    for pattern in ("mpc/*.cc", "mpc/*/*.cc", "kernels/*.cc", "delegate/*.cc"):
        out += sorted(glob.glob(os.path.join(HERE, pattern)))
    return [os.path.relpath(p, HERE) for p in out]


def static_openssl():
    """TensorFlow exports BoringSSL symbols into the process: a dynamically linked
    OpenSSL would be interposed by them. Link OpenSSL's libssl and libcrypto
    statically and keep their symbols local (--exclude-libs)."""
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib64", "/usr/local/lib"):
        ssl, crypto = os.path.join(d, "libssl.a"), os.path.join(d, "libcrypto.a")
        if os.path.exists(ssl) and os.path.exists(crypto):
            return [ssl, crypto]
    raise RuntimeError("libssl.a/libcrypto.a not found: install OpenSSL's development files (Debian: libssl-dev)")


ext = Pybind11Extension(
    "tflite_mpc._native",
    sources(),
    include_dirs=[HERE],
    cxx_std=17,
    extra_compile_args=["-O3", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
    extra_objects=static_openssl(),
    extra_link_args=["-Wl,--exclude-libs,ALL", "-pthread"],
    libraries=["dl"],
)

setup(
    name="tflite-mpc",
    version="0.1.0",
    description="Run stock quantized TFLite models under secure multi-party computation",
    packages=find_packages(include=["tflite_mpc", "tflite_mpc.*"]),
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
    python_requires=">=3.9",
    install_requires=["numpy", "tqdm"],  # tqdm: the progress bar of tflite-mpc eval
    extras_require={
        "demo": ["tensorflow", "pillow"],
        "plot": ["matplotlib"],  # tflite_mpc.report(d).plot()
        "test": ["pytest", "tensorflow", "ai-edge-litert", "scikit-learn", "pillow", "atheris", "matplotlib"],
    },
    entry_points={"console_scripts": ["tflite-mpc=tflite_mpc.cli:main"]},
    zip_safe=False,
)
