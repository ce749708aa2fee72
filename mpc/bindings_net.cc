// Python bindings for distributed sessions: shutting a party process down on a
// signal, and the test-only entries that run the real wire and configuration
// parsers on a buffer (tests/fuzz).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "delegate/config.h"
#include "tcp_transport.h"
#include "wire.h"

namespace py = pybind11;
using namespace mpc;

void bind_network(py::module_& m) {
  m.def(
      "shutdown_sessions", [](const std::string& reason) { TcpNetwork::shutdown_all(reason); },
      py::arg("reason") = "shutting down",
      "End every distributed session of this process now and refuse new ones (a party that stops).");
  m.def("shutting_down", &TcpNetwork::shutting_down);
  m.def(
      "close_sessions", [](const std::string& reason) { TcpNetwork::close_all(reason); },
      py::arg("reason") = "finished", "Say goodbye and close every distributed session of this process.");
  m.def(
      "shutdown_on_wakeup_fd",
      [](int fd) {
        // signal.set_wakeup_fd() writes the signal number to the pipe without
        // needing the GIL, which a thread blocked in a session may hold.
        std::thread([fd] {
          for (;;) {
            unsigned char sig = 0;
            const ssize_t k = read(fd, &sig, 1);
            if (k == 1) TcpNetwork::shutdown_all("shutting down (signal " + std::to_string(sig) + ")");
            else if (k < 0 && errno == EINTR) continue;
            else return;
          }
        }).detach();
      },
      py::arg("fd"),
      "End every session as soon as a byte arrives on fd (the read end of signal.set_wakeup_fd's pipe).");

  // ---- test-only: the real parsers on a buffer (tests/fuzz)
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
