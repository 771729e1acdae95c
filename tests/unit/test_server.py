"""The unix-socket API: upstream's shapes, readiness, metrics labels, the FIFO execution gate."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from multusd.attach.request import CniRequest
from multusd.cni.errors import CniError
from multusd.cni.types import Result
from multusd.metrics import Metrics
from multusd.server import Health, RequestGate, ServerDeps, make_cni_app, make_metrics_app

RESULT = Result.from_json(
    {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 0}],
    }
)


class ScriptedService:
    """A CniService double: records calls, answers what the test scripts, optionally slowly."""

    def __init__(self) -> None:
        self.calls: list[CniRequest] = []
        self.error: CniError | None = None
        self.crash: Exception | None = None
        self.delay = 0.0
        self.running = 0
        self.max_running = 0
        self.per_container: dict[str, int] = {}
        self.max_per_container = 0

    async def run(self, request: CniRequest) -> Result | None:
        self.calls.append(request)
        self.running += 1
        self.per_container[request.container_id] = self.per_container.get(request.container_id, 0) + 1
        self.max_running = max(self.max_running, self.running)
        self.max_per_container = max(self.max_per_container, self.per_container[request.container_id])
        try:
            await asyncio.sleep(self.delay)
            if self.crash:
                raise self.crash
            if self.error:
                raise self.error
            return RESULT if request.command == "ADD" else None
        finally:
            self.running -= 1
            self.per_container[request.container_id] -= 1

    async def delegate(self, request: CniRequest) -> Result | None:
        return await self.run(request)


def cni_body(command: str = "ADD", container_id: str = "abc", **env: str) -> dict[str, Any]:
    stdin = {"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim"}
    full_env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        **env,
    }
    return {"env": full_env, "config": base64.b64encode(json.dumps(stdin).encode()).decode()}


Post = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Post, ScriptedService, ServerDeps]]:
    metrics = Metrics(process=False)
    service = ScriptedService()
    deps = ServerDeps(service, metrics, Health(ready=True), RequestGate(4, metrics), overlay={})
    runner = web.AppRunner(make_cni_app(deps))
    await runner.setup()
    sock = str(tmp_path / "multus.sock")
    await web.UnixSite(runner, sock).start()
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock))

    async def post(path: str, body: Any = None, method: str = "POST", raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        async with session.request(method, f"http://dummy{path}", data=data) as resp:
            text = await resp.read()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text.decode()

    yield post, service, deps
    await session.close()
    await runner.cleanup()


async def test_add_returns_upstream_result_shape(daemon: tuple[Post, ScriptedService, ServerDeps]) -> None:
    post, service, _ = daemon
    status, body = await post("/cni", cni_body())
    assert status == 200
    assert body == {
        "Result": {
            "cniVersion": "1.1.0",
            "interfaces": [{"mac": "aa:bb:cc:dd:ee:ff", "name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 0}],
        }
    }
    assert service.calls[0].pod_ref == "default/web-0"


async def test_del_success_has_empty_body(daemon: tuple[Post, ScriptedService, ServerDeps]) -> None:
    post, _, _ = daemon
    assert await post("/cni", cni_body("DEL")) == (200, None)


async def test_cni_errors_are_400_json_with_code(daemon: tuple[Post, ScriptedService, ServerDeps]) -> None:
    post, service, _ = daemon
    service.error = CniError(7, "[default/web-0:macvlan] bad config", "details here")
    status, body = await post("/cni", cni_body())
    assert (status, body) == (400, {"code": 7, "msg": "[default/web-0:macvlan] bad config", "details": "details here"})
    status, body = await post("/cni", raw=b"{nope")
    assert status == 400 and body["code"] == 6


async def test_oversized_bodies_are_refused_with_a_cni_error(daemon: tuple[Post, ScriptedService, ServerDeps]) -> None:
    post, service, _ = daemon
    status, body = await post("/cni", raw=b"x" * (2 << 20))
    assert status in (400, 413)
    if status == 400:
        assert body["code"] == 6 and "larger than" in body["msg"]
    assert service.calls == []


async def test_unexpected_exceptions_become_999_and_daemon_keeps_serving(
    daemon: tuple[Post, ScriptedService, ServerDeps],
) -> None:
    post, service, _ = daemon
    service.crash = RuntimeError("boom")
    status, body = await post("/cni", cni_body())
    assert status == 400 and body["code"] == 999
    assert 'ContainerID:"abc"' in body["msg"] and "boom" in body["msg"]
    service.crash = None
    assert (await post("/cni", cni_body()))[0] == 200


async def test_not_ready_and_shutdown_answer_503_but_del_is_served(
    daemon: tuple[Post, ScriptedService, ServerDeps],
) -> None:
    post, service, deps = daemon
    deps.health.ready = False
    status, body = await post("/cni", cni_body())
    assert status == 503 and body["code"] == 11
    assert (await post("/readyz"))[0] == 500
    deps.health.ready, deps.health.shutting_down = True, True
    assert (await post("/cni", cni_body("CHECK")))[0] == 503
    assert (await post("/cni", cni_body("DEL")))[0] == 200
    assert (await post("/readyz", method="GET"))[0] == 500
    assert (await post("/healthz", method="GET"))[0] == 200
    assert [c.command for c in service.calls] == ["DEL"]


async def test_request_counter_uses_go_label_values(daemon: tuple[Post, ScriptedService, ServerDeps]) -> None:
    post, _, deps = daemon
    await post("/cni", cni_body())
    await post("/readyz")
    await post("/cni", method="GET")
    await post("/nope", method="GET")
    sample = deps.metrics.registry.get_sample_value
    assert sample("multus_server_request_total", {"handler": "/cni", "code": "200", "method": "post"}) == 1
    assert sample("multus_server_request_total", {"handler": "/readyz", "code": "200", "method": "post"}) == 1
    assert sample("multus_server_request_total", {"handler": "/cni", "code": "405", "method": "get"}) == 1
    assert sample("multus_server_request_total", {"handler": "NotFound", "code": "404", "method": "get"}) == 1
    assert sample("multus_request_duration_seconds_count", {"command": "ADD", "outcome": "success"}) == 1


async def test_gate_bounds_concurrency_and_serialises_a_container(
    daemon: tuple[Post, ScriptedService, ServerDeps],
) -> None:
    post, service, deps = daemon
    service.delay = 0.05
    depths: list[float] = []

    async def watch_queue() -> None:
        while True:
            depths.append(deps.metrics.registry.get_sample_value("multus_request_queue_depth") or 0)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_queue())
    bodies = [cni_body(container_id=f"c{i}") for i in range(24)] + [cni_body(container_id="same")] * 6
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(post("/cni", b) for b in bodies))
    watcher.cancel()
    assert all(status == 200 for status, _ in results)
    assert service.max_running == 4
    assert service.max_per_container == 1
    assert max(depths) > 0
    assert deps.gate.waiting == 0 and deps.gate.running == 0
    assert await deps.gate.wait_idle(1)


async def test_metrics_app_serves_exposition_and_probes() -> None:
    metrics = Metrics(process=False)
    health = Health(ready=True)
    runner = web.AppRunner(make_metrics_app(metrics, health))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                assert "multus_request_queue_depth" in await resp.text()
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200
            health.shutting_down = True
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 500
            async with session.post(f"http://127.0.0.1:{port}/cni", data=b"{}") as resp:
                assert resp.status in (404, 405)  # never reachable over TCP
    finally:
        await runner.cleanup()
