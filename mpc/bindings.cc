// Python bindings of the engine (module tflite_mpc._native): a local
// three-party session whose secrets live as shares inside the parties.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "bitslice.h"
#include "cpu.h"
#include "delegate/delegate.h"
#include "kernels/kernel.h"
#include "linalg.h"
#include "local.h"
#include "ops.h"
#include "mal3/gr.h"
#include "mal3/mal3.h"
#include "rep3/rep3.h"
#include "prg.h"

namespace py = pybind11;
using namespace mpc;

void bind_network(py::module_& m);  // bindings_net.cc
void bind_fuzz(py::module_& m);     // bindings_fuzz.cc
py::dict cost_dict(const OpCost& c);  // bindings_fuzz.cc

namespace {

struct Secret {
  Shape shape;
  std::vector<Share> parts;  // one per party
};
using SecretPtr = std::shared_ptr<Secret>;

Vec to_ring(const py::array& arr, Shape* shape) {
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error("expected an integer numpy array (int8/uint8/int16/int32/int64/uint64), got dtype " +
                         std::string(py::str(arr.dtype())));
  shape->assign(arr.shape(), arr.shape() + arr.ndim());
  Vec out(static_cast<size_t>(arr.size()));
  if (kind == 'u' && arr.itemsize() == 8) {
    auto a = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
    std::copy(a.data(), a.data() + a.size(), out.begin());
  } else {
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
    for (py::ssize_t i = 0; i < a.size(); ++i) out[i] = static_cast<u64>(a.data()[i]);
  }
  return out;
}

py::array from_ring(const Vec& v, const Shape& shape, bool is_signed) {
  std::vector<py::ssize_t> sh(shape.begin(), shape.end());
  if (is_signed) {
    py::array_t<int64_t> out(sh);
    std::copy(v.begin(), v.end(), reinterpret_cast<u64*>(out.mutable_data()));
    return out;
  }
  py::array_t<uint64_t> out(sh);
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

u64 to_u64(const py::handle& h) {
  py::int_ i = py::reinterpret_borrow<py::object>(h).cast<py::int_>();
  // Any Python int, reduced mod 2^64.
  py::object mod = py::int_(py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(~0ULL))) + py::int_(1);
  py::object r = i.attr("__mod__")(mod);
  return r.cast<unsigned long long>();
}

Pub to_pub(const py::object& o) {
  if (py::isinstance<py::int_>(o) || py::isinstance(o, py::module_::import("numpy").attr("integer")))
    return Pub(to_u64(o));
  if (py::isinstance<py::array>(o)) {
    py::array a = o;
    Shape s;
    Vec r = to_ring(a, &s);
    return Pub(std::vector<u64>(r.begin(), r.end()));
  }
  std::vector<u64> v;
  for (auto h : o) v.push_back(to_u64(h));
  if (v.empty()) throw py::value_error("empty constant vector");
  return Pub(v);
}

Shifts to_shifts(const py::object& o) {
  if (py::isinstance<py::int_>(o)) return Shifts(o.cast<int>());
  std::vector<int> v;
  for (auto h : o) v.push_back(h.cast<int>());
  if (v.empty()) throw py::value_error("empty shift vector");
  return Shifts(v);
}

RequantSpec requant_spec(const py::object& mult, const py::object& add, const py::object& d, const py::object& lo,
                         const py::object& hi, const py::object& adj, int acc_bits) {
  RequantSpec rs;
  rs.mult = to_pub(mult);
  rs.add = to_pub(add);
  rs.d = to_shifts(d);
  rs.lo = to_pub(lo);
  rs.hi = to_pub(hi);
  rs.adj = to_pub(adj);
  rs.acc_bits = acc_bits;
  return rs;
}

class Engine {
 public:
  Engine(const std::string& protocol, bool debug_checks, double timeout)
      : s_(std::make_unique<LocalSession>(protocol, timeout)) {
    for (int i = 0; i < s_->parties(); ++i) s_->party(i).debug_checks = debug_checks;
  }

  void set_round_bits(int k) {
    for (int i = 0; i < s_->parties(); ++i) {
      auto* r = dynamic_cast<Rep3*>(&s_->party(i));
      if (!r) throw py::value_error("round bits are a rep3 setting");
      r->set_round_bits(k);
    }
  }

  // Runs fn on every party; collects the per-party result shares into a Secret.
  SecretPtr run1(const std::function<Share(int, Protocol&)>& fn) {
    auto out = std::make_shared<Secret>();
    out->parts.resize(s_->parties());
    {
      py::gil_scoped_release nogil;
      s_->run([&](int i, Protocol& p) { out->parts[i] = fn(i, p); });
    }
    out->shape = out->parts[0].shape;
    return out;
  }

  std::vector<SecretPtr> runN(size_t count, const std::function<std::vector<Share>(int, Protocol&)>& fn) {
    std::vector<std::vector<Share>> res(s_->parties());
    {
      py::gil_scoped_release nogil;
      s_->run([&](int i, Protocol& p) { res[i] = fn(i, p); });
    }
    std::vector<SecretPtr> out;
    for (size_t t = 0; t < count; ++t) {
      auto sp = std::make_shared<Secret>();
      for (int i = 0; i < s_->parties(); ++i) sp->parts.push_back(std::move(res[i][t]));
      sp->shape = sp->parts[0].shape;
      out.push_back(sp);
    }
    return out;
  }

  SecretPtr share(const py::array& arr, int owner) {
    Shape shape;
    Vec data = to_ring(arr, &shape);
    if (owner < 0 || owner >= s_->parties()) throw py::value_error("owner must be 0, 1 or 2");
    return run1([&](int i, Protocol& p) { return p.input(owner, shape, i == owner ? data.data() : nullptr); });
  }

  py::object reveal(const SecretPtr& x, py::object to, bool is_signed, int bits) {
    const int t = to.is_none() ? -1 : to.cast<int>();
    if (t < -1 || t >= s_->parties()) throw py::value_error("reveal: 'to' must be None, 0, 1 or 2");
    if (bits < 1 || bits > 64) throw py::value_error("reveal: bits must be in [1, 64]");
    std::vector<Vec> res(s_->parties());
    {
      py::gil_scoped_release nogil;
      s_->run([&](int i, Protocol& p) { res[i] = p.reveal(x->parts[i], t); });
    }
    if (bits < 64)  // a value needed mod 2^bits only (out_bits): its higher bits are not defined
      for (auto& r : res)
        for (auto& v : r) {
          v &= mask_bits(bits);
          if (is_signed && (v >> (bits - 1) & 1)) v |= ~mask_bits(bits);
        }
    if (t >= 0) {
      for (int i = 0; i < s_->parties(); ++i)
        if (i != t && !res[i].empty()) throw std::logic_error("reveal leaked to a non-recipient");
      return from_ring(res[t], x->shape, is_signed);
    }
    for (int i = 1; i < s_->parties(); ++i)
      if (res[i] != res[0]) throw std::logic_error("parties disagree on a revealed value");
    return from_ring(res[0], x->shape, is_signed);
  }

  py::tuple view(const SecretPtr& x, int party) {
    if (party < 0 || party >= s_->parties()) throw py::value_error("party must be 0, 1 or 2");
    const Share& s = x->parts[party];
    return py::make_tuple(from_ring(s.a, x->shape, false), from_ring(s.b, x->shape, false));
  }

  py::list stats() {
    py::list out;
    for (int i = 0; i < s_->parties(); ++i) {
      py::dict d;
      auto conv = [](const OpCost& c) {
        py::dict e = cost_dict(c);
        e["calls"] = c.calls;
        return e;
      };
      for (auto& kv : s_->stats(i).ops) d[py::str(kv.first)] = conv(kv.second);
      d["total"] = conv(s_->stats(i).total());
      out.append(d);
    }
    return out;
  }
  void reset_stats() {
    for (int i = 0; i < s_->parties(); ++i) s_->stats(i).reset();
  }

  LocalSession& session() { return *s_; }

 private:
  std::unique_ptr<LocalSession> s_;
};

ConvGeom geom_from(const Secret& x, const Secret& w, bool depthwise, py::object stride, py::object dilation,
                   const std::string& padding, int depth_multiplier) {
  if (x.shape.size() != 4) throw py::value_error("conv: input must be NHWC (4-D), got " + shape_str(x.shape));
  if (w.shape.size() != 4) throw py::value_error("conv: filter must be 4-D, got " + shape_str(w.shape));
  if (padding != "same" && padding != "valid") throw py::value_error("padding must be 'same' or 'valid'");
  auto pair = [](py::object o) {
    if (py::isinstance<py::int_>(o)) return std::make_pair(o.cast<int64_t>(), o.cast<int64_t>());
    auto t = o.cast<std::vector<int64_t>>();
    if (t.size() != 2) throw py::value_error("stride/dilation must be an int or a pair");
    return std::make_pair(t[0], t[1]);
  };
  auto [sh, sw] = pair(stride);
  auto [dh, dw] = pair(dilation);
  const int64_t oc = depthwise ? w.shape[3] : w.shape[0];
  ConvGeom g = ConvGeom::make(x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[1], w.shape[2], oc, sh, sw,
                              dh, dw, padding == "same");
  g.depth_multiplier = depth_multiplier;
  return g;
}

}  // namespace

// A message that is not valid UTF-8 (it may quote a file) must not turn into a UnicodeDecodeError.
static void set_error(PyObject* type, const char* what) {
  PyObject* msg = PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "replace");
  PyErr_SetObject(type, msg);
  Py_XDECREF(msg);
}

PYBIND11_MODULE(_native, m) {
  m.doc() = "tflite-mpc native engine";
  // tflite_mpc.CheatingDetected: an actively secure protocol's check failed (RuntimeError).
  static py::exception<CheatingDetected> cheating(m, "CheatingDetected", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const CheatingDetected& e) {
      set_error(cheating.ptr(), e.what());
    } catch (const ArgError& e) {
      set_error(PyExc_ValueError, e.what());
    } catch (const Error& e) {
      set_error(PyExc_RuntimeError, e.what());
    }
  });

  m.def("simd_level", &simd_level);
  m.def("force_simd_level", &force_simd_level, py::arg("level"));
  m.def("_pool_cached_nonzero_bytes", &pool_cached_nonzero_bytes);
  m.def("_pool_cached_bytes", &pool_cached_bytes);
  m.def("prg_backend", [] { return std::string(Prg::backend()); });
  m.def("protocols", &protocol_names);
  m.def("_requant_reads", [](const std::string& protocol, py::object mult, py::object add, py::object d, py::object lo,
                             py::object hi, int acc_bits) {
    return requant_reads(protocol, requant_spec(mult, add, d, lo, hi, py::int_(0), acc_bits));
  }, "Low bits of the accumulator protocol's requant reads (mpc::requant_reads)");
  m.def("_layer_requant_spec", [](bool exact, int32_t mult, int shift, int32_t zp_out, int32_t lo, int32_t hi,
                                   bool single_rounding, int acc_bits, int64_t anchor) {
    // The fused requantization's parameters as a layer builds them (tests of their arithmetic)
    tflite_mpc::NarrowAcc n;
    if (acc_bits > 0) {
      n.acc_bits = acc_bits;
      n.anchor = {anchor};
    }
    const RequantSpec s = tflite_mpc::requant_spec(exact, {mult}, {shift}, zp_out, lo, hi, single_rounding,
                                                   acc_bits > 0 ? &n : nullptr);
    return py::make_tuple(s.mult.at(0), s.add.at(0), s.d.at(0), s.adj.at(0), s.lo.at(0), s.hi.at(0));
  }, "mult, add, d, adj, lo, hi of a layer's fused requantization (kernels::requant_spec)");
  // Fault injection for tests of active security (mpc/fault.h); inert unless armed.
  m.def(
      "_fault_arm",
      [](int party, const std::string& kind, const std::string& mode, uint64_t seed, long skip, long count) {
        fault::Plan p;
        p.party = party;
        p.kind = kind;
        if (mode == "add") p.mode = fault::Mode::kAdd;
        else if (mode == "flip") p.mode = fault::Mode::kFlip;
        else if (mode == "inconsistent") p.mode = fault::Mode::kInconsistent;
        else throw ArgError("fault mode must be add, flip or inconsistent");
        p.seed = seed;
        p.skip = skip;
        p.count = count;
        fault::arm(p);
      },
      py::arg("party"), py::arg("kind"), py::arg("mode") = "add", py::arg("seed") = 0, py::arg("skip") = 0,
      py::arg("count") = 1);
  m.def("_fault_disarm", &fault::disarm);
  m.def("_fault_tampered", &fault::tampered);
  // Test hook: the product of two elements of mal3's Galois ring GR(2^64, 48) (48 coefficients each).
  m.def("_gr_mul", [](py::array_t<uint64_t, py::array::c_style | py::array::forcecast> a,
                      py::array_t<uint64_t, py::array::c_style | py::array::forcecast> b) {
    if (a.size() != gr::D || b.size() != gr::D) throw ArgError("_gr_mul: two arrays of 48 coefficients");
    py::array_t<uint64_t> out(gr::D);
    gr::mul(a.data(), b.data(), out.mutable_data());
    return out;
  });
  // Test hook: mal3's vector kernels on [n, 48] arrays: "inner" sum_k a_k b_k, "inner_diff"
  // sum_k (a1_k - a0_k)(b1_k - b0_k) (a = [a0; a1], b = [b0; b1], n = rows / 2) and "fold"
  // a_k + r (a_{k+h} - a_k), h = rows / 2 (r: the bits of an element of A).
  m.def("_gr_vec", [](const std::string& op, py::array_t<uint64_t, py::array::c_style | py::array::forcecast> a,
                      py::array_t<uint64_t, py::array::c_style | py::array::forcecast> b, uint64_t r) {
    if (a.ndim() != 2 || a.shape(1) != gr::D || a.shape(0) % 2) throw ArgError("_gr_vec: a must be [2h, 48]");
    const size_t rows = a.shape(0), h = rows / 2;
    if (op == "fold") {
      Vec v(a.data(), a.data() + rows * gr::D);
      gr::fold_a(v.data(), h, r & gr::kAMask, 0, h);
      py::array_t<uint64_t> out({h, size_t{gr::D}});
      std::copy(v.begin(), v.begin() + h * gr::D, out.mutable_data());
      return out;
    }
    if (b.ndim() != 2 || b.shape(0) != a.shape(0) || b.shape(1) != gr::D) throw ArgError("_gr_vec: b must be like a");
    py::array_t<uint64_t> out(gr::D);
    if (op == "inner") gr::inner(a.data(), b.data(), rows, out.mutable_data());
    else if (op == "inner_diff") gr::inner_diff(a.data(), a.data() + h * gr::D, b.data(), b.data() + h * gr::D, h, out.mutable_data());
    else throw ArgError("_gr_vec: op is inner, inner_diff or fold");
    return out;
  });
  m.def("_gf_kernels_agree", &gf_kernels_agree, py::arg("seed"), py::arg("n"));
  // Test hook: the word-lane kernels of the proofs. Elementwise products' first step (groups
  // of K = 8, 16 or 32 words, u: alpha per group): "spread_acc" (x: z, KG words) -> T [48 x K];
  // "moments" (x: X, a: Y) -> N [48 x K^2]; "combine" (x: X, a: K elements of 48 words,
  // u empty: no alpha) -> [G, 48]. "xor_spread": 64 words, S[b] = xor of a_k over the k with
  // bit b of x_k & u_k set.
  m.def("_lane_kernel", [](const std::string& op, py::array_t<uint64_t, py::array::c_style | py::array::forcecast> u,
                           py::array_t<uint64_t, py::array::c_style | py::array::forcecast> x,
                           py::array_t<uint64_t, py::array::c_style | py::array::forcecast> a) {
    const size_t n = static_cast<size_t>(u.size());
    if (op == "xor_spread") {
      if (static_cast<size_t>(x.size()) != n || static_cast<size_t>(a.size()) != n)
        throw ArgError("_lane_kernel: u, x and a differ in length");
      py::array_t<uint64_t> out(64);
      std::fill_n(out.mutable_data(), 64, 0);
      gr::xor_spread(out.mutable_data(), x.data(), u.data(), a.data(), n);
      return out;
    }
    // groups of K words: K from the alphas (one per group) or, for combine without them, from coef
    const size_t K = op == "combine" ? static_cast<size_t>(a.size()) / gr::D : n ? static_cast<size_t>(x.size()) / n : 0;
    if ((K != 8 && K != 16 && K != 32) || static_cast<size_t>(x.size()) % K)
      throw ArgError("_lane_kernel: groups of 8, 16 or 32 words");
    const size_t G = static_cast<size_t>(x.size()) / K;
    auto by_k = [&](auto f) {
      if (K == 8) f(std::integral_constant<int, 8>{});
      else if (K == 16) f(std::integral_constant<int, 16>{});
      else f(std::integral_constant<int, 32>{});
    };
    if (op == "combine") {
      if (n && n != G) throw ArgError("_lane_kernel: one alpha per group (or none)");
      if (static_cast<size_t>(a.size()) != K * gr::D) throw ArgError("_lane_kernel: K coefficients of 48 words");
      py::array_t<uint64_t> out({G, size_t{gr::D}});
      by_k([&](auto k) { gr::combine<k()>(x.data(), G, a.data(), n ? u.data() : nullptr, out.mutable_data()); });
      return out;
    }
    if (n != G) throw ArgError("_lane_kernel: one alpha per group");
    if (op == "spread_acc") {
      py::array_t<uint64_t> out(K * gr::D);
      std::fill_n(out.mutable_data(), K * gr::D, 0);
      by_k([&](auto k) { gr::spread_acc<k()>(u.data(), x.data(), G, out.mutable_data()); });
      return out;
    }
    if (op != "moments") throw ArgError("_lane_kernel: op is spread_acc, moments, combine or xor_spread");
    if (a.size() != x.size()) throw ArgError("_lane_kernel: x and a differ in length");
    py::array_t<uint64_t> out(K * K * gr::D);
    std::fill_n(out.mutable_data(), K * K * gr::D, 0);
    by_k([&](auto k) { gr::moments<k()>(x.data(), a.data(), u.data(), G, out.mutable_data()); });
    return out;
  });
  m.def("aes128_encrypt_block", [](py::bytes key, py::bytes block) {
    std::string k = key, b = block;
    if (k.size() != 16 || b.size() != 16) throw py::value_error("key and block must be 16 bytes");
    Key kk;
    std::array<uint8_t, 16> bb;
    std::copy(k.begin(), k.end(), kk.begin());
    std::copy(b.begin(), b.end(), bb.begin());
    auto out = Prg::encrypt_block(kk, bb);
    return py::bytes(reinterpret_cast<const char*>(out.data()), 16);
  });
  m.def("prg_stream", [](py::bytes key, size_t n) {
    std::string k = key;
    if (k.size() != 16) throw py::value_error("key must be 16 bytes");
    Key kk;
    std::copy(k.begin(), k.end(), kk.begin());
    Prg g(kk);
    return from_ring(g.next(n), {static_cast<int64_t>(n)}, false);
  });
  m.def(
      "gemm_u64",
      [](py::array a, py::array b) {
        Shape sa, sb;
        auto A = to_ring(a, &sa);
        auto B = to_ring(b, &sb);
        if (sa.size() != 2 || sb.size() != 2 || sa[1] != sb[0]) throw py::value_error("gemm: incompatible shapes");
        Vec C(sa[0] * sb[1]);
        {
          py::gil_scoped_release nogil;
          gemm_u64(sa[0], sb[1], sa[1], A.data(), sa[1], B.data(), sb[1], C.data(), sb[1], false);
        }
        return from_ring(C, {sa[0], sb[1]}, false);
      },
      "Plaintext C = A @ B mod 2^64 with the engine's GEMM.");
  m.def(
      "bit_planes",
      [](py::array v, size_t planes) {
        Shape sv;
        auto V = to_ring(v, &sv);
        if (planes > 128) throw py::value_error("bit_planes: at most 128 planes");
        const size_t W = words_for(V.size());
        Vec out(planes * W);
        bit_planes(V.data(), V.size(), planes, W, out.data());
        return from_ring(out, {static_cast<int64_t>(planes), static_cast<int64_t>(W)}, false);
      },
      "Bit planes of uint64 values (tests): out[j, w] bit i = bit j of v[64 w + i].");
  m.def(
      "time_gemm",
      [](size_t M, size_t K, size_t N, int repeat) {
        // Benchmark baseline: the plaintext 64-bit GEMM alone (one thread), median seconds.
        Prg g(Key{});
        Vec A = g.next(M * K), B = g.next(K * N), C(M * N);
        std::vector<double> t;
        py::gil_scoped_release nogil;
        for (int r = 0; r < repeat; ++r) {
          double t0 = now_seconds();
          gemm_u64(M, N, K, A.data(), K, B.data(), N, C.data(), N, false);
          t.push_back(now_seconds() - t0);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
      },
      py::arg("M"), py::arg("K"), py::arg("N"), py::arg("repeat") = 5);

  // ---- delegate side (the same library is the TFLite plugin)
  bind_network(m);
  bind_fuzz(m);
  m.def("delegate_last_error", &tflite_mpc::last_error);
  m.def("delegate_last_check", [] {
    py::list out;
    for (const auto& c : tflite_mpc::last_check()) {
      py::dict d;
      d["node"] = c.node;
      d["op"] = c.op;
      d["status"] = c.status;
      d["detail"] = c.detail;
      out.append(d);
    }
    return out;
  });
  m.def("validate_options", [](const std::map<std::string, std::string>& kv) {
    std::vector<std::pair<std::string, std::string>> v(kv.begin(), kv.end());
    tflite_mpc::Options::parse(v);
  });
  m.def(
      "delegate_report",
      [](py::object handle) -> py::object {
        tflite_mpc::Report* r = handle.is_none() ? tflite_mpc::last_report()
                                                 : tflite_mpc::report_for(reinterpret_cast<const void*>(handle.cast<uintptr_t>()));
        if (!r) return py::none();
        const auto cost = cost_dict;
        py::list layers;
        for (auto& l : r->layers) {
          py::dict d;
          d["node"] = l.node;
          d["op"] = l.op;
          d["shape"] = l.shape.empty() && l.node < 0 ? py::object(py::none()) : py::object(py::cast(l.shape));
          d["seconds"] = l.seconds;
          py::list parties;
          for (auto& c : l.party) parties.append(cost(c));
          d["parties"] = parties;
          layers.append(d);
        }
        py::dict out;
        out["layers"] = layers;
        out["seconds"] = r->seconds;
        out["graph_hash"] = r->graph_hash;
        out["fc_rounding"] = r->fc_rounding;
        out["estimated"] = r->estimated;
        if (r->network.enabled()) {
          py::dict net;
          net["profile"] = r->network.profile;
          net["latency_ms"] = r->network.latency_ms;
          net["bandwidth_mbps"] = r->network.bandwidth_mbps > 0 ? py::object(py::float_(r->network.bandwidth_mbps))
                                                                : py::object(py::none());
          out["network"] = net;
        } else {
          out["network"] = py::none();
        }
        if (!r->argmax.empty()) out["argmax"] = py::cast(r->argmax);
        py::list tot;
        for (auto& c : r->total) tot.append(cost(c));
        out["parties"] = tot;
        py::list rev;
        for (auto& c : r->reveal) rev.append(cost(c));
        out["reveal"] = rev;
        py::list rev_out;
        for (auto& c : r->reveal_outside) rev_out.append(cost(c));
        out["reveal_outside"] = rev_out;
        out["protocol"] = r->protocol;
        out["truncation"] = r->truncation;
        py::dict roles;
        roles["data_owner"] = r->data_owner;
        roles["model_owner"] = r->model_owner;
        roles["output_to"] = py::cast(r->output_to);
        out["roles"] = roles;
        out["party"] = r->party < 0 ? py::object(py::none()) : py::object(py::int_(r->party));
        py::list seen;
        for (size_t i = 0; i < r->seen.size(); ++i)
          if (r->seen[i]) seen.append(static_cast<int>(i));
        out["parties_seen"] = seen;
        out["notes"] = py::cast(r->notes);
        return out;
      },
      py::arg("delegate") = py::none());

  py::class_<Secret, SecretPtr>(m, "Secret")
      .def_property_readonly("shape", [](const Secret& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("size", [](const Secret& s) { return shape_size(s.shape); })
      .def("__repr__", [](const Secret& s) { return "<Secret shape=" + shape_str(s.shape) + ">"; });

  using S = const SecretPtr&;
  py::class_<Engine>(m, "Engine")
      .def(py::init<const std::string&, bool, double>(), py::arg("protocol") = "rep3",
           py::arg("debug_checks") = false, py::arg("timeout") = 120.0)
      .def("share", &Engine::share, py::arg("array"), py::arg("owner") = 0)
      .def("_set_round_bits", [](Engine& e, int k) { e.set_round_bits(k); }, py::arg("k"),
           "Test hook: rep3's trunc_pr rounds the low min(d, k) bits with a secret offset.")
      .def("reveal", &Engine::reveal, py::arg("x"), py::arg("to") = py::none(), py::arg("signed") = true,
           py::arg("bits") = 64)
      .def("view", &Engine::view, py::arg("x"), py::arg("party"))
      .def("stats", &Engine::stats)
      .def("reset_stats", &Engine::reset_stats)
      .def("check_range", [](Engine& e, S x, int64_t lo, int bits) {
        // Protocol::check_ranges on x (x in [lo, lo + 2^bits)); the check ends at the next
        // verification (a reveal). Returns x.
        return e.run1([&](int i, Protocol& p) {
          p.check_ranges({{&x->parts[i], lo, bits}});
          return x->parts[i];
        });
      }, py::arg("x"), py::arg("lo"), py::arg("bits"))
      .def("add", [](Engine& e, S x, S y) { return e.run1([&](int i, Protocol& p) { return p.add(x->parts[i], y->parts[i]); }); })
      .def("sub", [](Engine& e, S x, S y) { return e.run1([&](int i, Protocol& p) { return p.sub(x->parts[i], y->parts[i]); }); })
      .def("neg", [](Engine& e, S x) { return e.run1([&](int i, Protocol& p) { return p.neg(x->parts[i]); }); })
      .def("add_public", [](Engine& e, S x, py::object c) {
        Pub pc = to_pub(c);
        return e.run1([&](int i, Protocol& p) { return p.add_public(x->parts[i], pc); });
      })
      .def("mul_public", [](Engine& e, S x, py::object c) {
        Pub pc = to_pub(c);
        return e.run1([&](int i, Protocol& p) { return p.mul_public(x->parts[i], pc); });
      })
      .def("mul", [](Engine& e, S x, S y, int out_bits) {
        return e.run1([&](int i, Protocol& p) {
          Product pr{Product::kElementwise, &x->parts[i], &y->parts[i], {}};
          pr.out_bits = out_bits;
          return std::move(p.products({pr})[0]);
        });
      }, py::arg("x"), py::arg("y"), py::arg("out_bits") = 64,
         "Elementwise product; out_bits < 64: needed mod 2^out_bits only (Product::out_bits)")
      .def("matmul", [](Engine& e, S x, S y) { return e.run1([&](int i, Protocol& p) { return p.matmul(x->parts[i], y->parts[i]); }); })
      .def("mul_many", [](Engine& e, const std::vector<std::pair<SecretPtr, SecretPtr>>& pairs, bool matmul) {
        return e.runN(pairs.size(), [&](int i, Protocol& p) {
          std::vector<Product> list;
          for (auto& [x, y] : pairs) list.push_back({matmul ? Product::kMatmul : Product::kElementwise, &x->parts[i], &y->parts[i], {}});
          return p.products(list);
        });
      }, py::arg("pairs"), py::arg("matmul") = false,
         "Independent products in one round (elementwise, or matrix products with matmul=True).")
      .def("conv2d", [](Engine& e, S x, S w, py::object stride, py::object dilation, const std::string& padding) {
        ConvGeom g = geom_from(*x, *w, false, stride, dilation, padding, 1);
        return e.run1([&](int i, Protocol& p) { return p.conv2d(x->parts[i], w->parts[i], g); });
      }, py::arg("x"), py::arg("w"), py::arg("stride") = 1, py::arg("dilation") = 1, py::arg("padding") = "same")
      .def("depthwise_conv2d", [](Engine& e, S x, S w, py::object stride, py::object dilation, const std::string& padding, int dm) {
        ConvGeom g = geom_from(*x, *w, true, stride, dilation, padding, dm);
        return e.run1([&](int i, Protocol& p) { return p.depthwise(x->parts[i], w->parts[i], g); });
      }, py::arg("x"), py::arg("w"), py::arg("stride") = 1, py::arg("dilation") = 1, py::arg("padding") = "same",
         py::arg("depth_multiplier") = 1)
      .def("trunc_pr", [](Engine& e, S x, py::object d) {
        Shifts sd = to_shifts(d);
        return e.run1([&](int i, Protocol& p) { return p.trunc_pr(x->parts[i], sd); });
      }, py::arg("x"), py::arg("d"))
      .def("trunc", [](Engine& e, S x, py::object d) {
        Shifts sd = to_shifts(d);
        return e.run1([&](int i, Protocol& p) { return p.trunc(x->parts[i], sd); });
      }, py::arg("x"), py::arg("d"))
      .def("msb", [](Engine& e, S x, int bits) { return e.run1([&](int i, Protocol& p) { return p.msb(x->parts[i], bits); }); },
           py::arg("x"), py::arg("bits") = 32)
      .def("bits", [](Engine& e, S x, int k) {
        return e.runN(k, [&](int i, Protocol& p) { return p.bits(x->parts[i], k); });
      }, py::arg("x"), py::arg("k"), "Arithmetic sharings of bits 0..k-1 of x mod 2^k.")
      .def("relu", [](Engine& e, S x, int bits) { return e.run1([&](int i, Protocol& p) { return relu(p, x->parts[i], bits); }); },
           py::arg("x"), py::arg("bits") = 32)
      .def("max", [](Engine& e, S x, S y, int bits) { return e.run1([&](int i, Protocol& p) { return max(p, x->parts[i], y->parts[i], bits); }); },
           py::arg("x"), py::arg("y"), py::arg("bits") = 32)
      .def("select", [](Engine& e, S c, S x, S y) { return e.run1([&](int i, Protocol& p) { return select(p, c->parts[i], x->parts[i], y->parts[i]); }); })
      .def("clamp", [](Engine& e, S x, py::object lo, py::object hi, int bits) {
        Pub l = to_pub(lo), h = to_pub(hi);
        return e.run1([&](int i, Protocol& p) { return clamp(p, x->parts[i], l, h, bits); });
      }, py::arg("x"), py::arg("lo"), py::arg("hi"), py::arg("bits") = 32)
      .def("round_div_pot", [](Engine& e, S x, py::object ex, int bits) {
        Shifts s = to_shifts(ex);
        return e.run1([&](int i, Protocol& p) { return round_div_pot(p, x->parts[i], s, bits); });
      }, py::arg("x"), py::arg("e"), py::arg("bits") = 32)
      .def("requantize", [](Engine& e, S x, py::object mult, py::object shift, bool exact) {
        Pub m = to_pub(mult);
        Shifts s = to_shifts(shift);
        return e.run1([&](int i, Protocol& p) { return exact ? requantize_exact(p, x->parts[i], m, s) : requantize_nearest(p, x->parts[i], m, s); });
      }, py::arg("x"), py::arg("multiplier"), py::arg("shift"), py::arg("exact") = true,
         "TFLite MultiplyByQuantizedMultiplier on secret int32 values (exact=False: rounded to nearest in one step, within 1).")
      .def("requant", [](Engine& e, S x, py::object mult, py::object add, py::object d, py::object lo, py::object hi,
                         py::object adj, int acc_bits, bool stochastic, bool composed, int out_bits) {
        RequantSpec rs = requant_spec(mult, add, d, lo, hi, adj, acc_bits);
        rs.stochastic = stochastic;
        rs.out_bits = out_bits;
        return e.run1([&](int i, Protocol& p) { return composed ? p.requant_composed(x->parts[i], rs) : p.requant(x->parts[i], rs); });
      }, py::arg("x"), py::arg("mult"), py::arg("add"), py::arg("d"), py::arg("lo"), py::arg("hi"), py::arg("adj") = 0,
         py::arg("acc_bits") = 32, py::arg("stochastic") = false, py::arg("composed") = false, py::arg("out_bits") = 64,
         "Fused requantization clamp(R(x * mult + add), lo, hi) (Protocol::requant); composed=True runs the "
         "generic composition of trunc/msb/clamp instead; out_bits < 64: the output is needed mod 2^out_bits only.")
      .def("concat", [](Engine& e, const std::vector<SecretPtr>& xs) {
        return e.run1([&](int i, Protocol&) {
          std::vector<const Share*> v;
          for (auto& x : xs) v.push_back(&x->parts[i]);
          return concat(v);
        });
      }, "Flatten secrets into one, so independent elementwise operations share their rounds.")
      .def("split", [](Engine& e, S x, const std::vector<Shape>& shapes) {
        return e.runN(shapes.size(), [&](int i, Protocol&) { return split(x->parts[i], shapes); });
      });
}
