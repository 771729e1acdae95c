"""Fault injection and the request log of the local API server.

Tests need a misbehaving API server on demand (latency, 5xx bursts, an outage, dropped watches)
and a count of the calls the daemon made (API calls per pod is a tracked figure). Both are plain
objects changed in-process or through ``/localapi/faults`` and read at ``/localapi/requests``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields

from multusd.kube.localapi_objects import JsonObj, bad_request

REQUEST_LOG_LIMIT = 100_000


@dataclass
class Faults:
    """What the server does wrong on purpose. Change fields directly or via ``/localapi/faults``."""

    latency_seconds: float = 0.0
    """Added before every API request is handled."""
    error_rate: float = 0.0
    """Fraction of matching requests answered with ``error_code`` (a Status)."""
    fail_next: int = 0
    """The next N matching requests fail (deterministic; counted down before ``error_rate``)."""
    error_code: int = 503
    path_prefix: str = ""
    """Only requests whose path starts with this are failed ("" = all)."""
    methods: list[str] = field(default_factory=list)
    """Only these HTTP methods are failed (empty = all); e.g. ``["PATCH"]``."""
    retry_after_seconds: int | None = None
    """Sent as ``Retry-After`` on injected errors."""
    down: bool = False
    """Every API request fails: 503 Status, or the connection is closed (``down_mode="close"``)."""
    down_mode: str = "503"

    def reset(self) -> None:
        """Back to a healthy server."""
        for f in fields(self):
            setattr(self, f.name, Faults.__dataclass_fields__[f.name].default)
        self.methods = []

    def update(self, changes: JsonObj) -> None:
        """Apply a JSON object of field changes (unknown fields or bad types are errors)."""
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise bad_request(f"unknown fault field {key!r}")
            current = getattr(self, key)
            if isinstance(current, bool) and not isinstance(value, bool):
                raise bad_request(f"fault field {key!r} must be a boolean")
            if key == "down_mode" and value not in ("503", "close"):
                raise bad_request("down_mode must be '503' or 'close'")
            if key == "methods":
                if not isinstance(value, list):
                    raise bad_request("methods must be a list")
                value = [str(m).upper() for m in value]
            setattr(self, key, value)

    def should_fail(self, method: str, path: str, rng: random.Random) -> bool:
        """Whether this request gets an injected error (consumes ``fail_next``)."""
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        if self.methods and method not in self.methods:
            return False
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return self.error_rate > 0 and rng.random() < self.error_rate


@dataclass
class RequestRecord:
    """One API request as the server saw it; ``status`` is filled in when it is answered."""

    time: float
    method: str
    path: str
    query: str
    content_type: str
    status: int = 0


class RequestLog:
    """Every API request (not control endpoints), oldest first, bounded."""

    def __init__(self, limit: int = REQUEST_LOG_LIMIT) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def count(self, method: str | None = None, path_prefix: str = "", path_contains: str = "") -> int:
        """How many requests match, e.g. ``count("PATCH", path_contains="/pods/web-1/")``."""
        return sum(
            1
            for r in self._records
            if (method is None or r.method == method) and r.path.startswith(path_prefix) and path_contains in r.path
        )

    def to_json(self) -> list[JsonObj]:
        return [asdict(r) for r in self._records]
