// Python bindings for distributed sessions: shutting a party process down on a
// signal.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "tcp_transport.h"

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
}
