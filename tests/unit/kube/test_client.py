"""KubeClient against the in-memory API server over real HTTP (kubernetes_asyncio underneath)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from multusd.kube.client import ClientSettings, KubeClient, make_kube_client
from multusd.kube.errors import Forbidden, KubeError, NotFound, TooManyRequests, Unauthorized, Unavailable
from multusd.kube.localapi import LocalApi, parse_query

TOKEN = "s3cret-token"
FAST = ClientSettings(
    request_timeout_seconds=2.0,
    retry_backoff_seconds=(0.01, 0.01, 0.01),
    max_retry_after_seconds=0.05,
    event_host="node-a",
)
ROOT = Path(__file__).resolve().parents[3]

ClientFactory = Callable[..., Awaitable[KubeClient]]


def pod(name: str, node: str = "node-a", namespace: str = "default", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "env": [{"name": "A"}]}]},
    }


def nad(
    name: str, namespace: str = "default", config: str = '{"cniVersion":"0.3.1","type":"macvlan"}'
) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config},
    }


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    async with LocalApi(token=TOKEN, seed=1) as server:
        yield server


@pytest.fixture
async def make_client(api: LocalApi, tmp_path: Path) -> AsyncIterator[ClientFactory]:
    """Clients from a kubeconfig for ``api``; all closed at teardown."""
    made: list[KubeClient] = []
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")

    async def factory(**kwargs: Any) -> KubeClient:
        kwargs.setdefault("settings", FAST)
        client = await make_kube_client(kubeconfig, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> KubeClient:
    return await make_client()


async def test_get_pod_returns_raw_json(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web"))
    got = await client.get_pod("default", "web")
    assert got["metadata"]["name"] == "web"
    assert got["spec"]["containers"][0]["env"] == [{"name": "A"}]  # raw: nothing trimmed here


async def test_missing_pod_is_not_found_with_the_server_message(api: LocalApi, client: KubeClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.get_pod("default", "ghost")
    assert caught.value.code == 404
    assert caught.value.reason == "NotFound"
    assert "ghost" in caught.value.message
    assert api.requests.count("GET", path_contains="/pods/ghost") == 1  # 404 is not retried


async def test_list_pods_selects_this_node_and_follows_pages(api: LocalApi, client: KubeClient) -> None:
    for name in ("a", "b", "c"):
        api.create(pod(name, node="node-a"))
    api.create(pod("elsewhere", node="node-b"))
    listed = await client.list_pods("node-a", limit=2)
    assert sorted(p["metadata"]["name"] for p in listed["items"]) == ["a", "b", "c"]
    assert listed["metadata"]["resourceVersion"] == str(api.resource_version)
    queries = [parse_query(r.query) for r in api.requests if r.path == "/api/v1/pods"]
    assert len(queries) == 2
    assert all(q["fieldSelector"] == "spec.nodeName=node-a" for q in queries)
    assert "continue" in queries[1]


async def test_list_pods_without_node_lists_all(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("a", node="node-a"))
    api.create(pod("b", node="node-b"))
    listed = await client.list_pods("")
    assert len(listed["items"]) == 2


async def test_merge_patch_changes_only_the_named_annotation(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web", **{"keep/me": "1", "k8s.v1.cni.cncf.io/network-status": "old"}))
    api.requests.clear()
    await client.patch_pod_status_annotations("default", "web", {"k8s.v1.cni.cncf.io/network-status": "[]"})
    stored = api.get("pods", "web")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"keep/me": "1", "k8s.v1.cni.cncf.io/network-status": "[]"}
    assert stored["spec"]["containers"][0]["image"] == "busybox"
    (record,) = list(api.requests)
    assert (record.method, record.path) == ("PATCH", "/api/v1/namespaces/default/pods/web/status")
    assert record.content_type == "application/merge-patch+json"


async def test_merge_patch_none_removes_an_annotation(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web", **{"a": "1", "b": "2"}))
    await client.patch_pod_status_annotations("default", "web", {"a": None})
    stored = api.get("pods", "web")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"b": "2"}


async def test_merge_patch_is_retried_on_503_and_succeeds(api: LocalApi, make_client: ClientFactory) -> None:
    errors: list[tuple[str, str, str]] = []
    client = await make_client(on_error=lambda *e: errors.append(e))
    api.create(pod("web"))
    api.faults.methods = ["PATCH"]
    api.faults.fail_next = 2
    await client.patch_pod_status_annotations("default", "web", {"x": "y"})
    assert api.requests.count("PATCH") == 3
    assert errors == [("patch", "pods/status", "503")] * 2
    stored = api.get("pods", "web")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"x": "y"}


async def test_merge_patch_gives_up_after_the_finite_backoff(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web"))
    api.faults.methods = ["PATCH"]
    api.faults.fail_next = 100
    with pytest.raises(Unavailable) as caught:
        await client.patch_pod_status_annotations("default", "web", {"x": "y"})
    assert caught.value.code == 503
    assert api.requests.count("PATCH") == len(FAST.retry_backoff_seconds) + 1


async def test_retry_after_is_honoured_up_to_the_cap(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web"))
    api.faults.update({"fail_next": 1, "error_code": 429, "retry_after_seconds": 30})
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        await client.get_pod("default", "web")
    elapsed = loop.time() - started
    # Retry-After 30 s asked, capped at max_retry_after_seconds (0.05 s) > the backoff step (0.01 s).
    assert FAST.max_retry_after_seconds <= elapsed < 2
    assert api.requests.count("GET") == 2


async def test_429_without_retries_is_too_many_requests(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("web"))
    api.faults.update({"fail_next": 1, "error_code": 429})
    with pytest.raises(TooManyRequests):
        await client.get_pod("default", "web", retry=False)


async def test_forbidden_is_not_retried(api: LocalApi, client: KubeClient) -> None:
    api.faults.update({"fail_next": 1, "error_code": 403})
    with pytest.raises(Forbidden):
        await client.get_daemonset("kube-system", "multus")
    assert len(api.requests) == 1


async def test_timeout_is_unavailable(api: LocalApi, make_client: ClientFactory) -> None:
    errors: list[tuple[str, str, str]] = []
    client = await make_client(
        settings=ClientSettings(request_timeout_seconds=0.1, retry_backoff_seconds=()),
        on_error=lambda *e: errors.append(e),
    )
    api.faults.latency_seconds = 1.0
    async with asyncio.timeout(2):
        with pytest.raises(Unavailable) as caught:
            await client.get_pod("default", "web")
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert errors == [("get", "pods", "timeout")]


async def test_connection_refused_is_unavailable(api: LocalApi, client: KubeClient) -> None:
    await api.stop()
    with pytest.raises(Unavailable) as caught:
        await client.get_pod("default", "web", retry=False)
    assert caught.value.code is None
    assert caught.value.__cause__ is not None


async def test_wrong_token_is_unauthorized_after_one_reload(api: LocalApi, tmp_path: Path) -> None:
    config = api.kubeconfig()
    config["users"][0]["user"]["token"] = "wrong"
    path = tmp_path / "bad-kubeconfig"
    path.write_text(json.dumps(config))
    async with await KubeClient.from_kubeconfig(path, settings=FAST) as client:
        with pytest.raises(Unauthorized):
            await client.get_pod("default", "web")
    assert api.requests.count("GET") == 2  # credentials re-read once, then give up


async def test_create_event_lands_with_the_upstream_fields(api: LocalApi, client: KubeClient) -> None:
    created = api.create(pod("web"))
    uid = created["metadata"]["uid"]
    ok = await client.create_event(
        "default", "web", uid=uid, reason="AddedInterface", message="Add net1 [10.1.1.2/24] from default/macvlan"
    )
    assert ok is True
    (event,) = api.list("events", namespace="default")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "default",
        "name": "web",
        "uid": uid,
    }
    assert event["reason"] == "AddedInterface"
    assert event["type"] == "Normal"
    assert event["message"] == "Add net1 [10.1.1.2/24] from default/macvlan"
    assert event["source"] == {"component": "multus", "host": "node-a"}
    assert event["reportingComponent"] == "multus"
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]
    assert event["metadata"]["name"].startswith("web.")


async def test_create_event_is_best_effort(api: LocalApi, client: KubeClient) -> None:
    api.faults.update({"fail_next": 1, "error_code": 403})
    ok = await client.create_event(
        "default", "web", uid="u", reason="NoNetworkFound", message="m", event_type="Warning"
    )
    assert ok is False
    assert api.list("events") == []


async def test_nads_list_get_and_watch(api: LocalApi, client: KubeClient) -> None:
    api.create(nad("macvlan-conf"))
    listed = await client.list_nads()
    assert [n["metadata"]["name"] for n in listed["items"]] == ["macvlan-conf"]
    got = await client.get_nad("default", "macvlan-conf")
    assert got["spec"]["config"].startswith("{")
    rv = listed["metadata"]["resourceVersion"]
    api.create(nad("other", namespace="kube-system"))
    seen: list[tuple[str, str]] = []
    async with asyncio.timeout(5):
        async for event in client.watch_nads(rv, timeout_seconds=1):
            seen.append((event["type"], event["object"]["metadata"].get("name", "")))
            if event["type"] == "ADDED":
                break
    assert seen == [("ADDED", "other")]
    with pytest.raises(NotFound):
        await client.get_nad("default", "ghost")


async def test_watch_pods_from_a_compacted_rv_reports_410(api: LocalApi, client: KubeClient) -> None:
    api.create(pod("a"))
    old_rv = str(api.resource_version)
    api.create(pod("b"))
    api.compact()
    async with asyncio.timeout(5):
        events = [e async for e in client.watch_pods("node-a", old_rv, timeout_seconds=1)]
    errors = [e for e in events if e["type"] == "ERROR"]
    assert errors and errors[0]["object"]["code"] == 410


async def test_get_daemonset(api: LocalApi, client: KubeClient) -> None:
    api.create(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "multus", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "multus"}}, "template": {"spec": {"containers": []}}},
        }
    )
    ds = await client.get_daemonset("kube-system", "multus")
    assert ds["metadata"]["name"] == "multus"
    assert "deletionTimestamp" not in ds["metadata"]


async def test_in_cluster_config_over_tls_with_a_service_account_token(tmp_path: Path) -> None:
    async with LocalApi(token=TOKEN, tls=True) as server:
        assert server.ca_pem is not None
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(TOKEN)
        (sa / "ca.crt").write_bytes(server.ca_pem)
        host, port = server.url.removeprefix("https://").rsplit(":", 1)
        env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
        server.create(pod("web"))
        async with await KubeClient.in_cluster(settings=FAST, service_account_dir=str(sa), environ=env) as client:
            assert client.host == server.url
            got = await client.get_pod("default", "web")
            assert got["metadata"]["name"] == "web"


async def test_in_cluster_without_environment_is_a_kube_error(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="in-cluster"):
        await KubeClient.in_cluster(service_account_dir=str(tmp_path), environ={})


async def test_close_is_idempotent(client: KubeClient) -> None:
    await client.close()
    await client.close()


RSS_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys

    def rss():
        fields = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    fields[key] = round(int(value.split()[0]) / 1024, 1)
        return fields

    figures = {"start": rss()}
    import aiohttp
    figures["aiohttp"] = rss()
    import multusd.kube.client as kc
    import multusd.kube.watch
    figures["import multusd.kube.client+watch"] = rss()

    async def main():
        from multusd.kube.localapi import LocalApi
        async with LocalApi() as api:
            path = api.write_kubeconfig(sys.argv[1])
            figures["localapi started"] = rss()
            async with await kc.make_kube_client(path) as client:
                figures["client created (kubeconfig)"] = rss()
                await client.list_pods("node-a")
                figures["after a list"] = rss()
    asyncio.run(main())
    figures["models_loaded"] = "kubernetes_asyncio.client.models.v1_pod" in sys.modules
    figures["kubernetes_asyncio_modules"] = len([m for m in sys.modules if m.startswith("kubernetes_asyncio")])
    print(json.dumps(figures))
    """
)


def test_rss_and_lean_import(tmp_path: Path) -> None:
    """Print the RSS figures (not asserted); assert the 767 model modules were never imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(tmp_path / "kubeconfig")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    figures = json.loads(out.stdout)
    print("\nRSS (MiB):", json.dumps(figures, indent=1))
    assert figures["models_loaded"] is False


FULL_AFTER_LEAN_PROBE = textwrap.dedent(
    """
    import asyncio, sys
    import multusd.kube.client as kc

    async def main():
        async with await kc.make_kube_client(sys.argv[1]):
            pass
        assert "kubernetes_asyncio.client.models.v1_pod" not in sys.modules
        from kubernetes_asyncio.client import CoreV1Api, V1Pod
        from kubernetes_asyncio import watch
        print(CoreV1Api.__name__, V1Pod.__name__, watch.Watch.__name__)
    asyncio.run(main())
    """
)


def test_the_whole_library_still_imports_after_the_lean_load(tmp_path: Path) -> None:
    """The lazy packages run their real __init__ on demand: other users of the library keep working."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", FULL_AFTER_LEAN_PROBE, str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert out.stdout.split() == ["CoreV1Api", "V1Pod", "Watch"]
