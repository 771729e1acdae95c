"""routes.py against real namespaces (root): V100, interface checks, and no namespace by accident.

The rig (containernetworking/plugins style): a host stand-in namespace and a pod namespace joined
by a veth pair, ``vh0`` (host) ↔ ``net1`` (pod). The pod end has 10.0.0.2/16 and a default route
via 10.0.0.1, as a macvlan/bridge delegate would leave it; IPv6 (fd00::2/64, ``nodad``) is added
when the kernel allows. ``netns_factory`` deletes both namespaces even when a test fails, and the
autouse guard in conftest.py checks none is left over.

The measurements (per-call latency, pyroute2's import RSS) are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.routes import (
    NetnsError,
    NetnsNotFoundError,
    add_default_routes,
    apply_gateway_request,
    delete_default_routes,
    interface_exists,
    validate_ifname,
)
from multusd.cni.errors import CniCode, CniError
from tests.netns import NETNS_DIR, Netns, NetnsFactory, add_veth, list_namespaces, session_prefix

POD_IF = "net1"


@dataclass(frozen=True)
class Rig:
    host: Netns
    pod: Netns
    ipv6: bool

    def defaults(self, family: str = "-4", dev: str = POD_IF) -> list[str]:
        """Gateways of the main-table default routes on ``dev`` in the pod."""
        routes: list[dict[str, Any]] = self.pod.ip_json(family, "route", "show", "default", "dev", dev)
        return sorted(r.get("gateway", "") for r in routes)


@pytest.fixture
def rig(netns_factory: NetnsFactory) -> Rig:
    host, pod = netns_factory.create(), netns_factory.create()
    add_veth(host, "vh0", POD_IF, peer_ns=pod)
    pod.ip("addr", "add", "10.0.0.2/16", "dev", POD_IF)
    pod.ip("route", "add", "default", "via", "10.0.0.1", "dev", POD_IF)
    ipv6 = pod.ip("-6", "addr", "add", "fd00::2/64", "dev", POD_IF, "nodad", check=False).returncode == 0
    if ipv6:
        pod.ip("-6", "route", "add", "default", "via", "fd00::1", "dev", POD_IF)
    return Rig(host, pod, ipv6)


def needs_ipv6(rig: Rig) -> None:
    if not rig.ipv6:
        pytest.skip("the kernel refused an IPv6 address on the veth (ip -6 addr add … nodad failed)")


def missing_netns_path() -> str:
    """A path under /run/netns that names no namespace (and must stay that way)."""
    return os.path.join(NETNS_DIR, f"{session_prefix()}missing")


def loop_thread_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


pytestmark = pytest.mark.root


# --------------------------------------------------------------------------------------------
# V100: DeleteDefaultGW / SetDefaultGW
# --------------------------------------------------------------------------------------------


async def test_v100_delete_then_set_default_gateway(rig: Rig) -> None:
    assert rig.defaults() == ["10.0.0.1"]
    assert await delete_default_routes(rig.pod.path, POD_IF) == (2 if rig.ipv6 else 1)
    assert rig.defaults() == []
    assert rig.pod.ip_json("route", "show", "10.0.0.0/16"), "the subnet route must stay"
    await add_default_routes(rig.pod.path, POD_IF, ["10.0.0.1"])
    assert rig.defaults() == ["10.0.0.1"]
    route = rig.pod.ip_json("route", "show", "default", "dev", POD_IF)[0]
    assert route.get("protocol", "boot") == "boot", "marked like `ip route add` and upstream's netlink library"


async def test_delete_takes_every_default_on_the_link_and_nothing_else(rig: Rig) -> None:
    pod = rig.pod
    pod.ip("route", "add", "default", "via", "10.0.0.3", "dev", POD_IF, "metric", "50")
    pod.ip("route", "add", "default", "via", "10.0.0.1", "dev", POD_IF, "table", "100")
    add_veth(pod, "other0", "other1")
    pod.ip("addr", "add", "10.9.0.2/16", "dev", "other0")
    pod.ip("route", "add", "default", "via", "10.9.0.1", "dev", "other0", "metric", "10")
    await delete_default_routes(pod.path, POD_IF)
    assert rig.defaults() == []
    assert rig.defaults(dev="other0") == ["10.9.0.1"], "another link's default stays"
    assert [r.get("gateway") for r in pod.ip_json("route", "show", "table", "100")] == ["10.0.0.1"], (
        "only the main table is ours, as upstream"
    )


async def test_adding_an_existing_default_is_fine(rig: Rig) -> None:
    await add_default_routes(rig.pod.path, POD_IF, ["10.0.0.1"])
    await add_default_routes(rig.pod.path, POD_IF, ["10.0.0.1"])
    assert rig.defaults() == ["10.0.0.1"]


async def test_apply_replaces_the_plugins_default(rig: Rig) -> None:
    await apply_gateway_request(rig.pod.path, POD_IF, delete_v4=True, delete_v6=False, gateways=["10.0.0.254"])
    assert rig.defaults() == ["10.0.0.254"]
    if rig.ipv6:
        assert rig.defaults("-6") == [], "the link-level delete covers every family, as upstream"


async def test_apply_with_deletion_only_strips_defaults(rig: Rig) -> None:  # Q11's effect
    await apply_gateway_request(rig.pod.path, POD_IF, delete_v4=True, delete_v6=True, gateways=())
    assert rig.defaults() == []


async def test_apply_with_nothing_to_do_changes_nothing(rig: Rig) -> None:
    await apply_gateway_request(rig.pod.path, POD_IF, delete_v4=False, delete_v6=False, gateways=())
    assert rig.defaults() == ["10.0.0.1"]


async def test_ipv6_default_routes(rig: Rig) -> None:
    needs_ipv6(rig)
    assert rig.defaults("-6") == ["fd00::1"]
    await delete_default_routes(rig.pod.path, POD_IF)
    assert rig.defaults("-6") == [] and rig.defaults() == []
    await apply_gateway_request(rig.pod.path, POD_IF, delete_v4=False, delete_v6=True, gateways=["fd00::1", "10.0.0.1"])
    assert rig.defaults("-6") == ["fd00::1"]
    assert rig.defaults() == ["10.0.0.1"]


async def test_an_unreachable_gateway_is_an_error_naming_the_interface(rig: Rig) -> None:
    with pytest.raises(CniError, match=r"^error setting default gateway on net1 via 192\.168\.77\.1: ") as info:
        await add_default_routes(rig.pod.path, POD_IF, ["192.168.77.1"])
    assert info.value.code == CniCode.INTERNAL


async def test_a_missing_link_is_an_error_naming_it(rig: Rig) -> None:
    with pytest.raises(CniError, match=r"^error deleting default gateway on net9: link not found$"):
        await delete_default_routes(rig.pod.path, "net9")
    with pytest.raises(CniError, match=r"^error setting default gateway on net9: link not found$"):
        await add_default_routes(rig.pod.path, "net9", ["10.0.0.1"])


# --------------------------------------------------------------------------------------------
# validateIfName
# --------------------------------------------------------------------------------------------


async def test_interface_exists(rig: Rig) -> None:
    assert await interface_exists(rig.pod.path, POD_IF)
    assert await interface_exists(rig.pod.path, "lo")
    assert not await interface_exists(rig.pod.path, "vh0"), "the host end is in another namespace"
    assert not await interface_exists(rig.pod.path, "net2")
    assert not await interface_exists(rig.pod.path, "x" * 40), "a name no link can have"
    assert await interface_exists(rig.host.path, "vh0")


async def test_validate_ifname_refuses_a_taken_name(rig: Rig) -> None:
    await validate_ifname(rig.pod.path, "net2")
    with pytest.raises(CniError, match=r"^validateIfName: interface name net1 already exists$"):
        await validate_ifname(rig.pod.path, POD_IF)


# --------------------------------------------------------------------------------------------
# Bad paths: clear errors, and no namespace is ever created
# --------------------------------------------------------------------------------------------


async def test_a_missing_netns_path_is_an_error_and_creates_nothing() -> None:
    path = missing_netns_path()
    before = list_namespaces()
    with pytest.raises(NetnsNotFoundError) as info:
        await interface_exists(path, "eth0")
    assert info.value.code == CniCode.INVALID_NETNS
    assert info.value.msg == f'no net namespace {path} found: failed to Statfs "{path}": no such file or directory'
    for call in (
        delete_default_routes(path, POD_IF),
        add_default_routes(path, POD_IF, ["10.0.0.1"]),
        apply_gateway_request(path, POD_IF, delete_v4=True, delete_v6=True, gateways=["10.0.0.1"]),
        validate_ifname(path, POD_IF),
    ):
        with pytest.raises(CniError) as err:
            await call
        assert err.value.code == CniCode.INVALID_NETNS and f"no net namespace {path} found" in err.value.msg
    assert not os.path.lexists(path)
    assert list_namespaces() == before


async def test_a_path_that_is_not_a_netns_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "plain-file", tmp_path):
        if path != tmp_path:
            path.write_text("")
        with pytest.raises(NetnsError) as info:
            await interface_exists(str(path), "lo")
        assert not isinstance(info.value, NetnsNotFoundError)
        assert info.value.msg == f'no net namespace {path} found: "{path}" is not a network namespace'


async def test_calls_leave_the_loop_thread_in_its_namespace_and_leak_nothing(rig: Rig) -> None:
    home = loop_thread_netns()
    await interface_exists(rig.pod.path, POD_IF)  # first call loads pyroute2; count after it
    fds = open_fds()
    for _ in range(20):
        assert await interface_exists(rig.pod.path, POD_IF)
        await apply_gateway_request(rig.pod.path, POD_IF, delete_v4=True, delete_v6=True, gateways=["10.0.0.1"])
    with pytest.raises(NetnsNotFoundError):
        await interface_exists(missing_netns_path(), POD_IF)
    assert loop_thread_netns() == home
    assert open_fds() == fds


async def test_cancelling_a_call_leaks_no_socket(rig: Rig) -> None:
    await interface_exists(rig.pod.path, POD_IF)
    fds = open_fds()
    for _ in range(10):
        task = asyncio.ensure_future(interface_exists(rig.pod.path, POD_IF))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(100):  # the worker threads finish on their own; wait for their sockets to close
        if open_fds() == fds:
            break
        await asyncio.sleep(0.01)
    assert open_fds() == fds


def test_interface_checks_do_not_load_pyroute2(rig: Rig) -> None:
    code = (
        "import asyncio, sys; from multusd.attach.routes import interface_exists; "
        f"print(asyncio.run(interface_exists({rig.pod.path!r}, {POD_IF!r})), 'pyroute2' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "False"]


async def test_concurrent_calls_in_different_namespaces(rig: Rig) -> None:
    results = await asyncio.gather(
        *(interface_exists(ns.path, name) for _ in range(10) for ns, name in ((rig.pod, POD_IF), (rig.host, POD_IF)))
    )
    assert results == [True, False] * 10


# --------------------------------------------------------------------------------------------
# Measurements (printed, not asserted)
# --------------------------------------------------------------------------------------------


async def test_measure_call_latency(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    async def median_ms(make_call: Any, n: int) -> float:
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            await make_call()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e3

    path = rig.pod.path
    await apply_gateway_request(path, POD_IF, delete_v4=True, delete_v6=True, gateways=["10.0.0.1"])  # warm
    exists = await median_ms(lambda: interface_exists(path, POD_IF), 50)
    apply = await median_ms(
        lambda: apply_gateway_request(path, POD_IF, delete_v4=True, delete_v6=True, gateways=["10.0.0.1"]), 50
    )
    from pyroute2 import AsyncIPRoute

    async def forking_lookup() -> None:
        async with AsyncIPRoute(netns=path, flags=0) as ipr:
            await ipr.link("get", ifname=POD_IF)

    forking = await median_ms(forking_lookup, 10)
    with capsys.disabled():
        print(
            f"\n[routes] medians: interface_exists (thread setns + SIOCGIFINDEX) {exists:.2f} ms;"
            f" apply_gateway_request delete+add (thread setns + rtnetlink socket + pyroute2) {apply:.2f} ms;"
            f" for comparison one link lookup via AsyncIPRoute(netns=…, flags=0) (forks per open) {forking:.2f} ms"
        )


def test_measure_pyroute2_import_rss(capsys: pytest.CaptureFixture[str]) -> None:
    code = """
import time
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
import multusd.attach.routes
before = rss(); start = time.perf_counter()
from pyroute2 import AsyncIPRoute
print(rss() - before, round((time.perf_counter() - start) * 1e3, 1))
"""
    root = Path(__file__).resolve().parents[2]
    rss_kib, import_ms = [], []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        kib, ms = out.stdout.split()
        rss_kib.append(int(kib))
        import_ms.append(float(ms))
    with capsys.disabled():
        print(
            f"\n[routes] importing pyroute2 (AsyncIPRoute): +{statistics.median(rss_kib) / 1024:.1f} MiB RSS,"
            f" {statistics.median(import_ms):.0f} ms (median of 3)"
        )
