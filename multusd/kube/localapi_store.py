"""The local API server's object store: objects, one resourceVersion clock, history, watchers.

Semantics copied from kube-apiserver + etcd, because the daemon's watch cache is tested against
them:

- one global, monotonically increasing resourceVersion across all kinds; every write (and every
  delete) takes the next one; a write that changes nothing takes none and emits no event;
- a bounded history of events (each with the object before it) serves watch resumption from a
  resourceVersion, consistent ``continue`` pages (the page is rebuilt as of the first page's
  resourceVersion) and ``resourceVersionMatch=Exact`` lists; anything older than the retained
  history is ``410 Expired``;
- watchers with selectors see transitions as the watch cache sends them: an object that starts
  matching arrives as ADDED, one that stops matching as DELETED;
- the status subresource of pods/daemonsets/namespaces keeps spec from the old object but keeps
  metadata label/annotation changes (pods/status strategy upstream); the main resource of those
  kinds keeps the old status;
- objects are stored in the core form; views (events.k8s.io) convert at the edge.

All methods are synchronous: the event loop serialises them, and a write reaches every
watcher's queue before the next request is handled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from multusd.kube.localapi_objects import (
    ApiError,
    FieldSelector,
    JsonObj,
    LabelSelector,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
    make_status,
    not_found,
)
from multusd.kube.localapi_resources import RESOURCES, ResourceType, canonical, find_resource

DEFAULT_HISTORY_SIZE = 1000
WATCH_QUEUE_LIMIT = 10_000
"""A watcher this far behind is closed, as the real watch cache drops slow watchers."""
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start "
    "a new list without the continue parameter, or use the continue token in this response to "
    "retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""


@dataclass(frozen=True)
class HistoryEvent:
    """One committed change, kept for watch resumption and consistent paging."""

    rv: int
    storage: str
    type: str
    obj: JsonObj
    prev: JsonObj | None


CLOSE = object()
"""Queue sentinel: the stream must end now."""


@dataclass(eq=False)
class Watcher:
    """An open watch: what it selects and the queue its HTTP stream drains.

    Items are ``(type, object)`` pairs already converted to the watcher's view, or :data:`CLOSE`.
    """

    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    closed_reason: str = ""

    def close(self, reason: str) -> None:
        """End the stream after what is already queued (idempotent)."""
        if not self.closed_reason:
            self.closed_reason = reason
            self.queue.put_nowait(CLOSE)

    def selects(self, obj: JsonObj | None) -> bool:
        """Whether a (view-form) object is in this watch's scope."""
        if obj is None:
            return False
        if self.namespace is not None and obj.get("metadata", {}).get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def offer(self, event: HistoryEvent) -> None:
        """Queue what this watcher sees of ``event``, selector transitions included."""
        cur = self.rt.to_view(event.obj)
        prev = self.rt.to_view(event.prev) if event.prev is not None else None
        now, before = self.selects(cur), self.selects(prev)
        if event.type == "DELETED":
            item = ("DELETED", cur) if now else None
        elif now and (before or event.type == "ADDED"):
            item = (event.type, cur)
        elif now:
            item = ("ADDED", cur)
        elif before and prev is not None:
            gone = copy.deepcopy(prev)
            gone["metadata"]["resourceVersion"] = str(event.rv)
            item = ("DELETED", gone)
        else:
            item = None
        if item is not None:
            self.queue.put_nowait(item)
            if self.queue.qsize() > WATCH_QUEUE_LIMIT:
                self.close("too slow")


def _now_rfc3339(clock: Callable[[], float]) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))


def _meta(obj: JsonObj) -> JsonObj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _check_string_map(meta: JsonObj, key: str) -> None:
    value = meta.get(key)
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"metadata.{key}: must be a map of string to string")


def encode_continue(rv: int, last_key: Key) -> str:
    """An opaque continue token: the list's resourceVersion and the last key returned."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": "/".join(last_key)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, Key]:
    """Inverse of :func:`encode_continue`; a malformed token is 400 as upstream."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = str(raw["start"]).partition("/")
        return int(raw["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc


class Store:
    """Objects by storage key and ``(namespace, name)``, the RV clock, history and watchers."""

    def __init__(
        self,
        *,
        history_size: int = DEFAULT_HISTORY_SIZE,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.history_size = max(1, history_size)
        self._clock = clock
        self._rng = rng or random.Random()
        self._objects: dict[str, dict[Key, JsonObj]] = {rt.storage_key: {} for rt in RESOURCES}
        self._history: deque[HistoryEvent] = deque()
        self._watchers: set[Watcher] = set()
        self.current_rv = 0
        self.compacted_rv = 0
        """Watching from an RV below this is 410: the events after it are gone."""
        for ns in DEFAULT_NAMESPACES:
            self._ensure_namespace(ns)

    # ------------------------------------------------------------------ history and watchers

    def _commit(self, rt: ResourceType, etype: str, obj: JsonObj, prev: JsonObj | None) -> JsonObj:
        self.current_rv += 1
        _meta(obj)["resourceVersion"] = str(self.current_rv)
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        table = self._objects[rt.storage_key]
        if etype == "DELETED":
            table.pop(key, None)
        else:
            table[key] = obj
        event = HistoryEvent(self.current_rv, rt.storage_key, etype, obj, prev)
        self._history.append(event)
        while len(self._history) > self.history_size:
            self.compacted_rv = self._history.popleft().rv
        for watcher in list(self._watchers):
            if watcher.rt.storage_key == rt.storage_key:
                watcher.offer(event)
        return obj

    def compact(self, keep: int = 0) -> None:
        """Drop all but the newest ``keep`` history events (etcd compaction): older RVs get 410."""
        while len(self._history) > keep:
            self.compacted_rv = self._history.popleft().rv
        if keep == 0:
            self.compacted_rv = self.current_rv

    def _snapshot(self, storage: str, rv: int) -> dict[Key, JsonObj]:
        """The objects of one storage key as they were at ``rv`` (410 if compacted away)."""
        if rv < self.compacted_rv:
            raise expired(f"too old resource version: {rv} ({self.compacted_rv})")
        state = dict(self._objects[storage])
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.storage != storage:
                continue
            meta = event.obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if event.prev is None:
                state.pop(key, None)
            else:
                state[key] = event.prev
        return state

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        resource_version: str | None,
        send_initial_events: bool | None,
    ) -> Watcher:
        """Open a watch; its queue is pre-filled with what the client must see first.

        No RV (or "0") without ``sendInitialEvents=false``: synthetic ADDED for the current state
        (legacy semantics). ``sendInitialEvents=true``: the same, then a BOOKMARK annotated
        ``k8s.io/initial-events-end``. An RV: the retained events after it, or an ERROR 410.
        """
        watcher = Watcher(rt, namespace, labels, fields)
        rv = self._parse_rv(resource_version)
        if rv is not None and rv > self.current_rv:
            status = make_status(
                504,
                f"Too large resource version: {rv}, current: {self.current_rv}",
                "Timeout",
                {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]},
            )
            watcher.queue.put_nowait(("ERROR", status))
            watcher.close("error")
            return watcher
        initial = send_initial_events if send_initial_events is not None else not rv
        if initial:
            for _, obj in sorted(self._objects[rt.storage_key].items()):
                view = rt.to_view(obj)
                if watcher.selects(view):
                    watcher.queue.put_nowait(("ADDED", copy.deepcopy(view)))
            if send_initial_events:
                watcher.queue.put_nowait(("BOOKMARK", self.bookmark(rt, initial_events_end=True)))
        elif rv:
            if rv < self.compacted_rv:
                status = expired(f"too old resource version: {rv} ({self.compacted_rv})").status()
                watcher.queue.put_nowait(("ERROR", status))
                watcher.close("error")
                return watcher
            for event in self._history:
                if event.rv > rv and event.storage == rt.storage_key:
                    watcher.offer(event)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        """Forget a watcher whose stream has ended."""
        self._watchers.discard(watcher)

    def close_watchers(self, reason: str) -> int:
        """End every open watch (server stop, fault injection); returns how many."""
        watchers = list(self._watchers)
        for watcher in watchers:
            watcher.close(reason)
        self._watchers.clear()
        return len(watchers)

    @property
    def watcher_count(self) -> int:
        """Open watch streams."""
        return len(self._watchers)

    def bookmark(self, rt: ResourceType, *, initial_events_end: bool = False) -> JsonObj:
        """A BOOKMARK object at the current RV: kind, apiVersion and metadata only."""
        meta: JsonObj = {"resourceVersion": str(self.current_rv)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _parse_rv(value: str | None) -> int | None:
        if value is None or value == "":
            return None
        try:
            rv = int(value)
        except ValueError as exc:
            raise bad_request(f"resourceVersion: Invalid value: {value!r}: must be an integer") from exc
        if rv < 0:
            raise bad_request(f"resourceVersion: Invalid value: {value!r}")
        return rv

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObj:
        obj = self._objects[rt.storage_key].get((namespace or "", name))
        if obj is None:
            raise not_found(rt.resource, rt.group, name)
        return obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObj:
        """One object in ``rt``'s view (a copy)."""
        return copy.deepcopy(rt.to_view(self._stored(rt, namespace, name)))

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> JsonObj:
        """A ``<Kind>List``, ordered by (namespace, name) like etcd keys, paged by ``limit``."""
        labels, fields = labels or LabelSelector(), fields or FieldSelector()
        start: Key | None = None
        if continue_token:
            if resource_version:
                raise bad_request("specifying resource version is not allowed when using continue")
            list_rv, start = decode_continue(continue_token)
            if list_rv == 0:
                list_rv = self.current_rv
            elif list_rv < self.compacted_rv:
                raise expired(_CONTINUE_TOO_OLD)
            objects = self._snapshot(rt.storage_key, list_rv)
        else:
            rv = self._parse_rv(resource_version)
            if rv is not None and rv > self.current_rv:
                raise ApiError(504, f"Too large resource version: {rv}, current: {self.current_rv}", "Timeout")
            if resource_version_match == "Exact" and rv is not None:
                list_rv, objects = rv, self._snapshot(rt.storage_key, rv)
            else:
                list_rv, objects = self.current_rv, self._objects[rt.storage_key]
        items: list[JsonObj] = []
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        remaining = 0
        last: Key | None = None
        for key in keys:
            if start is not None and key <= start:
                continue
            view = rt.to_view(objects[key])
            if not (labels.matches(view) and fields.matches(view)):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(copy.deepcopy(view))
            last = key
        meta: JsonObj = {"resourceVersion": str(list_rv)}
        if remaining and last is not None:
            meta["continue"] = encode_continue(list_rv, last)
            if not labels.requirements and not fields.terms:
                meta["remainingItemCount"] = remaining
        if rt.builtin:
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {"kind": rt.list_kind, "apiVersion": rt.group_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------------ writes

    def _ensure_namespace(self, name: str) -> None:
        ns_rt = find_resource("", "v1", "namespaces")
        assert ns_rt is not None
        if ("", name) in self._objects[ns_rt.storage_key]:
            return
        obj: JsonObj = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}}
        self._prepare_create(ns_rt, obj)
        self._commit(ns_rt, "ADDED", obj, None)

    def _validate_name(self, rt: ResourceType, name: str) -> None:
        pattern, limit = (_DNS_LABEL, 63) if rt.resource == "namespaces" else (_DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.fullmatch(name):
            what = "RFC 1123 label" if pattern is _DNS_LABEL else "RFC 1123 subdomain"
            raise invalid(
                rt.kind,
                rt.group,
                name,
                "metadata.name",
                f"Invalid value: {name!r}",
                f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.'",
            )

    def _prepare_create(self, rt: ResourceType, obj: JsonObj) -> None:
        """Server-set fields on create, plus the per-kind create strategy of the real server."""
        meta = _meta(obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now_rfc3339(self._clock)
        if not rt.builtin or "spec" in obj:
            meta.setdefault("generation", 1)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        if rt.resource == "namespaces":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}

    def create(self, rt: ResourceType, namespace: str | None, body: JsonObj, *, strategy: bool = True) -> JsonObj:
        """POST: set uid/creationTimestamp/RV, honour ``generateName``; 409 if the name exists.

        ``strategy=False`` (direct store use by tests and seeds) keeps the body's status.
        """
        obj = rt.from_view(copy.deepcopy(body))
        stored_as = canonical(rt)
        obj["kind"], obj["apiVersion"] = stored_as.kind, stored_as.group_version
        meta = _meta(obj)
        for key in ("labels", "annotations"):
            _check_string_map(meta, key)
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        table = self._objects[rt.storage_key]
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    rt.kind, rt.group, "", "metadata.name", "Required value", "name or generateName is required"
                )
            for _ in range(16):
                meta["name"] = prefix + "".join(self._rng.choice(_NAME_CHARS) for _ in range(5))
                if (meta.get("namespace", ""), meta["name"]) not in table:
                    break
        self._validate_name(rt, meta["name"])
        if (meta.get("namespace", ""), meta["name"]) in table:
            raise already_exists(rt.resource, rt.group, meta["name"])
        if rt.namespaced:
            self._ensure_namespace(meta["namespace"])
        self._prepare_create(rt, obj)
        if strategy and rt.resource == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj)}
        elif strategy and "status" in rt.subresources and rt.resource != "namespaces":
            obj["status"] = {}
        self._commit(rt, "ADDED", obj, None)
        return copy.deepcopy(rt.to_view(obj))

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: JsonObj,
        *,
        subresource: str | None = None,
        strategy: bool = True,
    ) -> JsonObj:
        """PUT (and the second half of PATCH): optimistic concurrency, strategies, no-op detection."""
        old = self._stored(rt, namespace, name)
        new = rt.from_view(copy.deepcopy(body))
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        meta, old_meta = new["metadata"], old["metadata"]
        for key in ("labels", "annotations"):
            _check_string_map(meta, key)
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the object does not match the namespace on the request")
        sent_rv = meta.get("resourceVersion")
        if sent_rv not in (None, "") and str(sent_rv) != old_meta["resourceVersion"]:
            raise conflict(rt.resource, rt.group, name)
        new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
        if subresource == "status":
            # pods/status upstream: spec (and everything but status) from the old object, but
            # label/annotation changes are kept; multusd writes network-status this way.
            status = new.get("status")
            labels, annotations = meta.get("labels"), meta.get("annotations")
            new = copy.deepcopy(old)
            new["metadata"]["labels"], new["metadata"]["annotations"] = labels, annotations
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        elif strategy and "status" in rt.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        for key in ("labels", "annotations"):
            if meta.get(key) is None:
                meta.pop(key, None)
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "generation" in old_meta and _spec_changed(old, new):
            meta["generation"] = old_meta["generation"] + 1
        if new == old:
            return copy.deepcopy(rt.to_view(old))
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit_delete(rt, new, old)
        self._commit(rt, "MODIFIED", new, old)
        return copy.deepcopy(rt.to_view(new))

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        apply: Callable[[JsonObj], Any],
        *,
        subresource: str | None = None,
    ) -> JsonObj:
        """PATCH: ``apply`` maps the current view to the patched one; a changed RV is a conflict."""
        current = self.get(rt, namespace, name)
        patched = apply(current)
        if not isinstance(patched, dict):
            raise ApiError(422, "the patched object is not a JSON object", "Invalid")
        return self.update(rt, namespace, name, patched, subresource=subresource)

    def _commit_delete(self, rt: ResourceType, obj: JsonObj, prev: JsonObj) -> JsonObj:
        gone = self._commit(rt, "DELETED", obj, prev)
        if rt.returns_deleted_object:
            return copy.deepcopy(rt.to_view(gone))
        details: JsonObj = {"name": gone["metadata"]["name"]}
        if rt.group:
            details["group"] = rt.group
        details.update(kind=rt.resource, uid=gone["metadata"].get("uid", ""))
        return make_status(200, "", "", details)

    def delete(
        self, rt: ResourceType, namespace: str | None, name: str, *, preconditions: JsonObj | None = None
    ) -> JsonObj:
        """DELETE: immediate unless finalizers are set (then ``deletionTimestamp``, MODIFIED).

        Deleting a namespace deletes what is in it first (the namespace controller's work).
        """
        old = self._stored(rt, namespace, name)
        meta = old["metadata"]
        for field_name, actual in (("uid", meta.get("uid")), ("resourceVersion", meta.get("resourceVersion"))):
            wanted = (preconditions or {}).get(field_name)
            if wanted and wanted != actual:
                why = (
                    f"Precondition failed: {field_name} in precondition: {wanted}, "
                    f"{field_name} in object meta: {actual}"
                )
                raise conflict(rt.resource, rt.group, name, why)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(rt.to_view(old))
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now_rfc3339(self._clock)
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(rt, "MODIFIED", new, old)
            return copy.deepcopy(rt.to_view(new))
        if rt.resource == "namespaces" and not rt.group:
            for other in RESOURCES:
                if other.namespaced and canonical(other) is other:  # each storage once
                    for key in [k for k in self._objects[other.storage_key] if k[0] == name]:
                        self.delete(other, key[0], key[1])
        return self._commit_delete(rt, copy.deepcopy(old), old)

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> JsonObj:
        """DELETE on a collection: every selected object, returned as a list."""
        listed = self.list(rt, namespace, labels=labels, fields=fields)
        for item in listed["items"]:
            self.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"])
        return listed

    def objects(self, rt: ResourceType) -> Iterable[JsonObj]:
        """Current objects of ``rt`` in its view (copies), for tests."""
        return [copy.deepcopy(rt.to_view(o)) for _, o in sorted(self._objects[rt.storage_key].items())]


def _spec_changed(old: JsonObj, new: JsonObj) -> bool:
    ignored = {"metadata", "status", "kind", "apiVersion"}
    return {k: v for k, v in old.items() if k not in ignored} != {k: v for k, v in new.items() if k not in ignored}


def _qos_class(pod: JsonObj) -> str:
    containers = pod.get("spec", {}).get("containers") or []
    has_resources = any(isinstance(c, dict) and c.get("resources") for c in containers)
    return "Burstable" if has_resources else "BestEffort"
