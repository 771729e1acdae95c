"""Pure functions on API objects for the local API server: Status errors, selectors, patches.

Nothing here does I/O or keeps state, so each piece is unit-testable on plain dicts. The wire
behaviour follows the real kube-apiserver where clients can observe it:

- errors are ``Status`` objects with the reason and code the real server uses (404 NotFound,
  409 AlreadyExists / Conflict, 410 Expired, 422 Invalid, 400 BadRequest, 415, 405, 401, 5xx);
- label selectors accept the full set-based grammar (``=``, ``==``, ``!=``, ``in``, ``notin``,
  ``key``, ``!key``, ``>``/``<``); ``!=`` and ``notin`` match objects without the label;
- field selectors accept ``=``, ``==``, ``!=`` on the field labels a resource declares, with
  backslash escapes; a missing field compares as ``""``;
- JSON merge patch is RFC 7386; JSON patch is RFC 6902 (all six ops, ``-`` appends);
- strategic merge patch is applied as a merge patch plus the ``$patch: replace|delete``
  directives. That is exact for maps (``metadata.annotations``/``labels``, ``status``), which is
  what multusd and kubectl annotate send; lists are replaced instead of merged by key (a
  difference only for partial ``containers``/``env`` lists, which nobody here sends).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed request, carried up to the HTTP layer and sent as a ``Status`` object."""

    def __init__(self, code: int, message: str, reason: str = "", details: JsonObj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "")
        self.details = details

    def status(self) -> JsonObj:
        """The ``Status`` body the real server would send."""
        return make_status(self.code, self.message, self.reason, self.details)


def make_status(code: int, message: str, reason: str = "", details: JsonObj | None = None) -> JsonObj:
    """A ``Status`` object: ``Failure`` for codes ≥ 300, ``Success`` otherwise."""
    status: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 300 else "Failure",
    }
    if message:
        status["message"] = message
    if reason or code >= 300:
        status["reason"] = reason or _REASONS.get(code, "")
    if details:
        status["details"] = details
    status["code"] = code
    return status


def _details(resource: str, group: str, name: str) -> JsonObj:
    details: JsonObj = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    """``pods "x" not found``."""
    msg = f'{_qualified(resource, group)} "{name}" not found'
    return ApiError(404, msg, "NotFound", _details(resource, group, name))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """``pods "x" already exists``."""
    msg = f'{_qualified(resource, group)} "{name}" already exists'
    return ApiError(409, msg, "AlreadyExists", _details(resource, group, name))


def conflict(resource: str, group: str, name: str, why: str = "") -> ApiError:
    """The optimistic-concurrency failure a stale ``resourceVersion`` gets."""
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    msg = f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}'
    return ApiError(409, msg, "Conflict", _details(resource, group, name))


def invalid(kind: str, group: str, name: str, field: str, cause: str, message: str) -> ApiError:
    """422 with one cause, e.g. ``Pod "" is invalid: metadata.name: Required value: …``."""
    cause_reason = "FieldValueRequired" if cause == "Required value" else "FieldValueInvalid"
    details: JsonObj = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": cause_reason, "message": f"{cause}: {message}", "field": field}]
    text = f'{kind}.{group} "{name}" is invalid' if group else f'{kind} "{name}" is invalid'
    return ApiError(422, f"{text}: {field}: {cause}: {message}", "Invalid", details)


def expired(message: str) -> ApiError:
    """410 Expired: a resourceVersion or continue token older than the retained history."""
    return ApiError(410, message, "Expired")


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, message, "BadRequest")


# --------------------------------------------------------------------------- selectors

_LABEL_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_RE_NOT_EXISTS = re.compile(rf"^!\s*({_LABEL_KEY})$")
_RE_EXISTS = re.compile(rf"^({_LABEL_KEY})$")
_RE_EQUALITY = re.compile(rf"^({_LABEL_KEY})\s*(==|=|!=)\s*({_LABEL_VALUE})$")
_RE_SET = re.compile(rf"^({_LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_RE_NUMERIC = re.compile(rf"^({_LABEL_KEY})\s*(>|<)\s*(-?\d+)$")

Predicate = Callable[[dict[str, str]], bool]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _label_requirement(req: str) -> Predicate:
    if m := _RE_NOT_EXISTS.match(req):
        key = m[1]
        return lambda labels: key not in labels
    if m := _RE_SET.match(req):
        key, op = m[1], m[2]
        values = {v.strip() for v in m[3].split(",") if v.strip()}
        if not values or not all(re.fullmatch(_LABEL_VALUE, v) for v in values):
            raise bad_request(f"unable to parse requirement: values for {op} must be non-empty label values")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _RE_EQUALITY.match(req):
        key, op, value = m[1], m[2], m[3]
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if m := _RE_NUMERIC.match(req):
        key, op, bound = m[1], m[2], int(m[3])

        def numeric(labels: dict[str, str]) -> bool:
            try:
                actual = int(labels[key])
            except (KeyError, ValueError):
                return False
            return actual > bound if op == ">" else actual < bound

        return numeric
    if m := _RE_EXISTS.match(req):
        key = m[1]
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: {req!r}: found invalid label selector syntax")


@dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector``; the empty selector matches everything."""

    requirements: tuple[Predicate, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the query value; a syntax error is ``400 BadRequest`` as on the real server."""
        if not text or not text.strip():
            return cls()
        return cls(tuple(_label_requirement(req) for req in _split_top_level(text)))

    def matches(self, obj: JsonObj) -> bool:
        """Whether the object's ``metadata.labels`` satisfy every requirement."""
        if not self.requirements:
            return True
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in self.requirements)


def _split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash; keep escapes for the next stage."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def field_value(obj: JsonObj, label: str) -> str:
    """The string a field selector compares against: ``""`` when absent, Go-style booleans."""
    if label == "source":  # core Events: the field label ``source`` is ``source.component``
        label = "source.component"
    value: Any = obj
    for part in label.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed ``fieldSelector``: ``(label, negated, value)`` terms, all of which must hold."""

    terms: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None, allowed: tuple[str, ...]) -> FieldSelector:
        """Parse the query value against the resource's field labels (400 otherwise)."""
        if not text or not text.strip():
            return cls()
        terms: list[tuple[str, bool, str]] = []
        for raw in _split_escaped(text, ","):
            m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)(.*)", raw)
            if not m:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
            label, op, value = m[1], m[2], _unescape(m[3])
            if label not in allowed:
                raise bad_request(f'field label not supported: "{label}"')
            terms.append((label, op == "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: JsonObj) -> bool:
        """Whether every term holds for the object."""
        return all((field_value(obj, label) == value) != negated for label, negated, value in self.terms)


# --------------------------------------------------------------------------- patches

_SMP_DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JsonObj = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for maps (see the module docstring for what is left out)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch" and not k.startswith(_SMP_DIRECTIVE_PREFIXES)}
    if directive == "replace":
        return {k: strategic_merge_patch(None, v) for k, v in body.items() if v is not None}
    result: JsonObj = dict(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


class JsonPatchError(Exception):
    """An RFC 6902 operation that cannot be applied (the real server answers 422)."""


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise JsonPatchError(f"missing path for {path!r}")
    return node


def _index(container: list[Any], token: str, path: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise JsonPatchError(f"invalid array index {token!r} in {path!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise JsonPatchError(f"array index out of bounds in {path!r}")
    return index


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, allow_end=False)]
    raise JsonPatchError(f"missing value for path {path!r}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise JsonPatchError(f"cannot add to a scalar at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, allow_end=False)]
    else:
        raise JsonPatchError(f"unable to remove nonexistent key {path!r}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch on a deep copy of ``target``; raises :class:`JsonPatchError`."""
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise JsonPatchError(f"invalid operation {op!r}")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise JsonPatchError(f"operation {kind} at {path!r} needs a value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"])) if path else op["value"]
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise JsonPatchError(f"operation {kind} needs 'from'")
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise JsonPatchError(f"testing value {path!r} failed: test failed")
        else:
            raise JsonPatchError(f"unexpected kind of operation {kind!r}")
    return doc
