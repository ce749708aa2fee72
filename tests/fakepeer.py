"""A fake party in Python that speaks tflite-mpc's wire format (mpc/wire.h) over
`tcp-insecure` or TLS with a valid certificate, to attack real party processes.

Frames: an 8-byte little-endian header (kind in the top 8 bits, payload length in
the low 56), then the payload. Kinds: 0 data, 1 hello ("<id>\\n<hello>"), 2 goodbye."""
import json
import os
import socket
import ssl
import struct
import time

DATA, HELLO, BYE = 0, 1, 2
# FAKEPEER_LEGACY=1: the format before issue 7 (a bare 64-bit length, no kind), to
# run these tests against the old transport and see them fail.
LEGACY = os.environ.get("FAKEPEER_LEGACY") == "1"


def header(kind, length):
    return struct.pack("<Q", length if LEGACY else (kind << 56) | length)


def frame(kind, payload):
    return header(kind, len(payload)) + payload


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_frame(sock):
    (h,) = struct.unpack("<Q", read_exact(sock, 8))
    if LEGACY:
        return HELLO, read_exact(sock, h)
    return h >> 56, read_exact(sock, h & ((1 << 56) - 1))


class FakeParty:
    """Plays party `me` of the session in config file `cfg`: listens on its port,
    and completes the handshake with the (real) higher parties that dial it,
    echoing their hello so that they take it for an honest party."""

    def __init__(self, cfg, me=0):
        self.cfg = json.load(open(cfg))
        base = os.path.dirname(os.path.abspath(cfg))
        path = lambda p: p if os.path.isabs(p) else os.path.join(base, p)  # noqa: E731
        self.me = me
        self.tls = self.cfg.get("transport", "tls") == "tls"
        if self.tls:
            me_cfg = self.cfg["parties"][me]
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            self.ctx.load_cert_chain(path(me_cfg["cert"]), path(me_cfg["key"]))
            self.ctx.load_verify_locations(path(self.cfg["ca"]))
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.conns = {}  # party id -> socket (TLS-wrapped for tls)

    def accept_parties(self, ids=(1, 2), timeout=30):
        """Accept until every party in `ids` has dialled us and sent its hello."""
        port = self.cfg["parties"][self.me]["port"]
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(8)
        deadline = time.time() + timeout
        try:
            while set(ids) - set(self.conns):
                ls.settimeout(max(deadline - time.time(), 0.01))
                raw, _ = ls.accept()
                raw.settimeout(10)
                s = self.ctx.wrap_socket(raw, server_side=True) if self.tls else raw
                kind, payload = read_frame(s)
                assert kind == HELLO, kind
                pid, hello = payload.split(b"\n", 1)
                s.sendall(frame(HELLO, str(self.me).encode() + b"\n" + hello))
                self.conns[int(pid)] = s
        finally:
            ls.close()  # the next (honest) session's party 0 takes the port
        return self

    def send(self, pid, data):
        self.conns[pid].sendall(data)

    def send_raw(self, pid, data):
        """Bytes straight on the TCP connection (under TLS: not inside TLS records)."""
        os.write(self.conns[pid].fileno(), data)

    def wait_closed(self, pid, timeout=30):
        """Read (and drop) what party pid sends until it closes the connection."""
        s = self.conns[pid]
        s.settimeout(timeout)
        try:
            while s.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        for s in self.conns.values():
            try:
                s.close()
            except OSError:
                pass
        self.conns.clear()
