"""``multusd inspect``: a real cniDir, a real API and the daemon's real metrics app."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from multusd import inspection as inspect
from multusd.kube.localapi import LocalApi
from multusd.metrics import Metrics
from multusd.server import Health, make_metrics_app
from tests.unit.test_reaper import World

NODE = "node-1"
CliRunner = Callable[..., Awaitable[tuple[int, str]]]


def pod_object(name: str, node: str = NODE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    """This node runs pods a and b; c runs elsewhere (same name, another node: not ours)."""
    async with LocalApi() as server:
        server.create(pod_object("a"))
        server.create(pod_object("b"))
        server.create(pod_object("c", node="node-2"))
        yield server


@pytest.fixture
async def world(tmp_path: Path, api: LocalApi) -> World:
    """Three attachments made by real ADDs: live, netns gone with the pod still there, orphan."""
    uid = {name: (api.get("pods", name) or {})["metadata"]["uid"] for name in ("a", "b", "c")}
    w = World(tmp_path)
    live_ns = tmp_path / "netns-live"
    live_ns.touch()
    await w.attach("live0123456789abcdef", "a", uid["a"], live_ns)
    await w.attach("restarting", "b", uid["b"], tmp_path / "netns-gone-1")
    await w.attach("orphan0123456789", "c", uid["c"], tmp_path / "netns-gone-2")
    return w


class Daemon:
    """The daemon's own metrics app (real metric names), on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.metrics = Metrics(CollectorRegistry(), process=True)
        self.health = Health(ready=True)
        self.metrics.queue_depth.set(2)
        self.metrics.in_flight.set(1)
        self.metrics.scrape_gauge("multus_state_files", "state files", lambda: 3)
        self.metrics.server_requests.labels(handler="/cni", code="200", method="post").inc(5)
        self.runner = web.AppRunner(make_metrics_app(self.metrics, self.health))
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    d = Daemon()
    await d.start()
    yield d
    await d.runner.cleanup()


@pytest.fixture
def closed_url() -> str:
    """A URL nothing listens on (port bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """``multusd inspect ARGV`` in a thread (it runs its own loop), with an empty environment."""

    async def invoke(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        parser = argparse.ArgumentParser()
        inspect.add_arguments(parser)
        args = parser.parse_args(list(argv))
        rc = await asyncio.to_thread(inspect.run, args, {} if env is None else env)
        return rc, capsys.readouterr().out

    return invoke


async def test_json_lists_attachments_and_flags_exactly_the_orphan(
    world: World, api: LocalApi, daemon: Daemon, cli: CliRunner, tmp_path: Path
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    rc, out = await cli(
        "--cni-dir",
        str(world.state.dir),
        "--kubeconfig",
        str(kubeconfig),
        "--node",
        NODE,
        "--metrics-url",
        daemon.url,
        "-o",
        "json",
    )
    assert rc == 0
    doc = json.loads(out)
    found = {a["containerID"]: a for a in doc["attachments"]}
    assert set(found) == {"live0123456789abcdef", "restarting", "orphan0123456789"}
    assert [cid for cid, a in found.items() if a["orphan"]] == ["orphan0123456789"]
    assert doc["orphans"] == 1
    assert doc["podPresence"] == {"source": "api", "detail": f"2 pods on node {NODE}"}

    live = found["live0123456789abcdef"]
    assert (live["pod"], live["networks"], live["interfaces"], live["ips"]) == (
        "default/a",
        ["cbr0"],
        ["eth0"],
        ["10.42.0.7/24"],
    )
    assert (live["netnsExists"], live["podPresent"], live["state"]) == (True, True, "live")
    assert found["restarting"]["state"] == "netns gone, pod present"
    assert found["orphan0123456789"]["state"] == "ORPHAN (netns and pod gone)"
    assert found["orphan0123456789"]["pod"] == "default/c"

    health = doc["daemon"]
    assert (health["url"], health["reachable"], health["ready"]) == (daemon.url, True, True)
    assert health["metrics"]["queueDepth"] == 2
    assert health["metrics"]["inFlight"] == 1
    assert health["metrics"]["stateFiles"] == 3
    assert health["metrics"]["requestsTotal"] == 5
    assert health["metrics"]["rssBytes"] > 0


async def test_table_is_aligned_and_marks_the_orphan(
    world: World, api: LocalApi, daemon: Daemon, cli: CliRunner, tmp_path: Path
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    rc, out = await cli(
        "--cni-dir", str(world.state.dir), "--kubeconfig", str(kubeconfig), "--node", NODE, "--metrics-url", daemon.url
    )
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"node: {NODE}   cniDir: {world.state.dir}"
    assert lines[1] == f"pod presence: api; 2 pods on node {NODE}"
    assert lines[2].startswith(f"daemon: {daemon.url} ready; queue 2, in flight 1, state files 3, RSS ")
    header = lines[4]
    rows = {line.split()[1]: line for line in lines[5:8]}
    assert set(rows) == {"live01234567", "restarting", "orphan012345"}  # container IDs cut to 12, as crictl
    for column in ("CONTAINER", "AGE", "NETWORKS", "INTERFACES", "IPS", "STATE"):
        assert {row[header.index(column) - 1] for row in rows.values()} == {" "}  # every column starts aligned
    assert rows["orphan012345"].endswith("ORPHAN (netns and pod gone)")
    assert rows["live01234567"].endswith("live")
    assert lines[-1] == "3 attachments, 1 orphan"


async def test_without_api_access_nothing_is_an_orphan(world: World, daemon: Daemon, cli: CliRunner) -> None:
    rc, out = await cli("--cni-dir", str(world.state.dir), "--metrics-url", daemon.url, "-o", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["podPresence"]["source"] == "unknown"
    assert doc["orphans"] == 0
    states = {a["containerID"]: a["state"] for a in doc["attachments"]}
    assert states["orphan0123456789"] == "netns gone, pod unknown"
    assert all(a["podPresent"] is None for a in doc["attachments"])


async def test_a_node_with_no_pods_in_the_api_is_not_judged(
    world: World, api: LocalApi, daemon: Daemon, cli: CliRunner, tmp_path: Path
) -> None:
    """A wrong --node would otherwise turn every attachment into an orphan."""
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    argv = ["--cni-dir", str(world.state.dir), "--kubeconfig", str(kubeconfig), "--metrics-url", daemon.url]
    rc, out = await cli(*argv, "--node", "typo-node", "-o", "json")
    doc = json.loads(out)
    assert (rc, doc["orphans"], doc["podPresence"]["source"]) == (0, 0, "unknown")
    assert "wrong --node?" in doc["podPresence"]["detail"]


async def test_node_name_comes_from_multus_node_name(
    world: World, api: LocalApi, daemon: Daemon, cli: CliRunner, tmp_path: Path
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    argv = ["--cni-dir", str(world.state.dir), "--metrics-url", daemon.url, "-o", "json"]
    rc, out = await cli(*argv, env={"MULTUS_NODE_NAME": NODE, "KUBECONFIG": str(kubeconfig)})
    doc = json.loads(out)
    assert (rc, doc["node"], doc["orphans"]) == (0, NODE, 1)


async def test_unreachable_daemon_and_api_are_reported_not_raised(
    world: World, cli: CliRunner, closed_url: str, tmp_path: Path
) -> None:
    async with LocalApi() as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig")
    argv = ["--cni-dir", str(world.state.dir), "--kubeconfig", str(kubeconfig), "--node", NODE]
    rc, out = await cli(*argv, "--metrics-url", closed_url, "--timeout", "1", "-o", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["daemon"]["reachable"] is False
    assert doc["daemon"]["error"]
    assert doc["podPresence"]["source"] == "unknown"
    assert doc["podPresence"]["detail"].startswith(f"cannot list pods of node {NODE}")
    assert len(doc["attachments"]) == 3

    rc, out = await cli("--cni-dir", str(world.state.dir), "--metrics-url", closed_url, "--timeout", "1")
    assert rc == 0
    assert out.splitlines()[2].startswith(f"daemon: {closed_url} unreachable: ")


async def test_not_ready_daemon_shows_its_reason(world: World, daemon: Daemon, cli: CliRunner) -> None:
    daemon.health.ready = False
    daemon.health.reasons["pods"] = "pod cache not synced"
    rc, out = await cli("--cni-dir", str(world.state.dir), "--metrics-url", daemon.url)
    assert rc == 0
    assert "NOT READY (HTTP 500: pod cache not synced)" in out.splitlines()[2]


async def test_config_supplies_cni_dir_and_metrics_port(
    world: World, daemon: Daemon, cli: CliRunner, tmp_path: Path
) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    cfg = tmp_path / "daemon-config.json"
    cfg.write_text(json.dumps({"cniDir": str(world.state.dir), "metricsAddress": f"0.0.0.0:{port}"}))
    rc, out = await cli("--config", str(cfg), "-o", "json")
    doc = json.loads(out)
    assert (rc, doc["cniDir"], doc["daemon"]["url"], len(doc["attachments"])) == (
        0,
        str(world.state.dir),
        f"http://127.0.0.1:{port}",
        3,
    )


async def test_bad_config_is_a_usage_error(cli: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "daemon-config.json"
    cfg.write_text("{not json")
    rc, _ = await cli("--config", str(cfg))
    assert rc == 2


async def test_empty_cni_dir(cli: CliRunner, closed_url: str, tmp_path: Path) -> None:
    rc, out = await cli("--cni-dir", str(tmp_path / "none"), "--metrics-url", closed_url, "--timeout", "1")
    assert rc == 0
    assert out.splitlines()[-1] == "0 attachments, 0 orphans"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")]
)
def test_format_age(seconds: float, text: str) -> None:
    assert inspect.format_age(seconds) == text
