"""ConfigManager end to end: real files in tmp dirs, real asyncio tasks, bounded waits (no root)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multusd.autoconf import (
    ConfigGenError,
    ConfigManager,
    PrimaryNotFoundError,
    ReadinessIndicatorLostError,
)
from multusd.config import DaemonConfig, parse_config

FAST = 0.05  # poll interval of most tests; V66 uses the default
WITHIN_SECONDS = 2.0
FLANNEL = {
    "name": "cbr0",
    "cniVersion": "1.0.0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


async def eventually(predicate: Callable[[], bool], timeout: float = WITHIN_SECONDS) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2))


def valid_json(path: Path) -> dict[str, Any]:
    obj = json.loads(path.read_bytes())
    assert isinstance(obj, dict) and obj
    return obj


@dataclass
class Rig:
    """A node's conf dir, the daemon-config, and a running manager task."""

    dir: Path
    cfg: DaemonConfig
    manager: ConfigManager
    stop: asyncio.Event
    serving: asyncio.Event
    task: asyncio.Task[None]

    @property
    def primary(self) -> Path:
        return self.dir / "10-flannel.conflist"

    @property
    def target(self) -> Path:
        return self.dir / "00-multus.conf"


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., Any]:
    """Factory: ``async with make_rig(primary=…, serving=…, **daemon_config) as rig``; stops the task."""

    @asynccontextmanager
    async def make(
        primary: Any = FLANNEL,
        serving: bool = True,
        poll_interval: float = FAST,
        retries: int = 20,
        **keys: Any,
    ) -> AsyncIterator[Rig]:
        conf_dir = tmp_path / "net.d"
        conf_dir.mkdir(exist_ok=True)
        if primary is not None:
            write_json(conf_dir / "10-flannel.conflist", primary)
        doc = {
            "cniVersion": "1.0.0",
            "cniConfigDir": str(conf_dir),
            "multusAutoconfigDir": str(conf_dir),
            "socketPath": str(tmp_path / "multus.sock"),
            **keys,
        }
        cfg = parse_config(doc, "test", env={})
        manager = ConfigManager(cfg, primary_retries=retries, primary_retry_seconds=FAST, poll_interval=poll_interval)
        stop, serving_event = asyncio.Event(), asyncio.Event()
        if serving:
            serving_event.set()
        task = asyncio.create_task(manager.run(stop, serving_event), name="autoconf")
        rig = Rig(conf_dir, cfg, manager, stop, serving_event, task)
        try:
            yield rig
        finally:
            stop.set()
            if not task.done():
                async with asyncio.timeout(WITHIN_SECONDS):
                    await asyncio.gather(task, return_exceptions=True)

    return make


async def test_written_only_after_the_socket_serves(make_rig: Callable[..., Any]) -> None:
    async with make_rig(serving=False) as rig:
        await eventually(lambda: rig.manager.source is not None or rig.task.done())
        await asyncio.sleep(5 * FAST)
        assert not rig.target.exists()
        rig.serving.set()
        async with asyncio.timeout(WITHIN_SECONDS):
            await rig.manager.written.wait()
        conf = valid_json(rig.target)
        assert conf["clusterNetwork"] == str(rig.primary)
        assert conf["capabilities"] == {"portMappings": True}
        assert stat.S_IMODE(rig.target.stat().st_mode) == 0o600
        assert not rig.task.done()


async def test_v66_rewritten_primary_regenerates_within_2s(make_rig: Callable[..., Any]) -> None:
    async with make_rig(poll_interval=0.5) as rig:  # the default interval
        async with asyncio.timeout(WITHIN_SECONDS):
            await rig.manager.written.wait()
        write_json(
            rig.primary, {"cniVersion": "1.0.0", "name": "cbr0", "type": "mycni2", "capabilities": {"bandwidth": True}}
        )
        await eventually(lambda: b"bandwidth" in rig.target.read_bytes())
        # Q4 fixed: portMappings, gone from the primary, is gone from 00-multus.conf too.
        assert valid_json(rig.target)["capabilities"] == {"bandwidth": True}


async def test_replaced_primary_is_picked_up(make_rig: Callable[..., Any]) -> None:
    async with make_rig() as rig:
        await rig.manager.written.wait()
        tmp = rig.dir / ".new"
        write_json(
            tmp,
            {**FLANNEL, "plugins": [*FLANNEL["plugins"], {"type": "bandwidth", "capabilities": {"bandwidth": True}}]},
        )
        os.replace(tmp, rig.primary)
        await eventually(lambda: b"bandwidth" in rig.target.read_bytes())


async def test_deleted_multus_conf_is_recreated_within_2s(make_rig: Callable[..., Any]) -> None:
    async with make_rig() as rig:
        await rig.manager.written.wait()
        before = rig.target.read_bytes()
        rig.target.unlink()
        await eventually(rig.target.exists)
        assert rig.target.read_bytes() == before


async def test_renamed_away_multus_conf_is_recreated(make_rig: Callable[..., Any]) -> None:
    """Cilium's cni-exclusive renames it to .cilium_bak (P12)."""
    async with make_rig() as rig:
        await rig.manager.written.wait()
        rig.target.rename(rig.dir / "00-multus.conf.cilium_bak")
        await eventually(rig.target.exists)


async def test_half_written_primary_never_breaks_multus_conf(make_rig: Callable[..., Any]) -> None:
    async with make_rig() as rig:
        await rig.manager.written.wait()
        good = rig.target.read_bytes()
        seen: set[bytes] = set()
        rig.primary.write_text('{"name":"cbr0","cniVersion":"1.0.0","plugins":[{"type":"fla')
        for _ in range(15):  # many polls while the file stays broken
            await asyncio.sleep(FAST)
            seen.add(rig.target.read_bytes())
        assert seen == {good}
        write_json(rig.primary, {**FLANNEL, "plugins": [{"type": "flannel", "capabilities": {"ips": True}}]})
        await eventually(lambda: b'"ips"' in rig.target.read_bytes())
        valid_json(rig.target)


async def test_half_written_primary_at_startup_is_waited_for(make_rig: Callable[..., Any]) -> None:
    async with make_rig(primary="{") as rig:
        await asyncio.sleep(5 * FAST)
        assert not rig.target.exists()
        write_json(rig.primary, FLANNEL)
        async with asyncio.timeout(WITHIN_SECONDS):
            await rig.manager.written.wait()
        assert valid_json(rig.target)["capabilities"] == {"portMappings": True}


async def test_primary_appearing_late_is_waited_for(make_rig: Callable[..., Any]) -> None:
    async with make_rig(primary=None) as rig:
        await asyncio.sleep(5 * FAST)
        write_json(rig.primary, FLANNEL)
        async with asyncio.timeout(WITHIN_SECONDS):
            await rig.manager.written.wait()


async def test_no_primary_after_bounded_wait_is_fatal(make_rig: Callable[..., Any]) -> None:
    async with make_rig(primary=None, retries=3) as rig:
        async with asyncio.timeout(WITHIN_SECONDS):
            with pytest.raises(PrimaryNotFoundError, match="failed to find the cluster master CNI plugin"):
                await rig.task
        assert not rig.target.exists()


async def test_incompatible_primary_at_startup_is_fatal(make_rig: Callable[..., Any]) -> None:
    async with make_rig(primary={**FLANNEL, "cniVersion": "0.3.1"}, cniVersion="0.4.0") as rig:
        async with asyncio.timeout(WITHIN_SECONDS):
            with pytest.raises(ConfigGenError, match=r"delegate cni version is 0\.3\.1"):
                await rig.task


async def test_removed_primary_keeps_the_file_until_it_returns(make_rig: Callable[..., Any]) -> None:
    async with make_rig() as rig:
        await rig.manager.written.wait()
        good = rig.target.read_bytes()
        rig.primary.unlink()
        await asyncio.sleep(6 * FAST)
        assert rig.target.read_bytes() == good
        assert not rig.task.done()
        write_json(rig.primary, {**FLANNEL, "plugins": [{"type": "flannel", "capabilities": {"ips": True}}]})
        await eventually(lambda: b'"ips"' in rig.target.read_bytes())


async def test_unchanged_content_is_not_rewritten(make_rig: Callable[..., Any]) -> None:
    """K3s rewrites 10-flannel.conflist on every agent start; containerd must see no churn."""
    async with make_rig() as rig:
        await rig.manager.written.wait()
        before = rig.target.stat()
        write_json(rig.primary, dict(reversed(list(FLANNEL.items()))))  # same meaning, new bytes, new mtime
        await asyncio.sleep(8 * FAST)
        after = rig.target.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_existing_identical_file_is_left_alone_at_startup(make_rig: Callable[..., Any], tmp_path: Path) -> None:
    """Kept across a restart (P3): the new daemon finds it up to date and does not touch it."""
    async with make_rig() as rig:
        await rig.manager.written.wait()
    target = tmp_path / "net.d" / "00-multus.conf"
    before = target.stat()
    async with make_rig() as rig:
        await rig.manager.written.wait()
        assert rig.target.stat().st_ino == before.st_ino


async def test_force_cni_version_rewrites_primary(make_rig: Callable[..., Any]) -> None:
    async with make_rig(primary={**FLANNEL, "cniVersion": "0.3.1"}, cniVersion="1.1.0", forceCNIVersion=True) as rig:
        await rig.manager.written.wait()
        assert valid_json(rig.primary)["cniVersion"] == "1.1.0"
        write_json(rig.primary, {**FLANNEL, "cniVersion": "0.3.1"})  # K3s agent restart
        await eventually(lambda: valid_json(rig.primary)["cniVersion"] == "1.1.0")


async def test_readiness_file_removed_deletes_conf_and_stops(make_rig: Callable[..., Any], tmp_path: Path) -> None:
    ready = tmp_path / "subnet.env"
    ready.write_text("FLANNEL_NETWORK=10.42.0.0/16\n")
    async with make_rig(readinessindicatorfile=str(ready)) as rig:
        await rig.manager.written.wait()
        await asyncio.sleep(3 * FAST)
        assert not rig.task.done()
        ready.unlink()
        async with asyncio.timeout(WITHIN_SECONDS):
            with pytest.raises(ReadinessIndicatorLostError):
                await rig.task
        assert not rig.target.exists()


async def test_stop_before_serving_writes_nothing(make_rig: Callable[..., Any]) -> None:
    async with make_rig(serving=False) as rig:
        await asyncio.sleep(3 * FAST)
        rig.stop.set()
        async with asyncio.timeout(WITHIN_SECONDS):
            await rig.task
        assert not rig.target.exists()


async def test_non_auto_mode_copies_and_keeps_running(make_rig: Callable[..., Any], tmp_path: Path) -> None:
    own = tmp_path / "conf" / "multus.conf"
    write_json(own, {"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim"})
    async with make_rig(multusConfigFile=str(own)) as rig:
        copy = rig.dir / "multus.conf"
        await rig.manager.written.wait()
        assert copy.read_bytes() == own.read_bytes()
        await asyncio.sleep(3 * FAST)
        assert not rig.task.done()  # Q1 fixed: upstream's daemon exited here
        write_json(own, {"cniVersion": "1.0.0", "name": "changed", "type": "multus-shim"})
        await eventually(lambda: copy.read_bytes() == own.read_bytes())
        copy.unlink()
        await eventually(copy.exists)


@pytest.mark.parametrize(
    ("policy", "gone", "kept"),
    [("never", True, True), ("always", False, False), ("auto", False, True), ("auto", True, False)],
    ids=["never", "always", "auto-restart", "auto-daemonset-deleted"],
)
async def test_cleanup_after_run(make_rig: Callable[..., Any], policy: str, gone: bool, kept: bool) -> None:
    async def daemonset_gone() -> bool:
        return gone

    async with make_rig() as rig:
        await rig.manager.written.wait()
        rig.stop.set()
        await rig.task
        await rig.manager.cleanup_on_exit(policy, daemonset_gone)
        assert rig.target.exists() is kept
