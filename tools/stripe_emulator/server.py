"""HTTP/1.1 with keep-alive on the standard library: one thread per client connection."""

import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import Emulator

log = logging.getLogger("stripe_emulator.http")


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator):
        self.emulator = emulator
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator"
    sys_version = ""
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write; no waiting on Nagle's algorithm.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.emulator.handle(self.command, self.path, self.headers, body)
        head = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
        head.append("Connection: keep-alive")
        head.extend(f"{name}: {value}" for name, value in response.headers.items())
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + response.body)
        log.debug("%s %s -> %s", self.command, self.path, response.status)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format, *args) -> None:
        log.debug(format, *args)
