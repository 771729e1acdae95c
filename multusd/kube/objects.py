"""Kubernetes objects as multusd holds them: raw JSON dicts, typed with ``TypedDict``, trimmed.

API objects stay dicts (no model classes: building a ``V1Pod`` costs ~1 ms and the same memory as
the raw JSON). The caches keep only what multusd reads, as upstream's ``informerObjectTrim`` does,
and more tightly: a realistic pod is ~40 KB of JSON (managedFields, volumes, container env …); its
trimmed form is a few hundred bytes. The trim functions are pure and are the single list of
"fields multusd reads" — a new reader adds its field here (and to the tests) first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

RawObject = dict[str, Any]
"""An API object exactly as decoded from JSON."""

# Pod annotations (reference/upstream-behaviour.md §5.1).
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
CONFIG_MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# NAD annotation: device-plugin / DRA resource name → deviceID (§12.3).
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"

POD_ANNOTATIONS: tuple[str, ...] = (
    NETWORKS_ANNOTATION,  # secondary networks (§5.2)
    DEFAULT_NETWORK_ANNOTATION,  # replaces the cluster network (§5.5)
    NETWORK_STATUS_ANNOTATION,  # what we last wrote (inspect, idempotent re-ADD)
    CONFIG_SOURCE_ANNOTATION,  # static pod detection: UID mismatch tolerated (§5.1, §6 step 5)
    CONFIG_MIRROR_ANNOTATION,  # mirror pod of a static pod (same purpose)
)
"""The only pod annotations kept. Everything else (last-applied-configuration, …) is dropped."""

NAD_ANNOTATIONS: tuple[str, ...] = (RESOURCE_NAME_ANNOTATION,)
"""The only NAD annotations kept."""

_META_FIELDS = ("name", "namespace", "uid", "resourceVersion")


class ObjectMeta(TypedDict, total=False):
    """Trimmed ``metadata``: identity, version, the kept annotations, deletion mark."""

    name: str
    namespace: str
    uid: str
    resourceVersion: str
    annotations: dict[str, str]
    deletionTimestamp: str


class PodSpec(TypedDict, total=False):
    """Trimmed pod ``spec``: only the node the pod is bound to."""

    nodeName: str


class Pod(TypedDict, total=False):
    """A pod as the cache and the attach flows see it (see :func:`trim_pod`)."""

    metadata: ObjectMeta
    spec: PodSpec


class NadSpec(TypedDict, total=False):
    """``NetworkAttachmentDefinition.spec``: the CNI config as a JSON *string* (may be empty)."""

    config: str


class Nad(TypedDict, total=False):
    """A NetworkAttachmentDefinition as the cache sees it (see :func:`trim_nad`)."""

    metadata: ObjectMeta
    spec: NadSpec


ListMeta = TypedDict("ListMeta", {"resourceVersion": str, "continue": str}, total=False)
"""``metadata`` of a list response: the RV to watch from, the next page's token."""


class ObjectList(TypedDict, total=False):
    """A list response (``PodList``, ``…List``); ``items`` are raw, untrimmed objects."""

    metadata: ListMeta
    items: list[RawObject]


class WatchEvent(TypedDict):
    """One line of a watch stream: ``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``/``ERROR``."""

    type: str
    object: RawObject


def _trim_meta(meta: Mapping[str, Any], keep_annotations: tuple[str, ...]) -> ObjectMeta:
    out: ObjectMeta = {}
    for key in _META_FIELDS:
        value = meta.get(key)
        if isinstance(value, str):
            out[key] = value  # type: ignore[literal-required]
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        kept = {k: v for k in keep_annotations if isinstance(v := annotations.get(k), str)}
        if kept:
            out["annotations"] = kept
    deletion = meta.get("deletionTimestamp")
    if isinstance(deletion, str):
        out["deletionTimestamp"] = deletion
    return out


def trim_pod(obj: Mapping[str, Any]) -> Pod:
    """Keep exactly what multusd reads from a pod; drop the rest.

    Kept: ``metadata.{name, namespace, uid, resourceVersion, deletionTimestamp}``,
    ``metadata.annotations`` restricted to :data:`POD_ANNOTATIONS`, ``spec.nodeName``.
    Dropped (among everything else): managedFields, labels, ownerReferences, spec.volumes,
    containers (env, args, command, volumeMounts …), status.
    """
    meta = obj.get("metadata")
    pod: Pod = {"metadata": _trim_meta(meta if isinstance(meta, Mapping) else {}, POD_ANNOTATIONS)}
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and isinstance(node := spec.get("nodeName"), str):
        pod["spec"] = {"nodeName": node}
    return pod


def trim_nad(obj: Mapping[str, Any]) -> Nad:
    """Keep exactly what multusd reads from a NetworkAttachmentDefinition.

    Kept: ``metadata.{name, namespace, uid, resourceVersion, deletionTimestamp}``,
    ``metadata.annotations`` restricted to :data:`NAD_ANNOTATIONS`, ``spec.config``.
    """
    meta = obj.get("metadata")
    nad: Nad = {"metadata": _trim_meta(meta if isinstance(meta, Mapping) else {}, NAD_ANNOTATIONS)}
    spec = obj.get("spec")
    if isinstance(spec, Mapping) and isinstance(config := spec.get("config"), str):
        nad["spec"] = {"config": config}
    return nad


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of any object (raw or trimmed); ``""`` for a missing part."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ("", "")
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def resource_version(obj: Mapping[str, Any]) -> str | None:
    """``metadata.resourceVersion`` of an object or list, if it has one."""
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and isinstance(rv := meta.get("resourceVersion"), str) and rv:
        return rv
    return None


def is_static_pod(pod: Mapping[str, Any]) -> bool:
    """True for a kubelet static pod (or its mirror in the API).

    Upstream's ``IsStaticPod``: ``kubernetes.io/config.source`` present and not ``api``. A mirror
    pod also carries ``kubernetes.io/config.mirror``; either marks it. Static pods keep the UID
    of their manifest, so a UID mismatch with CNI_ARGS is tolerated for them.
    """
    meta = pod.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    if not isinstance(annotations, Mapping):
        return False
    source = annotations.get(CONFIG_SOURCE_ANNOTATION)
    if source is not None and source != "api":
        return True
    return CONFIG_MIRROR_ANNOTATION in annotations
