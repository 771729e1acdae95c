"""The kube layer's error tree: one root, a leaf per answer the callers act on differently.

Callers decide by type, never by parsing text: a cache relists on :class:`Gone`, a pod lookup
treats :class:`NotFound` as "pod gone", the retry loop retries only :class:`Unavailable`
(which includes :class:`TooManyRequests`), everything else fails at once. Errors are built from
the API server's ``Status`` body (``message``, ``reason``, ``code``) so the text the user sees is
the server's own; the library exception stays attached as ``__cause__`` (``raise … from exc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KubeError(Exception):
    """Any failed Kubernetes API call.

    ``code`` is the HTTP status (``None`` when no response arrived: connection refused, reset,
    timeout); ``reason`` is the Status ``reason`` (``NotFound``, ``Expired`` …) or a short word
    for transport failures; ``retry_after`` the server's ``Retry-After`` hint in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.message} ({self.code} {self.reason})" if self.reason else f"{self.message} ({self.code})"


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: AlreadyExists on create, or a resourceVersion precondition failed."""


class Gone(KubeError):
    """410: the resourceVersion (or list continue token) is too old; the caller must relist."""


class Unauthorized(KubeError):
    """401: the credentials were refused (expired or rotated token, wrong client cert)."""


class Forbidden(KubeError):
    """403: RBAC denies the verb; retrying will not help until the ClusterRole changes."""


class Invalid(KubeError):
    """422 (and 400): the server rejected the request body or parameters."""


class Unavailable(KubeError):
    """5xx, 429, connection failures and timeouts: the only errors worth retrying."""


class TooManyRequests(Unavailable):
    """429: the server asked us to slow down, usually with ``Retry-After``."""


_BY_CODE: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_class_for(code: int) -> type[KubeError]:
    """The leaf for an HTTP status: the table above, any other 5xx → Unavailable, else KubeError."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code >= 500:
        return Unavailable
    return KubeError


def kube_error_from_status(
    code: int,
    status: Mapping[str, Any] | None,
    *,
    what: str,
    retry_after: float | None = None,
) -> KubeError:
    """Build the leaf error for a failed call from its Status body.

    ``what`` names the request (``GET pods default/web``) and is used only when the server sent no
    ``message`` (a proxy's HTML 502, an empty body). The Status ``code`` wins over the HTTP status
    when present: a watch ``ERROR`` event carries its Status in a 200 stream.
    """
    message = ""
    reason = ""
    if isinstance(status, Mapping):
        message = str(status.get("message") or "")
        reason = str(status.get("reason") or "")
        status_code = status.get("code")
        if isinstance(status_code, int) and status_code > 0:
            code = status_code
    return error_class_for(code)(message or f"{what}: HTTP {code}", code=code, reason=reason, retry_after=retry_after)
