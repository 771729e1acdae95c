"""The orphan reaper: only attachments whose netns AND pod are gone are released."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.flows import Multus, PodInfo
from multusd.attach.request import parse_request
from multusd.cni.cache import ResultCache
from multusd.cni.exec import PluginExecutor
from multusd.cni.runtime import CniRuntime
from multusd.reaper import Reaper, survey
from multusd.state import StateStore
from tests.unit.attach.doubles import Netns, Pods, Sink
from tests.unit.attach.test_flows import PLUGINS

CID_ARGS = (
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}"
)


async def direct_gate(key: str, command: str, work: Callable[[], Awaitable[Any]]) -> Any:
    return await work()


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.record = tmp / "calls.jsonl"
        self.conf = tmp / "10-cluster.conflist"
        self.conf.write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "cbr0",
                    "plugins": [{"type": "cni-recorder", "recordFile": str(self.record), "ip": "10.42.0.7/24"}],
                }
            )
        )
        self.state = StateStore(tmp / "multus")
        self.cache = ResultCache(str(tmp / "multus"))
        self.pods = Pods()
        runtime = CniRuntime(PluginExecutor([str(PLUGINS)], timeout_seconds=20), self.cache)
        self.multus = Multus(runtime, self.state, pods=self.pods, sink=Sink(), netns=Netns())
        self.outcomes: list[str] = []
        self.synced = True
        self.reaper = Reaper(
            self.state,
            self.cache,
            self.multus,
            self.pods.cached_pod,
            lambda: self.synced,
            direct_gate,
            interval_seconds=0.05,
            on_outcome=self.outcomes.append,
        )

    async def attach(self, cid: str, name: str, uid: str, netns: Path) -> None:
        """An ADD as the runtime sends it, for pod ``default/<name>`` with ``uid``."""
        self.pods.pods[("default", name)] = PodInfo("default", name, uid)
        stdin = {
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus-shim",
            "clusterNetwork": str(self.conf),
        }
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": str(netns),
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": CID_ARGS.format(name=name, cid=cid, uid=uid),
        }
        body = {"env": env, "config": base64.b64encode(json.dumps(stdin).encode()).decode()}
        await self.multus.add(parse_request(json.dumps(body).encode()))

    def dels(self) -> list[str]:
        return [
            c["containerID"] for c in map(json.loads, self.record.read_text().splitlines()) if c["command"] == "DEL"
        ]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_only_attachments_with_netns_and_pod_gone_are_reaped(world: World) -> None:
    live_ns = world.tmp / "netns-live"
    live_ns.touch()
    await world.attach("live", "a", "uid-a", live_ns)  # netns exists
    await world.attach("restarting", "b", "uid-b", world.tmp / "gone-1")  # netns gone, pod still here
    await world.attach("orphan", "c", "uid-c", world.tmp / "gone-2")  # netns gone, pod gone
    await world.attach("recreated", "d", "uid-d", world.tmp / "gone-3")  # pod recreated with a new UID
    del world.pods.pods[("default", "c")]
    world.pods.pods[("default", "d")] = PodInfo("default", "d", "uid-d2")

    found = {a.container_id: a for a in survey(world.state, world.cache, world.pods.cached_pod)}
    assert {cid for cid, a in found.items() if a.orphan} == {"orphan", "recreated"}
    assert found["orphan"].ips == ("10.42.0.7/24",)
    assert found["orphan"].networks == ("cbr0",)
    assert found["live"].netns_exists is True

    assert await world.reaper.sweep() == 2
    assert sorted(world.dels()) == ["orphan", "recreated"]
    assert sorted(world.state.container_ids()) == ["live", "restarting"]
    assert world.outcomes == ["removed", "removed"]
    assert not world.cache.attachments(container_id="orphan")


async def test_nothing_is_reaped_before_the_pod_cache_is_synced(world: World) -> None:
    await world.attach("orphan", "c", "uid-c", world.tmp / "gone")
    world.pods.pods.clear()
    world.synced = False
    assert await world.reaper.sweep() == 0
    assert list(world.state.container_ids()) == ["orphan"]


async def test_run_sweeps_periodically_until_stopped(world: World) -> None:
    await world.attach("orphan", "c", "uid-c", world.tmp / "gone")
    world.pods.pods.clear()
    stop = asyncio.Event()
    task = asyncio.create_task(world.reaper.run(stop))
    async with asyncio.timeout(5):
        while list(world.state.container_ids()):
            await asyncio.sleep(0.02)
    stop.set()
    async with asyncio.timeout(2):
        await task
    assert world.outcomes == ["removed"]
