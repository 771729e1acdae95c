"""The Kubernetes side of the meta-plugin's protocols: pods, NADs, status and events.

``attach/`` knows Kubernetes *objects* but never the client; ``kube/`` knows the API but never
CNI. These adapters are the only place the two meet: they read the watch caches (falling back to
a live GET), translate :class:`~multusd.kube.errors.KubeError` into CNI errors, and keep event
POSTs off the request path (fire and forget, a bounded number in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from multusd.attach.flows import PodInfo
from multusd.attach.status import NETWORK_STATUS_ANNOTATION
from multusd.cni.errors import CniCode, CniError
from multusd.kube.client import KubeClient
from multusd.kube.errors import KubeError, NotFound
from multusd.kube.objects import is_static_pod, trim_nad, trim_pod
from multusd.kube.watch import NadCache, PodCache

log = logging.getLogger("multusd.api")

MAX_PENDING_EVENTS = 256


def pod_info(obj: Mapping[str, Any]) -> PodInfo:
    meta = obj.get("metadata") or {}
    return PodInfo(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        annotations=dict(meta.get("annotations") or {}),
        static=is_static_pod(obj),
    )


class ApiPods:
    """PodSource: this node's pod cache, then a live GET (short timeout, no retries)."""

    def __init__(self, cache: PodCache | None, client: KubeClient, live_timeout: float) -> None:
        self.cache = cache
        self.client = client
        self.live_timeout = live_timeout

    def cached_pod(self, namespace: str, name: str) -> PodInfo | None:
        obj = self.cache.get(namespace, name) if self.cache is not None else None
        return pod_info(obj) if obj is not None else None

    async def live_pod(self, namespace: str, name: str) -> PodInfo | None:
        try:
            obj = await self.client.get_pod(namespace, name, retry=False, timeout_seconds=self.live_timeout)
        except NotFound:
            return None
        except KubeError as exc:
            raise CniError(CniCode.TRY_AGAIN_LATER, f"GET pod {namespace}/{name}: {exc}") from exc
        return pod_info(trim_pod(obj))


class ApiNads:
    """NadSource: the NAD cache, then a live GET (upstream has no fallback: P8)."""

    def __init__(self, cache: NadCache | None, client: KubeClient) -> None:
        self.cache = cache
        self.client = client
        self.live_gets = 0

    async def get_nad(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        if self.cache is not None:
            obj = self.cache.get(namespace, name)
            if obj is not None:
                return obj
        self.live_gets += 1
        try:
            return trim_nad(await self.client.get_nad(namespace, name))
        except NotFound:
            return None
        except KubeError as exc:
            raise CniError(
                CniCode.TRY_AGAIN_LATER, f"GET network-attachment-definition {namespace}/{name}: {exc}"
            ) from exc


class ApiStatusSink:
    """StatusSink: one merge-PATCH per ADD; events posted in the background, never awaited."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._pending: set[asyncio.Task[bool]] = set()
        self.dropped_events = 0

    async def write_network_status(self, pod: PodInfo, value: str) -> None:
        try:
            await self.client.patch_pod_status_annotations(pod.namespace, pod.name, {NETWORK_STATUS_ANNOTATION: value})
        except NotFound:
            log.info("[%s/%s] pod deleted before its network-status could be written", pod.namespace, pod.name)

    def event(self, pod: PodInfo, type_: str, reason: str, message: str) -> None:
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self.dropped_events += 1
            log.warning(
                "[%s/%s] event %s dropped: %d events already in flight",
                pod.namespace,
                pod.name,
                reason,
                len(self._pending),
            )
            return
        task = asyncio.get_running_loop().create_task(
            self.client.create_event(
                pod.namespace, pod.name, uid=pod.uid, reason=reason, message=message, event_type=type_
            ),
            name=f"event:{reason}",
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, timeout: float) -> None:
        """Give in-flight events a bounded chance to land (at shutdown)."""
        if not self._pending:
            return
        _, pending = await asyncio.wait(set(self._pending), timeout=timeout)
        for task in pending:
            task.cancel()
