// Test-only entries (tests/fuzz) that run the real wire and party-configuration
// parsers on a buffer. Part of tflite_mpc._native, and compiled with coverage
// instrumentation into tests/fuzz's own module for long fuzzing runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "delegate/config.h"
#include "wire.h"

namespace py = pybind11;
using namespace mpc;

// A party's cost as Python sees it (reports, Engine.stats, the cost-message entry below).
py::dict cost_dict(const OpCost& c) {
  py::dict d;
  d["bytes_sent"] = c.bytes_sent;
  d["bytes_recv"] = c.bytes_recv;
  d["rounds"] = c.rounds;
  d["depth"] = c.depth;
  py::list to;
  for (int i = 0; i < 3; ++i) to.append(c.bytes_to[i]);
  d["bytes_sent_to"] = to;
  d["seconds"] = c.seconds;
  return d;
}

void bind_fuzz(py::module_& m) {
  m.def(
      "_fuzz_parse_costs",
      [](py::bytes message, int sender, size_t entries) -> py::object {
        // Runs the cost-message check (mpc/wire.h) on `message`: a list of per-entry dicts, or
        // the reason it is refused (a str). Whole words only, as the transport delivers them.
        const std::string s = message;
        if (s.size() % 8) return py::str("not whole words");
        std::vector<u64> w(s.size() / 8);
        if (!s.empty()) std::memcpy(w.data(), s.data(), s.size());
        std::vector<OpCost> out;
        const std::string why = decode_cost_message(w.data(), w.size(), sender, entries, &out);
        if (!why.empty()) return py::str(why);
        py::list l;
        for (const OpCost& c : out) l.append(cost_dict(c));
        return l;
      },
      py::arg("message"), py::arg("sender"), py::arg("entries"));
  m.def(
      "_fuzz_cost_message",
      [](int sender, const std::vector<std::tuple<u64, u64, u64, double>>& entries) -> py::bytes {
        // An honest cost message: entries (bytes_sent, bytes_recv, rounds, seconds).
        std::vector<OpCost> cs;
        for (auto& [sent, recv, rounds, secs] : entries) {
          OpCost c;
          c.bytes_sent = sent;
          c.bytes_recv = recv;
          c.rounds = rounds;
          c.seconds = secs;
          cs.push_back(c);
        }
        const Vec v = encode_cost_message(sender, cs);
        return py::bytes(reinterpret_cast<const char*>(v.data()), v.size() * 8);
      },
      py::arg("sender"), py::arg("entries"));
  m.def(
      "_fuzz_parse_frames",
      [](py::bytes stream, const std::vector<size_t>& expect, size_t chunk, bool hello) -> py::tuple {
        // Feeds `stream` through the transport's frame reader `chunk` bytes at a
        // time (as the socket would), asking for a hello first if `hello`, then
        // for data frames of the sizes in `expect`. Returns the payloads read and
        // the goodbye reason (None if none); errors raise RuntimeError.
        const std::string s = stream;
        FrameReader r("the peer");
        py::list got;
        size_t pos = 0, next = 0;
        bool want_hello = hello;
        if (want_hello) r.expect_hello();
        else if (next < expect.size()) r.expect_data(expect[next++]);
        if (chunk == 0) chunk = 1;
        for (;;) {
          if (r.ready()) {
            if (want_hello) {
              const std::string h = r.take_hello();
              const PeerHello ph = parse_hello_payload(h);
              const std::string ours = "tflite-mpc=1;protocol=rep3;truncation=exact;roles=0,1,0;graph=00ff";
              if (ph.hello != ours) describe_mismatch(0, ph.id, ours, ph.hello);
              got.append(py::bytes(h));
              want_hello = false;
            } else {
              size_t n = 0;
              Vec v = r.take(&n);
              got.append(py::bytes(reinterpret_cast<const char*>(v.data()), n));
            }
            if (next < expect.size()) r.expect_data(expect[next++]);
          }
          if (r.ended()) return py::make_tuple(got, py::str(r.bye_reason()));
          auto [p, n] = r.space();
          const size_t k = std::min({n, chunk, s.size() - pos});
          if (k == 0) break;  // the stream is used up, or nothing more is asked for
          std::memcpy(p, s.data() + pos, k);
          pos += k;
          r.commit(k);
        }
        return py::make_tuple(got, py::none());
      },
      py::arg("stream"), py::arg("expect"), py::arg("chunk") = 65536, py::arg("hello") = false);
  m.def(
      "_fuzz_parse_config",
      [](py::bytes text) {
        // The party configuration parser on `text` (relative paths resolve
        // against /fuzz); errors raise ValueError. Returns the party ports.
        const auto c = tflite_mpc::PartyConfig::parse(std::string(text), "/fuzz/parties.json");
        std::vector<int> ports;
        for (auto& p : c.parties) ports.push_back(p.port);
        return ports;
      },
      py::arg("text"));
}
