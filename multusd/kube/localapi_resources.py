"""The resource types the local API server serves, and the discovery documents that describe them.

One table (:data:`RESOURCES`) drives everything: URL routing, discovery (legacy
``APIResourceList`` and aggregated ``APIGroupDiscoveryList`` as kubectl ≥ 1.30 asks for),
which field selectors a LIST accepts, which subresources exist, and whether DELETE answers with
the object or with a ``Status``. Keeping it data means a test can see at a glance what the stand-in
claims to be, and a new kind is one entry.

``events`` is served twice, as the real server does: ``v1`` Events and ``events.k8s.io/v1``
Events are two views of the same stored objects. Storage holds the core form; the
events.k8s.io view is converted on the way in and out (:func:`event_to_events_v1`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]

SERVER_VERSION: JsonObj = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+localapi",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_META_FIELDS = ("metadata.name", "metadata.namespace")


def _identity(obj: JsonObj) -> JsonObj:
    return obj


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives in the URL space and how the server treats it."""

    group: str
    version: str
    resource: str
    kind: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    """Subresources served with the parent's kind (only ``status`` is implemented)."""
    field_selectors: tuple[str, ...] = _META_FIELDS
    """Field labels a LIST/WATCH accepts; anything else is ``400 field label not supported``."""
    returns_deleted_object: bool = False
    """DELETE answers with the last state of the object (pods, namespaces) instead of a Status."""
    builtin: bool = True
    """Built-in kinds omit ``kind``/``apiVersion`` on list items; custom resources keep them."""
    storage: str = ""
    """Key of the shared object store; two views of one resource share it (events)."""
    to_view: Callable[[JsonObj], JsonObj] = field(default=_identity, compare=False, repr=False)
    """Storage form → this view's form (a fresh dict)."""
    from_view: Callable[[JsonObj], JsonObj] = field(default=_identity, compare=False, repr=False)
    """This view's form → storage form (a fresh dict)."""

    @property
    def group_version(self) -> str:
        """``v1`` for the core group, else ``group/version``: the objects' ``apiVersion``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``network-attachment-definitions.k8s.cni.cncf.io``, as in error messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def storage_key(self) -> str:
        """Key of the object store this resource reads and writes."""
        return self.storage or self.qualified

    @property
    def list_kind(self) -> str:
        """``PodList`` and the like."""
        return f"{self.kind}List"


_EVENT_FIELD_MAP = (
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("source", "deprecatedSource"),
)


def event_to_events_v1(core: JsonObj) -> JsonObj:
    """A stored core/v1 Event as an events.k8s.io/v1 Event (the fields renamed as upstream does)."""
    out: JsonObj = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": core.get("metadata", {})}
    for core_key, v1_key in _EVENT_FIELD_MAP:
        if core_key in core:
            out[v1_key] = core[core_key]
    series = core.get("series")
    if isinstance(series, dict):
        out["series"] = {k: v for k, v in series.items() if k in ("count", "lastObservedTime")}
    return out


def event_from_events_v1(ev: JsonObj) -> JsonObj:
    """An events.k8s.io/v1 Event in the stored core/v1 form."""
    out: JsonObj = {"kind": "Event", "apiVersion": "v1", "metadata": ev.get("metadata", {})}
    for core_key, v1_key in _EVENT_FIELD_MAP:
        if v1_key in ev:
            out[core_key] = ev[v1_key]
    if isinstance(ev.get("series"), dict):
        out["series"] = dict(ev["series"])
    return out


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        "namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        field_selectors=("metadata.name", "status.phase"),
        returns_deleted_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        "pod",
        short_names=("po",),
        subresources=("status",),
        field_selectors=(
            *_META_FIELDS,
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        returns_deleted_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "events",
        "Event",
        "event",
        short_names=("ev",),
        field_selectors=(
            *_META_FIELDS,
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
        storage="events",
    ),
    ResourceType(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        "event",
        short_names=("ev",),
        field_selectors=(
            *_META_FIELDS,
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ),
        storage="events",
        to_view=event_to_events_v1,
        from_view=event_from_events_v1,
    ),
    ResourceType(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        "daemonset",
        short_names=("ds",),
        subresources=("status",),
    ),
    ResourceType(
        "k8s.cni.cncf.io",
        "v1",
        "network-attachment-definitions",
        "NetworkAttachmentDefinition",
        "network-attachment-definition",
        short_names=("net-attach-def",),
        builtin=False,
    ),
)

GROUP_VERSIONS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.group, r.version) for r in RESOURCES if r.group))


def find_resource(group: str, version: str, resource: str) -> ResourceType | None:
    """The resource served at ``/apis/<group>/<version>/<resource>`` (``group`` empty for core)."""
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.resource) == (group, version, resource):
            return rt
    return None


def canonical(rt: ResourceType) -> ResourceType:
    """The resource whose form is stored for ``rt`` (core Events for events.k8s.io Events)."""
    return next(r for r in RESOURCES if r.storage_key == rt.storage_key)


def find_by_kind(api_version: str, kind: str) -> ResourceType | None:
    """The resource whose objects have this ``apiVersion`` and ``kind`` (for seeds and helpers)."""
    for rt in RESOURCES:
        if rt.group_version == api_version and rt.kind == kind:
            return rt
    return None


def find_by_name(name: str) -> ResourceType | None:
    """Resolve what a test would type: ``pods``, ``pod``, ``po``, ``Pod``, ``net-attach-def``,
    ``network-attachment-definitions.k8s.cni.cncf.io``. The core view of a name wins."""
    for rt in RESOURCES:
        names = {rt.resource, rt.singular, rt.kind.lower(), rt.qualified, *rt.short_names}
        if name in names or name.lower() in names:
            return rt
    return None


def _resource_entry(rt: ResourceType) -> list[JsonObj]:
    main: JsonObj = {
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(_ALL_VERBS),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    subs: list[JsonObj] = [
        {
            "name": f"{rt.resource}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["get", "patch", "update"],
        }
        for sub in rt.subresources
    ]
    return [main, *subs]


def api_resource_list(group: str, version: str) -> JsonObj | None:
    """Legacy discovery: ``/api/v1`` or ``/apis/<group>/<version>``; None when not served."""
    served = [rt for rt in RESOURCES if (rt.group, rt.version) == (group, version)]
    if not served:
        return None
    resources = [entry for rt in served for entry in _resource_entry(rt)]
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def api_versions(server_address: str) -> JsonObj:
    """Legacy discovery for ``/api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str) -> JsonObj:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> JsonObj:
    """Legacy discovery for ``/apis``."""
    groups = dict.fromkeys(g for g, _ in GROUP_VERSIONS)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_entry(g) for g in groups]}


def api_group(group: str) -> JsonObj | None:
    """Legacy discovery for ``/apis/<group>``."""
    if not any(g == group for g, _ in GROUP_VERSIONS):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def _aggregated_resource(rt: ResourceType) -> JsonObj:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    entry: JsonObj = {
        "resource": rt.resource,
        "responseKind": gvk,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(_ALL_VERBS),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": gvk, "verbs": ["get", "patch", "update"]} for sub in rt.subresources
        ]
    return entry


def aggregated_discovery(core: bool) -> JsonObj:
    """Aggregated discovery (``apidiscovery.k8s.io/v2``): ``/api`` when ``core``, else ``/apis``.

    kubectl asks for it first; answering it saves the per-group round trips of legacy discovery.
    """
    pairs = [("", "v1")] if core else list(GROUP_VERSIONS)
    items: list[JsonObj] = []
    for group in dict.fromkeys(g for g, _ in pairs):
        versions = [
            {
                "version": v,
                "resources": [_aggregated_resource(rt) for rt in RESOURCES if (rt.group, rt.version) == (group, v)],
                "freshness": "Current",
            }
            for g, v in pairs
            if g == group
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
