// The fuzz entries of tflite_mpc._native (mpc/bindings_fuzz.cc) as their own
// module, built by build.py with coverage instrumentation of the parsers.
#include <pybind11/pybind11.h>

#include <cstring>

#include "mpc/common.h"

namespace py = pybind11;

void bind_fuzz(py::module_& m);

PYBIND11_MODULE(_fuzz_native, m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mpc::ArgError& e) {
      PyErr_SetObject(PyExc_ValueError, PyUnicode_DecodeUTF8(e.what(), std::strlen(e.what()), "replace"));
    } catch (const mpc::Error& e) {
      PyErr_SetObject(PyExc_RuntimeError, PyUnicode_DecodeUTF8(e.what(), std::strlen(e.what()), "replace"));
    }
  });
  bind_fuzz(m);
}

// GCC also traces floating-point comparisons; libFuzzer has no use for them.
extern "C" __attribute__((visibility("default"))) void __sanitizer_cov_trace_cmpf(float, float) {}
extern "C" __attribute__((visibility("default"))) void __sanitizer_cov_trace_cmpd(double, double) {}
