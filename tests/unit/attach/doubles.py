"""In-memory doubles of the meta-plugin's own seams (pods, status sink, netns operations).

Only protocols multusd owns are faked (STYLE §2.7); plugins, the result cache and scratch files
stay real in the tests that use these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from multusd.attach.flows import PodInfo
from multusd.cni.errors import CniError


@dataclass
class Pods:
    """PodSource: a dict of pods; ``hidden_polls`` makes the first N cache reads miss (a lagging watch)."""

    pods: dict[tuple[str, str], PodInfo] = field(default_factory=dict)
    hidden_polls: int = 0
    live_gets: int = 0

    def cached_pod(self, namespace: str, name: str) -> PodInfo | None:
        if self.hidden_polls > 0:
            self.hidden_polls -= 1
            return None
        return self.pods.get((namespace, name))

    async def live_pod(self, namespace: str, name: str) -> PodInfo | None:
        self.live_gets += 1
        return self.pods.get((namespace, name))


@dataclass
class Sink:
    """StatusSink: records statuses and events; can fail or hang to test the bounds."""

    statuses: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    fail: bool = False
    hang: bool = False

    async def write_network_status(self, pod: PodInfo, value: str) -> None:
        if self.fail:
            raise RuntimeError("API down")
        if self.hang:
            await asyncio.Event().wait()
        self.statuses.append((pod.name, value))

    def event(self, pod: PodInfo, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


@dataclass
class Netns:
    """NetnsOps: these tests use made-up netns paths; namespaces are tested for real elsewhere."""

    existing: set[tuple[str, str]] = field(default_factory=set)
    gateway_calls: list[tuple[str, bool, bool, tuple[str, ...]]] = field(default_factory=list)

    async def validate_ifname(self, netns_path: str, ifname: str) -> None:
        if (netns_path, ifname) in self.existing:
            raise CniError(999, f"validateIfName: interface name {ifname} already exists")

    async def apply_gateway_request(
        self, netns_path: str, ifname: str, *, delete_v4: bool, delete_v6: bool, gateways: Sequence[str]
    ) -> None:
        self.gateway_calls.append((ifname, delete_v4, delete_v6, tuple(gateways)))
