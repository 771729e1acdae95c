"""Server-side printing for the local API server: ``meta.k8s.io/v1`` Tables for ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns the
server chooses, so the stand-in must choose them: pods get NAME/READY/STATUS/RESTARTS/AGE (+ IP
and NODE for ``-o wide``), namespaces NAME/STATUS/AGE, everything else NAME/AGE like a custom
resource without printer columns. Ages are rendered here, as the real server does.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from multusd.kube.localapi_resources import ResourceType

JsonObj = dict[str, Any]

_NAME = {"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}
_AGE = {"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}


def _col(name: str, priority: int = 0, type_: str = "string") -> JsonObj:
    return {"name": name, "type": type_, "format": "", "description": name, "priority": priority}


def human_age(seconds: float) -> str:
    """kubectl's short durations: ``45s``, ``3m12s``, ``2h``, ``5d`` …"""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    hours = s // 3600
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _age(obj: JsonObj, now: float) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return "<unknown>"
    try:
        created = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_age(now - created)


def _pod_cells(pod: JsonObj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if isinstance(c, dict) and c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses if isinstance(c, dict))
    phase = status.get("phase") or "Unknown"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        f"{ready}/{len(spec.get('containers') or [])}",
        status.get("reason") or phase,
        restarts,
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _columns(rt: ResourceType) -> list[JsonObj]:
    if rt.resource == "pods" and not rt.group:
        return [
            _NAME,
            _col("Ready"),
            _col("Status"),
            _col("Restarts", type_="integer"),
            _AGE,
            _col("IP", 1),
            _col("Node", 1),
        ]
    if rt.resource == "namespaces":
        return [_NAME, _col("Status"), _AGE]
    return [_NAME, _AGE]


def _cells(rt: ResourceType, obj: JsonObj, now: float) -> list[Any]:
    name = obj.get("metadata", {}).get("name", "")
    if rt.resource == "pods" and not rt.group:
        ready, status, restarts, ip, node = _pod_cells(obj)
        return [name, ready, status, restarts, _age(obj, now), ip, node]
    if rt.resource == "namespaces":
        return [name, (obj.get("status") or {}).get("phase", ""), _age(obj, now)]
    return [name, _age(obj, now)]


def _row_object(rt: ResourceType, obj: JsonObj, include: str) -> JsonObj | None:
    if include == "None":
        return None
    if include == "Object":
        return {"kind": rt.kind, "apiVersion": rt.group_version, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def make_table(rt: ResourceType, doc: JsonObj, include_object: str, now: float) -> JsonObj:
    """A Table for a list (``items``) or a single object; ``include_object`` as the query asks."""
    objs = doc.get("items", [doc])
    rows = []
    for obj in objs:
        row: JsonObj = {"cells": _cells(rt, obj, now)}
        embedded = _row_object(rt, obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k in ("resourceVersion", "continue")}
    if "items" not in doc:
        meta = {"resourceVersion": doc.get("metadata", {}).get("resourceVersion", "")}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": _columns(rt),
        "rows": rows,
    }
