"""CNI errors as the spec defines them.

One exception type crosses every layer of multusd: a :class:`CniError` carries the spec's numeric
code end to end (plugin → daemon → shim → runtime), so a runtime can tell "try again later" from
"bad config". Context is added by building a *new* error with the same code, never by wrapping.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any


class CniCode(IntEnum):
    """Error codes of the CNI spec (and libcni's ErrInvalidNetNS)."""

    UNKNOWN = 0
    INCOMPATIBLE_CNI_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT_VARIABLES = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    INVALID_NETNS = 8
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    INTERNAL = 999


class CniError(Exception):
    """A CNI error: ``{"code", "msg", "details"}``.

    ``code`` is kept as a plain int as well as a :class:`CniCode` where known: plugins may use
    codes ≥ 100 of their own, and those must reach the runtime unchanged.
    """

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg

    def __repr__(self) -> str:
        return f"CniError(code={self.code}, msg={self.msg!r}, details={self.details!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CniError):
            return NotImplemented
        return (self.code, self.msg, self.details) == (other.code, other.msg, other.details)

    def __hash__(self) -> int:
        return hash((self.code, self.msg, self.details))

    def __reduce__(self) -> tuple[type[CniError], tuple[int, str, str]]:
        # Exception's default rebuilds from ``args`` (msg only) and would fail in copy/pickle.
        return (type(self), (self.code, self.msg, self.details))

    def to_json(self) -> dict[str, Any]:
        """The spec's error object; ``details`` left out when empty (Go ``omitempty``)."""
        obj: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            obj["details"] = self.details
        return obj

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json()).encode()

    @classmethod
    def from_json(cls, obj: Any) -> CniError | None:
        """Parse an error object; None when ``obj`` is not one (no int code or no string msg)."""
        if not isinstance(obj, dict):
            return None
        code, msg = obj.get("code"), obj.get("msg")
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(msg, str):
            return None
        details = obj.get("details")
        return cls(code, msg, details if isinstance(details, str) else "")

    def with_prefix(self, prefix: str) -> CniError:
        """A new error whose message starts with ``prefix``; same code and details."""
        return CniError(self.code, f"{prefix}{self.msg}", self.details)

    def with_context(self, namespace: str, pod: str, network: str) -> CniError:
        """The house format for errors a user sees: ``[ns/pod:network] msg``."""
        return self.with_prefix(f"[{namespace}/{pod}:{network}] ")

    @classmethod
    def from_plugin(cls, stdout: bytes, stderr: bytes, returncode: int) -> CniError:
        """libcni's ``pluginErr`` rules for a plugin that exited non-zero.

        A CNI error object on stdout is taken as is; empty stdout gives stderr's text; anything
        else is quoted in the message so the operator sees what the plugin printed.
        """
        text = stdout.strip()
        err_text = stderr.decode("utf-8", "replace").strip()
        if text:
            try:
                parsed = cls.from_json(json.loads(text))
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed
            out = text.decode("utf-8", "replace")
            msg = f"netplugin failed with unparsable output {out!r} (exit status {returncode})"
            return cls(CniCode.INTERNAL, msg, err_text)
        if err_text:
            return cls(CniCode.INTERNAL, f"netplugin failed: {err_text!r}")
        return cls(CniCode.INTERNAL, f"netplugin failed with no error message (exit status {returncode})")
