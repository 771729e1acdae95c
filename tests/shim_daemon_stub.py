"""A scripted stand-in for the multusd unix socket, for driving the real ``shim/multus-shim``.

Stdlib only, threaded, so a test can run the shim with plain ``subprocess.run`` while the stub
answers. It records every request (method, path, headers, parsed JSON body) and answers from a
script of :class:`Answer` values; the last answer repeats once the script runs out. Answers can
misbehave on purpose: chunked bodies, no Content-Length, delays, closing without a word.

    with StubDaemon(tmp_path / "multus-cni-network.sock") as daemon:
        daemon.script(Answer(503, "not ready"), Answer.result({...}))
        run the shim …
        assert daemon.requests[0].path == "/cni"
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Answer:
    """One scripted HTTP answer."""

    status: int = 200
    body: bytes | str | dict[str, Any] = b""
    content_type: str = "text/plain; charset=utf-8"
    chunked: bool = False  # Transfer-Encoding: chunked, in small chunks
    content_length: bool = True  # False: no length, the body ends when the connection closes
    delay_seconds: float = 0.0  # wait before answering
    hang_up: bool = False  # close the connection without answering

    @classmethod
    def result(cls, result: dict[str, Any]) -> Answer:
        """A successful ADD, as multusd (and upstream) answer it."""
        return cls(200, {"Result": result}, "application/json")

    @classmethod
    def cni_error(cls, code: int, msg: str, details: str = "", status: int = 400) -> Answer:
        obj: dict[str, Any] = {"code": code, "msg": msg}
        if details:
            obj["details"] = details
        return cls(status, obj, "application/json")

    def payload(self) -> bytes:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class StubDaemon:
    """A threaded HTTP/1.1 server on a unix socket; start() may be called late (daemon appearing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.requests: list[Request] = []
        self._script: list[Answer] = [Answer()]
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script = list(answers)

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def start(self) -> StubDaemon:
        stub = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                stub._serve(self.request)

        server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="shim-stub", daemon=True)
        self._thread.start()
        return self

    def start_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.start)
        timer.start()
        return timer

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        Path(self.path).unlink(missing_ok=True)

    def __enter__(self) -> StubDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append(Request(method, path, headers, body))
        answer = self._next_answer()
        if answer.delay_seconds:
            time.sleep(answer.delay_seconds)
        if answer.hang_up:
            return
        payload = answer.payload()
        out = [f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, 'Status')}", "Connection: close"]
        if answer.content_type:
            out.append(f"Content-Type: {answer.content_type}")
        if answer.chunked:
            out.append("Transfer-Encoding: chunked")
            pieces = [payload[i : i + 7] for i in range(0, len(payload), 7)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        elif answer.content_length:
            out.append(f"Content-Length: {len(payload)}")
        try:
            conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
        except OSError:
            pass  # the shim gave up (its timeout); nothing to answer to
