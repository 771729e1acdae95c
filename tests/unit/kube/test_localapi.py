"""The local API server, exercised through the real kubernetes_asyncio client over real HTTP.

Every assertion is about what a client observes on the wire: status codes, Status bodies, watch
event sequences, resourceVersions. Every wait is bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from multusd.kube.localapi import LocalApi
from multusd.kube.localapi_objects import (
    ApiError,
    FieldSelector,
    JsonPatchError,
    LabelSelector,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from multusd.kube.localapi_store import INITIAL_EVENTS_END

STEP_SECONDS = 10.0
MERGE = "application/merge-patch+json"
NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"


def pod(name: str, node: str = "node1", ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


async def make_client(api: LocalApi, tmp_path: Path, token: str | None = "") -> client.ApiClient:
    """An ApiClient configured from the server's kubeconfig, as the daemon would load it."""
    kubeconfig = api.write_kubeconfig(tmp_path / f"kubeconfig-{id(api)}")
    if token != "":
        doc = json.loads(kubeconfig.read_text())
        doc["users"][0]["user"] = {"token": token} if token else {}
        kubeconfig.write_text(json.dumps(doc))
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    async with LocalApi(bookmark_interval_seconds=0.2) as server:
        yield server


@pytest.fixture
async def apiclient(api: LocalApi, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    ac = await make_client(api, tmp_path)
    async with ac:
        yield ac


@pytest.fixture
def v1(apiclient: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(apiclient)


async def read_events(resp: aiohttp.ClientResponse, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Raw watch lines until ``until(event)`` or the stream ends."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(STEP_SECONDS):
        while line := await resp.content.readline():
            events.append(json.loads(line))
            if until(events[-1]):
                break
    return events


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def body(exc: ApiException) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(exc.body)
    return parsed


# ------------------------------------------------------------------------------ list + watch


async def test_node_field_selector_watch_sees_only_that_nodes_pods(api: LocalApi, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", pod("a", "node1"))
    await v1.create_namespaced_pod("default", pod("b", "node2"))
    listed = await v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node1")
    assert [p.metadata.name for p in listed.items] == ["a"]

    async def changes() -> None:
        await v1.create_namespaced_pod("default", pod("c", "node1"))
        await v1.create_namespaced_pod("default", pod("d", "node2"))
        await v1.patch_namespaced_pod("d", "default", {"metadata": {"labels": {"x": "y"}}})
        await v1.patch_namespaced_pod("c", "default", {"metadata": {"labels": {"x": "y"}}})
        await v1.delete_namespaced_pod("b", "default")
        await v1.delete_namespaced_pod("a", "default")

    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    async with asyncio.timeout(STEP_SECONDS), w:
        task = asyncio.create_task(changes())
        stream = w.stream(
            v1.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=node1",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        async for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                break
        await task
    assert seen == [("ADDED", "c"), ("MODIFIED", "c"), ("DELETED", "a")]


async def test_label_selector_transitions_arrive_as_added_and_deleted(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("p"))
    resp = await v1.list_namespaced_pod(
        "default", watch=True, label_selector="app=web", resource_version=str(api.resource_version),
        timeout_seconds=5, _preload_content=False,
    )  # fmt: skip
    api.patch("pods", "p", {"metadata": {"labels": {"app": "web"}}})
    api.patch("pods", "p", {"metadata": {"labels": {"app": "db"}}})
    events = await read_events(resp, lambda e: e["type"] == "DELETED")
    resp.close()
    assert names(events) == [("ADDED", "p"), ("DELETED", "p")]
    assert events[1]["object"]["metadata"]["labels"] == {"app": "web"}  # the last state it matched in
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) == api.resource_version


async def test_watch_without_resource_version_starts_with_synthetic_added(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("a"))
    api.create(pod("b", ns="other"))
    resp = await v1.list_pod_for_all_namespaces(watch=True, timeout_seconds=1, _preload_content=False)
    events = await read_events(resp, lambda e: False)
    assert names(events) == [("ADDED", "a"), ("ADDED", "b")]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["w1", "w2"]),
        ("app==web", ["w1", "w2"]),
        ("app!=web", ["d1", "none"]),
        ("tier", ["w1"]),
        ("!tier", ["d1", "none", "w2"]),
        ("app in (web,db)", ["d1", "w1", "w2"]),
        ("app notin (web)", ["d1", "none"]),
        ("app=web,tier=front", ["w1"]),
        ("", ["d1", "none", "w1", "w2"]),
    ],
)
async def test_label_selector(api: LocalApi, v1: client.CoreV1Api, selector: str, expected: list[str]) -> None:
    api.create(pod("w1", labels={"app": "web", "tier": "front"}))
    api.create(pod("w2", labels={"app": "web"}))
    api.create(pod("d1", labels={"app": "db"}))
    api.create(pod("none"))
    listed = await v1.list_namespaced_pod("default", label_selector=selector)
    assert [p.metadata.name for p in listed.items] == expected


async def test_bad_selectors_are_400(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as bad_label:
        await v1.list_namespaced_pod("default", label_selector="app in web")
    with pytest.raises(ApiException) as bad_field:
        await v1.list_namespaced_pod("default", field_selector="spec.containers=x")
    assert bad_label.value.status == 400
    assert bad_field.value.status == 400
    assert body(bad_field.value)["message"] == 'field label not supported: "spec.containers"'


async def test_limit_and_continue_page_through_everything(api: LocalApi, v1: client.CoreV1Api) -> None:
    for i in range(5):
        api.create(pod(f"p{i}"))
    pages: list[list[str]] = []
    token = None
    first_rv = None
    async with asyncio.timeout(STEP_SECONDS):
        while True:
            page = await v1.list_pod_for_all_namespaces(limit=2, _continue=token)
            pages.append([p.metadata.name for p in page.items])
            first_rv = first_rv or page.metadata.resource_version
            assert page.metadata.resource_version == first_rv
            if len(pages) == 1:
                assert page.metadata.remaining_item_count == 3
                api.create(pod("late"))  # after the first page: not in this list
            token = page.metadata._continue
            if not token:
                break
    assert pages == [["p0", "p1"], ["p2", "p3"], ["p4"]]


async def test_too_old_resource_version_is_410_in_watch_and_continue(api: LocalApi, v1: client.CoreV1Api) -> None:
    for i in range(3):
        api.create(pod(f"p{i}"))
    page = await v1.list_pod_for_all_namespaces(limit=1)
    old_rv = page.metadata.resource_version
    api.create(pod("newer"))
    api.compact()

    resp = await v1.list_pod_for_all_namespaces(
        watch=True, resource_version=old_rv, timeout_seconds=5, _preload_content=False
    )
    assert resp.status == 200
    events = await read_events(resp, lambda e: True)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    assert events[0]["object"]["message"].startswith("too old resource version")

    with pytest.raises(ApiException) as from_watch:
        async with asyncio.timeout(STEP_SECONDS), watch.Watch() as w:
            async for _ in w.stream(v1.list_pod_for_all_namespaces, resource_version=old_rv, timeout_seconds=5):
                pass
    assert from_watch.value.status == 410

    with pytest.raises(ApiException) as from_list:
        await v1.list_pod_for_all_namespaces(limit=1, _continue=page.metadata._continue)
    assert from_list.value.status == 410
    assert body(from_list.value)["reason"] == "Expired"

    # the current RV is still fine
    resp = await v1.list_pod_for_all_namespaces(
        watch=True, resource_version=str(api.resource_version), timeout_seconds=1, _preload_content=False
    )
    assert await read_events(resp, lambda e: False) == []


async def test_history_bound_compacts_by_itself(tmp_path: Path) -> None:
    async with LocalApi(history_size=3) as api:
        start = api.resource_version
        for i in range(5):
            api.create(pod(f"p{i}"))
        assert api.store.compacted_rv > start
        ac = await make_client(api, tmp_path)
        async with ac:
            resp = await client.CoreV1Api(ac).list_pod_for_all_namespaces(
                watch=True, resource_version=str(start), timeout_seconds=2, _preload_content=False
            )
            events = await read_events(resp, lambda e: True)
    assert events[0]["object"]["code"] == 410


async def test_bookmarks_are_periodic_and_close_a_timed_out_watch(api: LocalApi, v1: client.CoreV1Api) -> None:
    resp = await v1.list_pod_for_all_namespaces(
        watch=True, allow_watch_bookmarks=True, resource_version=str(api.resource_version),
        timeout_seconds=1, _preload_content=False,
    )  # fmt: skip
    assert "allowWatchBookmarks=True" in api.requests.to_json()[-1]["query"]  # the client's spelling works
    events = await read_events(resp, lambda e: False)
    assert len(events) >= 3  # 0.2 s interval over 1 s, plus one at the close
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert events[-1]["object"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(api.resource_version)},
    }


async def test_send_initial_events_ends_with_annotated_bookmark(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("a"))
    api.create(pod("b"))
    resp = await v1.list_namespaced_pod(
        "default", watch=True, send_initial_events=True, resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True, timeout_seconds=5, _preload_content=False,
    )  # fmt: skip
    events = await read_events(resp, lambda e: e["type"] == "BOOKMARK")
    resp.close()
    assert names(events)[:2] == [("ADDED", "a"), ("ADDED", "b")]
    end = events[-1]["object"]["metadata"]
    assert end["annotations"] == {INITIAL_EVENTS_END: "true"}
    assert end["resourceVersion"] == str(api.resource_version)


async def test_send_initial_events_requires_not_older_than(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        await v1.list_namespaced_pod("default", watch=True, send_initial_events=True, allow_watch_bookmarks=True)
    assert exc.value.status == 422


# ------------------------------------------------------------------------------ writes


async def test_merge_patch_on_status_changes_only_the_named_annotation(api: LocalApi, v1: client.CoreV1Api) -> None:
    created = await v1.create_namespaced_pod(
        "default", pod("p", annotations={"keep": "me", "k8s.v1.cni.cncf.io/networks": "m"})
    )
    rv = int(created.metadata.resource_version)
    patch = {
        "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}},
        "spec": {"nodeName": "elsewhere"},  # ignored: /status keeps the spec
    }
    patched = await v1.patch_namespaced_pod_status("p", "default", patch, _content_type=MERGE)
    assert patched.metadata.annotations == {
        "keep": "me",
        "k8s.v1.cni.cncf.io/networks": "m",
        "k8s.v1.cni.cncf.io/network-status": "[]",
    }
    assert patched.spec.node_name == "node1"
    assert int(patched.metadata.resource_version) > rv
    last = api.requests.to_json()[-1]
    assert (last["method"], last["path"], last["content_type"]) == (
        "PATCH",
        "/api/v1/namespaces/default/pods/p/status",
        MERGE,
    )
    # the same patch again changes nothing: no new resourceVersion
    again = await v1.patch_namespaced_pod_status("p", "default", patch, _content_type=MERGE)
    assert again.metadata.resource_version == patched.metadata.resource_version


async def test_strategic_and_json_patch_on_status(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("p", annotations={"a": "1", "b": "2"}) | {"status": {"phase": "Pending"}})
    smp = await v1.patch_namespaced_pod_status("p", "default", {"metadata": {"annotations": {"a": None}}})
    assert smp.metadata.annotations == {"b": "2"}
    assert api.requests.to_json()[-1]["content_type"] == "application/strategic-merge-patch+json"
    ops = [
        {"op": "add", "path": "/metadata/annotations/c~1d", "value": "3"},
        {"op": "replace", "path": "/status/phase", "value": "Running"},
    ]
    jp = await v1.patch_namespaced_pod_status("p", "default", ops)
    assert jp.metadata.annotations == {"b": "2", "c/d": "3"}
    assert jp.status.phase == "Running"
    with pytest.raises(ApiException) as failed:
        await v1.patch_namespaced_pod_status("p", "default", [{"op": "test", "path": "/status/phase", "value": "x"}])
    assert failed.value.status == 422


async def test_main_resource_put_ignores_status_and_stale_rv_conflicts(api: LocalApi, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", pod("p"))
    current = await v1.read_namespaced_pod("p", "default")
    current.metadata.labels = {"v": "1"}
    current.status.phase = "Succeeded"
    updated = await v1.replace_namespaced_pod("p", "default", current)
    assert updated.metadata.labels == {"v": "1"}
    assert updated.status.phase == "Pending"
    current.metadata.labels = {"v": "2"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        await v1.replace_namespaced_pod("p", "default", current)
    assert exc.value.status == 409
    status = body(exc.value)
    assert status["reason"] == "Conflict"
    assert status["details"] == {"name": "p", "kind": "pods"}


async def test_create_conflicts_generate_name_and_validation(api: LocalApi, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as exists:
        await v1.create_namespaced_pod("default", pod("p"))
    assert (exists.value.status, body(exists.value)["reason"]) == (409, "AlreadyExists")
    generated = pod("")
    generated["metadata"] = {"generateName": "web-"}
    made = await v1.create_namespaced_pod("default", generated)
    assert made.metadata.name.startswith("web-") and len(made.metadata.name) == 9
    assert made.metadata.uid and made.metadata.creation_timestamp
    with pytest.raises(ApiException) as unnamed:
        await v1.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {}})
    assert (unnamed.value.status, body(unnamed.value)["reason"]) == (422, "Invalid")
    with pytest.raises(ApiException) as wrong_ns:
        await v1.create_namespaced_pod("default", pod("q", ns="other"))
    assert wrong_ns.value.status == 400


async def test_not_found_is_a_status_object(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_pod("nope", "default")
    assert exc.value.status == 404
    assert body(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }


async def test_delete_returns_pod_and_emits_deleted(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("p"))
    resp = await v1.list_namespaced_pod(
        "default", watch=True, resource_version=str(api.resource_version), timeout_seconds=5, _preload_content=False
    )
    deleted = await v1.delete_namespaced_pod("p", "default", propagation_policy="Background")
    assert deleted.metadata.name == "p"
    events = await read_events(resp, lambda e: True)
    resp.close()
    assert names(events) == [("DELETED", "p")]
    assert api.get("pods", "p") is None


async def test_finalizers_hold_deletion_until_removed(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("p", finalizers=["example.com/hold"]))
    held = await v1.delete_namespaced_pod("p", "default")
    assert held.metadata.deletion_timestamp is not None
    assert api.get("pods", "p") is not None
    api.patch("pods", "p", {"metadata": {"finalizers": None}})
    assert api.get("pods", "p") is None


# ------------------------------------------------------------------------------ other kinds


async def test_network_attachment_definition_crud(apiclient: client.ApiClient) -> None:
    crd = client.CustomObjectsApi(apiclient)
    nad = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan-conf"},
        "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan"}'},
    }
    created = await crd.create_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, nad)
    assert created["metadata"]["namespace"] == "default"
    got = await crd.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, "macvlan-conf")
    assert got["spec"] == nad["spec"]
    listed = await crd.list_cluster_custom_object(NAD_GROUP, NAD_VERSION, NAD_PLURAL)
    assert listed["kind"] == "NetworkAttachmentDefinitionList"
    assert listed["items"][0]["kind"] == "NetworkAttachmentDefinition"  # custom resources keep it
    patched = await crd.patch_namespaced_custom_object(
        NAD_GROUP,
        NAD_VERSION,
        "default",
        NAD_PLURAL,
        "macvlan-conf",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type=MERGE,
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    deleted = await crd.delete_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, "macvlan-conf")
    assert deleted["status"] == "Success"
    assert deleted["details"]["group"] == NAD_GROUP
    with pytest.raises(ApiException) as exc:
        await crd.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, "macvlan-conf")
    assert body(exc.value)["message"] == 'network-attachment-definitions.k8s.cni.cncf.io "macvlan-conf" not found'


async def test_strategic_merge_patch_on_a_custom_resource_is_415(api: LocalApi, tmp_path: Path) -> None:
    api.create({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": {"name": "n"}})
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    async with aiohttp.ClientSession() as session:
        url = f"{api.url}/apis/{NAD_GROUP}/{NAD_VERSION}/namespaces/default/{NAD_PLURAL}/n"
        async with session.patch(url, data=b"{}", headers=headers) as resp:
            assert resp.status == 415


async def test_core_event_post_is_visible_in_events_k8s_io(api: LocalApi, apiclient: client.ApiClient) -> None:
    v1 = client.CoreV1Api(apiclient)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "p.", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "AddedInterface",
        "message": "Add eth1 [10.1.1.2/24] from default/macvlan-conf",
        "type": "Normal",
        "source": {"component": "multus"},
    }
    created = await v1.create_namespaced_event("default", event)
    assert created.reason == "AddedInterface"
    by_reason = await v1.list_namespaced_event("default", field_selector="reason=AddedInterface,source=multus")
    assert len(by_reason.items) == 1
    new_api = await client.EventsV1Api(apiclient).list_namespaced_event("default", _preload_content=False)
    items = json.loads(await new_api.read())["items"]
    assert items[0]["note"] == event["message"]
    assert items[0]["regarding"]["name"] == "p"


async def test_discovery_documents(apiclient: client.ApiClient) -> None:
    core = await client.CoreV1Api(apiclient).get_api_resources()
    assert {"pods", "pods/status", "events", "namespaces"} <= {r.name for r in core.resources}
    groups = await client.ApisApi(apiclient).get_api_versions()
    assert {g.name for g in groups.groups} == {"k8s.cni.cncf.io", "apps", "events.k8s.io"}
    nad = await client.CustomObjectsApi(apiclient).get_api_resources(NAD_GROUP, NAD_VERSION)
    assert nad.resources[0].short_names == ["net-attach-def"]
    version = await client.VersionApi(apiclient).get_code()
    assert version.major == "1"


# ------------------------------------------------------------------------------ auth and TLS


async def test_token_auth(tmp_path: Path) -> None:
    async with LocalApi(token="s3cret") as api:
        anonymous = await make_client(api, tmp_path, token=None)
        async with anonymous:
            with pytest.raises(ApiException) as exc:
                await client.CoreV1Api(anonymous).list_namespace()
        assert exc.value.status == 401
        assert body(exc.value)["reason"] == "Unauthorized"
        wrong = await make_client(api, tmp_path, token="guess")
        async with wrong:
            with pytest.raises(ApiException):
                await client.CoreV1Api(wrong).list_namespace()
        good = await make_client(api, tmp_path)
        async with good:
            listed = await client.CoreV1Api(good).list_namespace()
    assert "default" in {n.metadata.name for n in listed.items}


async def test_tls_with_ca_in_kubeconfig(tmp_path: Path) -> None:
    async with LocalApi(tls=True, token="t") as api:
        assert api.url.startswith("https://127.0.0.1:")
        ac = await make_client(api, tmp_path)
        async with ac:
            listed = await client.CoreV1Api(ac).list_namespace()
    assert listed.items


# ------------------------------------------------------------------------------ faults


async def test_latency_fault_is_observed(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.faults.latency_seconds = 0.3
    started = time.monotonic()
    await v1.list_namespace()
    assert time.monotonic() - started >= 0.3


async def test_error_fault_limited_to_path_and_method(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.create(pod("p"))
    api.faults.update({"error_rate": 1.0, "path_prefix": "/api/v1/namespaces/default/pods", "methods": ["patch"]})
    api.faults.retry_after_seconds = 2
    await v1.read_namespaced_pod("p", "default")  # GET is not faulted
    with pytest.raises(ApiException) as exc:
        await v1.patch_namespaced_pod_status("p", "default", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE)
    assert exc.value.status == 503
    assert exc.value.headers["Retry-After"] == "2"
    assert body(exc.value)["reason"] == "ServiceUnavailable"
    api.faults.reset()
    await v1.patch_namespaced_pod_status("p", "default", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE)


async def test_fail_next_is_deterministic(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.faults.fail_next = 2
    api.faults.error_code = 500
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            await v1.list_namespace()
        assert exc.value.status == 500
    await v1.list_namespace()


async def test_dropped_watch_ends_the_stream(api: LocalApi, v1: client.CoreV1Api) -> None:
    resp = await v1.list_pod_for_all_namespaces(
        watch=True, resource_version=str(api.resource_version), timeout_seconds=30, _preload_content=False
    )
    assert api.store.watcher_count == 1  # registered before the response headers were sent
    assert api.drop_watches() == 1
    assert await read_events(resp, lambda e: False) == []  # ended, cleanly and promptly


async def test_aborted_watch_breaks_the_connection(api: LocalApi, v1: client.CoreV1Api) -> None:
    resp = await v1.list_pod_for_all_namespaces(
        watch=True, resource_version=str(api.resource_version), timeout_seconds=30, _preload_content=False
    )
    assert api.store.watcher_count == 1
    async with asyncio.timeout(STEP_SECONDS):
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{api.url}/localapi/faults", json={"drop_watches": "abort"}) as ctl,
        ):
            assert ctl.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.content.read()
    assert api.store.watcher_count == 0


async def test_compact_via_control_endpoint(api: LocalApi, v1: client.CoreV1Api) -> None:
    old = str(api.resource_version)
    api.create(pod("p"))
    async with aiohttp.ClientSession() as session, session.post(f"{api.url}/localapi/compact", json={}) as resp:
        state = await resp.json()
    assert state["compactedResourceVersion"] == str(api.resource_version)
    resp2 = await v1.list_pod_for_all_namespaces(
        watch=True, resource_version=old, timeout_seconds=5, _preload_content=False
    )
    events = await read_events(resp2, lambda e: True)
    assert events[0]["object"]["code"] == 410


async def test_down_answers_503_and_control_endpoint_works(api: LocalApi, v1: client.CoreV1Api) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.url}/localapi/faults", json={"down": True}) as resp:
            assert resp.status == 200
        with pytest.raises(ApiException) as exc:
            await v1.list_namespace()
        assert exc.value.status == 503
        async with session.post(f"{api.url}/localapi/faults", json={"reset": True}) as resp:
            assert (await resp.json())["down"] is False
        await v1.list_namespace()
        async with session.get(f"{api.url}/localapi/requests") as resp:
            log = await resp.json()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/api/v1/namespaces", 503),
        ("GET", "/api/v1/namespaces", 200),
    ]
    assert api.requests.count("GET", path_prefix="/api/v1/namespaces") == 2


async def test_down_close_mode_drops_connections(api: LocalApi, v1: client.CoreV1Api) -> None:
    api.faults.update({"down": True, "down_mode": "close"})
    with pytest.raises((aiohttp.ClientError, ApiException)):
        async with asyncio.timeout(STEP_SECONDS):
            await v1.list_namespace()


async def test_stop_closes_open_watches_promptly(tmp_path: Path) -> None:
    api = LocalApi()
    await api.start()
    ac = await make_client(api, tmp_path)
    async with ac:
        resp = await client.CoreV1Api(ac).list_pod_for_all_namespaces(
            watch=True, resource_version=str(api.resource_version), timeout_seconds=600, _preload_content=False
        )
        assert api.store.watcher_count == 1
        async with asyncio.timeout(STEP_SECONDS):
            started = time.monotonic()
            await api.stop()
        assert time.monotonic() - started < 3
        assert await read_events(resp, lambda e: False) == []


# ------------------------------------------------------------------------------ pure pieces


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # untouched


def test_strategic_merge_patch_directives() -> None:
    target = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    assert strategic_merge_patch(target, {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}) == {
        "metadata": {"labels": {"c": "3"}}
    }
    assert strategic_merge_patch(target, {"metadata": {"labels": {"$patch": "delete"}}}) == {"metadata": {}}


def test_json_patch_follows_rfc_6902() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "add", "path": "/a/0", "value": 0},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "copy", "from": "/d", "path": "/e"},
        {"op": "remove", "path": "/a/1"},
        {"op": "test", "path": "/e", "value": 1},
    ]
    assert json_patch(doc, ops) == {"a": [0, 2, 3], "b": {}, "d": 1, "e": 1}
    with pytest.raises(JsonPatchError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(JsonPatchError):
        json_patch(doc, [{"op": "replace", "path": "/a/5", "value": 1}])


def test_selectors_parse_and_match() -> None:
    obj = {"metadata": {"name": "x", "labels": {"env": "prod", "n": "5"}}, "spec": {"hostNetwork": True}}
    assert LabelSelector.parse("env in (prod, dev), n>3, !gone").matches(obj)
    assert not LabelSelector.parse("n<3").matches(obj)
    fields = FieldSelector.parse(
        r"metadata.name=x,spec.hostNetwork=true,spec.nodeName!=a\,b",
        ("metadata.name", "spec.hostNetwork", "spec.nodeName"),
    )
    assert fields.matches(obj)
    with pytest.raises(ApiError) as exc:
        LabelSelector.parse("a=b=c")
    assert exc.value.code == 400


def test_store_helpers_act_like_the_api() -> None:
    api = LocalApi()
    created = api.create(pod("p", labels={"a": "1"}) | {"status": {"podIP": "10.0.0.5"}})
    assert created["status"] == {"podIP": "10.0.0.5"}  # helpers keep status, as seeds need
    assert api.list("pods", field_selector="status.podIP=10.0.0.5")[0]["metadata"]["name"] == "p"
    rv = api.resource_version
    api.patch("pods", "p", {"metadata": {"labels": {"a": "1"}}})
    assert api.resource_version == rv  # no-op: no new resourceVersion
    with pytest.raises(ApiError) as exc:
        api.replace(created | {"metadata": created["metadata"] | {"resourceVersion": "1"}})
    assert exc.value.code == 409
    assert api.get("net-attach-def", "missing") is None
    assert api.delete("namespaces", "default") is not None
    assert api.get("pods", "p") is None  # went with its namespace
