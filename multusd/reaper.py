"""Attachments held on this node, and the orphan reaper that releases the abandoned ones.

containerd never sends GC, and a DEL can be lost (node crash, daemon down past the kubelet's
retries), so state and IP reservations pile up (P7: 300k stale files). An attachment is an
*orphan* only when both are true: its network namespace no longer exists, and its pod is gone
from this node (absent from the synced pod cache, or present with another UID). Then its
delegates' DEL runs (releasing IPAM reservations) and the state goes. Live attachments are never
touched; anything uncertain (netns unknown, caches not synced) is left alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from multusd.attach.flows import Multus, PodInfo
from multusd.attach.request import CniRequest
from multusd.cni.cache import CacheEntry, ResultCache
from multusd.cni.errors import CniError
from multusd.state import CorruptStateError, StateError, StateStore

log = logging.getLogger("multusd.reaper")

PodLookup = Callable[[str, str], PodInfo | None]
Gate = Callable[[str, str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass(frozen=True)
class Attachment:
    """One container's attachment as found on disk, with what is known about its liveness."""

    container_id: str
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    netns: str = ""
    networks: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    age_seconds: float = 0.0
    netns_exists: bool | None = None  # None: the netns path is not known
    pod_present: bool | None = None  # None: no pod identity or no pod cache to ask
    corrupt: str = ""

    @property
    def orphan(self) -> bool:
        return self.netns_exists is False and self.pod_present is False

    def to_json(self) -> dict[str, Any]:
        return {
            "containerID": self.container_id,
            "pod": f"{self.pod_namespace}/{self.pod_name}" if self.pod_name else "",
            "podUID": self.pod_uid,
            "netns": self.netns,
            "networks": list(self.networks),
            "interfaces": list(self.interfaces),
            "ips": list(self.ips),
            "ageSeconds": round(self.age_seconds),
            "netnsExists": self.netns_exists,
            "podPresent": self.pod_present,
            "orphan": self.orphan,
            "corrupt": self.corrupt,
        }


def _ips_of(entry: CacheEntry) -> list[str]:
    result = entry.result or {}
    ips = [str(ip.get("address")) for ip in result.get("ips", []) if isinstance(ip, dict) and ip.get("address")]
    for legacy in ("ip4", "ip6"):
        block = result.get(legacy)
        if isinstance(block, dict) and block.get("ip"):
            ips.append(str(block["ip"]))
    return ips


def survey(state: StateStore, cache: ResultCache, pods: PodLookup | None, now: float | None = None) -> list[Attachment]:
    """Every attachment in cniDir, described from the scratch file and the libcni result cache."""
    now = time.time() if now is None else now
    entries: dict[str, list[CacheEntry]] = {}
    for entry in cache.attachments():
        entries.setdefault(entry.container_id, []).append(entry)
    out = []
    for cid in sorted(state.container_ids()):
        try:
            age = now - state.path(cid).stat().st_mtime
        except OSError:
            continue  # removed meanwhile
        cached = entries.get(cid, [])
        args = dict(cached[0].cni_args) if cached else {}
        owner = {
            "pod_namespace": args.get("K8S_POD_NAMESPACE", ""),
            "pod_name": args.get("K8S_POD_NAME", ""),
            "pod_uid": args.get("K8S_POD_UID", ""),
            "netns": next((e.netns for e in cached if e.netns), ""),
        }
        networks: tuple[str, ...] = ()
        corrupt = ""
        try:
            records = state.load(cid) or []
        except CorruptStateError as exc:
            records, corrupt = [], exc.reason
        except StateError:
            continue
        if records:
            networks = tuple(r.name for r in records)
            first = records[0]
            for key in owner:
                owner[key] = getattr(first, key) or owner[key]
        netns = owner["netns"]
        netns_exists = os.path.exists(netns) if netns else None
        pod_present: bool | None = None
        if pods is not None and owner["pod_name"]:
            pod = pods(owner["pod_namespace"], owner["pod_name"])
            pod_present = pod is not None and (not owner["pod_uid"] or pod.uid == owner["pod_uid"] or pod.static)
        out.append(
            Attachment(
                container_id=cid,
                networks=networks,
                interfaces=tuple(e.ifname for e in cached),
                ips=tuple(ip for e in cached for ip in _ips_of(e)),
                age_seconds=age,
                netns_exists=netns_exists,
                pod_present=pod_present,
                corrupt=corrupt,
                **owner,
            )
        )
    return out


def del_request(attachment: Attachment) -> CniRequest:
    """The DEL the runtime would have sent (empty netns: it is gone)."""
    args = (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", attachment.pod_namespace),
        ("K8S_POD_NAME", attachment.pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", attachment.container_id),
        ("K8S_POD_UID", attachment.pod_uid),
    )
    return CniRequest(
        command="DEL",
        container_id=attachment.container_id,
        netns="",
        ifname="eth0",
        cni_args=";".join(f"{k}={v}" for k, v in args),
        args=args,
        config={"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim"},
        config_bytes=b"",
        pod_namespace=attachment.pod_namespace,
        pod_name=attachment.pod_name,
        pod_uid=attachment.pod_uid,
        infra_container_id=attachment.container_id,
    )


class Reaper:
    """Periodic sweeps; each orphan's DEL runs through the server's gate like any request."""

    def __init__(
        self,
        state: StateStore,
        cache: ResultCache,
        multus: Multus,
        pods: PodLookup,
        pods_synced: Callable[[], bool],
        gate: Gate,
        interval_seconds: float,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.cache = cache
        self.multus = multus
        self.pods = pods
        self.pods_synced = pods_synced
        self.gate = gate
        self.interval_seconds = interval_seconds
        self.on_outcome = on_outcome

    def orphans(self) -> Iterable[Attachment]:
        return [a for a in survey(self.state, self.cache, self.pods) if a.orphan]

    async def sweep(self) -> int:
        """Reap the orphans found now; returns how many were removed."""
        if not self.pods_synced():
            log.debug("reaper: pod cache not synced, skipping this sweep")
            return 0
        removed = 0
        for attachment in self.orphans():
            req = del_request(attachment)
            try:
                await self.gate(attachment.container_id, "DEL", functools.partial(self.multus.delete, req))
            except CniError as exc:
                log.warning(
                    "reaper: DEL of orphan %s (%s) failed, will retry: %s", attachment.container_id, req.pod_ref, exc
                )
                self._count("failed")
                continue
            self.state.remove(attachment.container_id)
            removed += 1
            self._count("removed")
            log.info(
                "reaper: released orphaned attachment %s of %s (netns %s gone, pod gone); networks %s",
                attachment.container_id,
                req.pod_ref,
                attachment.netns,
                ", ".join(attachment.networks),
            )
        return removed

    def _count(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``interval_seconds`` until ``stop``; a failing sweep is logged, never fatal."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.interval_seconds):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            try:
                await self.sweep()
            except Exception:
                log.exception("reaper: sweep failed")
