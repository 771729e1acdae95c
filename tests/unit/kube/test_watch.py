"""ObjectCache: list+watch over real HTTP against localapi, and scripted streams for the edge cases.

Every wait is bounded by ``asyncio.timeout``; backoffs are shrunk to milliseconds so no test sleeps
for real beyond a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multusd.kube.client import ClientSettings, KubeClient, make_kube_client
from multusd.kube.localapi import LocalApi
from multusd.kube.objects import ObjectList, Pod, RawObject, WatchEvent, trim_pod
from multusd.kube.watch import Backoff, NadCache, ObjectCache, PodCache

WAIT = 5.0
FAST_CLIENT = ClientSettings(request_timeout_seconds=2.0, retry_backoff_seconds=())


def fast_backoff() -> Backoff:
    return Backoff(initial_seconds=0.01, cap_seconds=0.05, rng=random.Random(7))


def pod(name: str, node: str = "node-a", namespace: str = "default", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node, "containers": []}}


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition on the loop (1 ms steps), bounded."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.001)
    except TimeoutError:
        pytest.fail(f"timed out waiting for: {what}")


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    async with LocalApi(seed=3) as server:
        yield server


@pytest.fixture
async def client(api: LocalApi, tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with await make_kube_client(api.write_kubeconfig(tmp_path / "kc"), settings=FAST_CLIENT) as kube:
        yield kube


Runner = Callable[[ObjectCache[Any]], Awaitable[asyncio.Task[None]]]


@pytest.fixture
async def running() -> AsyncIterator[Runner]:
    """Start caches' ``run(stop)``; at teardown set stop and check each ended cleanly and promptly."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start(cache: ObjectCache[Any]) -> asyncio.Task[None]:
        task = asyncio.create_task(cache.run(stop), name=f"test:{cache.kind}")
        tasks.append(task)
        return task

    yield start
    stop.set()
    async with asyncio.timeout(WAIT):
        for task in tasks:
            await task


# ------------------------------------------------------------------------------ over HTTP


async def test_relist_and_watch_see_this_nodes_pods_only(api: LocalApi, client: KubeClient, running: Runner) -> None:
    api.create(pod("before"))
    api.create(pod("other-node-before", node="node-b"))
    cache = PodCache(client, "node-a", backoff=fast_backoff())
    changes: list[tuple[str, str]] = []
    cache.add_hook(lambda kind, obj: changes.append((kind, obj["metadata"]["name"])))
    await running(cache)
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    assert cache.get("default", "before") is not None
    assert len(cache) == 1

    api.create(pod("added"))
    api.create(pod("other-node", node="node-b"))
    await eventually(lambda: cache.get("default", "added") is not None, "ADDED")
    api.patch("pods", "added", {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "net1"}}})
    await eventually(
        lambda: (cache.get("default", "added") or {}).get("metadata", {}).get("annotations") is not None, "MODIFIED"
    )
    api.delete("pods", "before")
    await eventually(lambda: cache.get("default", "before") is None, "DELETED")

    assert cache.get("default", "other-node") is None
    assert len(cache) == 1
    assert changes == [("ADDED", "before"), ("ADDED", "added"), ("MODIFIED", "added"), ("DELETED", "before")]
    stored = cache.get("default", "added")
    assert stored == trim_pod(api.get("pods", "added") or {})


async def test_410_relists_and_drops_pods_deleted_while_disconnected(
    api: LocalApi, client: KubeClient, running: Runner
) -> None:
    api.create(pod("stays"))
    api.create(pod("goes"))
    cache = PodCache(client, "node-a", backoff=fast_backoff())
    deleted: list[str] = []
    cache.add_hook(lambda kind, obj: deleted.append(obj["metadata"]["name"]) if kind == "DELETED" else None)
    await running(cache)
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    await eventually(lambda: api.store.watcher_count > 0, "watch open")

    api.faults.down = True  # the re-watch fails, so the deletion below is never streamed
    api.drop_watches()
    await eventually(lambda: cache.backoff.attempt >= 1, "re-watch failing")
    api.delete("pods", "goes")
    api.create(pod("new-while-away"))
    api.compact()  # the RV the cache holds is now too old: the re-watch gets 410
    api.faults.down = False

    await eventually(lambda: cache.relist_count == 2, "relist after 410")
    assert cache.get("default", "goes") is None
    assert cache.get("default", "stays") is not None
    assert cache.get("default", "new-while-away") is not None
    assert deleted == ["goes"]
    assert cache.backoff.attempt == 0  # a good list resets the backoff


async def test_bookmark_moves_the_resource_version(api: LocalApi, client: KubeClient, running: Runner) -> None:
    api.bookmark_interval_seconds = 0.02
    cache = PodCache(client, "node-a", backoff=fast_backoff())
    await running(cache)
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    listed_rv = cache.resource_version
    api.create(pod("elsewhere", node="node-b"))  # not streamed to us: only a bookmark can move the RV
    await eventually(lambda: cache.resource_version == str(api.resource_version), "bookmark")
    assert cache.resource_version != listed_rv
    assert len(cache) == 0


async def test_api_down_backs_off_then_syncs_on_recovery(
    api: LocalApi, client: KubeClient, running: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    api.create(pod("web"))
    api.faults.down = True
    cache = PodCache(client, "node-a", backoff=fast_backoff())
    caplog.set_level(logging.WARNING, logger="multusd.kube.watch")
    await running(cache)
    await eventually(lambda: api.requests.count("GET", path_prefix="/api/v1/pods") >= 3, "three failed lists")
    assert not cache.synced.is_set()
    assert "attempt #2" in caplog.text

    api.faults.down = False
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    assert cache.get("default", "web") is not None
    assert cache.backoff.attempt == 0


async def test_nad_cache_holds_trimmed_nads(api: LocalApi, client: KubeClient, running: Runner) -> None:
    cache = NadCache(client, backoff=fast_backoff())
    await running(cache)
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    api.create(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "macvlan", "namespace": "kube-system", "labels": {"x": "y"}},
            "spec": {"config": '{"type":"macvlan"}'},
        }
    )
    await eventually(lambda: cache.get("kube-system", "macvlan") is not None, "NAD ADDED")
    stored = cache.get("kube-system", "macvlan")
    assert stored is not None
    assert stored["spec"] == {"config": '{"type":"macvlan"}'}
    assert "labels" not in stored["metadata"]


async def test_pod_cache_without_node_caches_all_pods(
    api: LocalApi, client: KubeClient, running: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    api.create(pod("a", node="node-a"))
    api.create(pod("b", node="node-b"))
    with caplog.at_level(logging.WARNING, logger="multusd.kube.watch"):
        cache = PodCache(client, "", backoff=fast_backoff())
    assert "whole cluster" in caplog.text
    await running(cache)
    async with asyncio.timeout(WAIT):
        await cache.synced.wait()
    assert len(cache) == 2


# ------------------------------------------------------------------------------ scripted streams


def event(kind: str, name: str, rv: str) -> WatchEvent:
    return {
        "type": kind,
        "object": pod(name) | {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}},
    }


def error_event(code: int, reason: str) -> WatchEvent:
    return {
        "type": "ERROR",
        "object": {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": reason},
    }


STREAM_WITH_UNKNOWN_TYPE: list[WatchEvent] = [
    {"type": "SURPRISE", "object": {"metadata": {"resourceVersion": "11"}}},
    event("ADDED", "after-unknown", "12"),
]
STREAM_WITH_ERROR_410GONE: list[WatchEvent] = [event("ADDED", "a", "11"), error_event(410, "Expired")]
STREAM_WITH_ERROR_500: list[WatchEvent] = [error_event(500, "InternalError")]
STREAM_WITH_BOOKMARK: list[WatchEvent] = [
    {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "50"}}}
]


class Script:
    """A list function and a watch function playing scripted data; records what was asked."""

    def __init__(self, lists: list[list[RawObject]], streams: list[list[WatchEvent] | None]) -> None:
        self._lists: Iterator[list[RawObject]] = iter(lists)
        self._streams = iter(streams)
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.hang = asyncio.Event()

    async def list_fn(self) -> ObjectList:
        self.list_calls += 1
        items = next(self._lists, [])
        return {"metadata": {"resourceVersion": str(10 * self.list_calls)}, "items": items}

    async def watch_fn(self, rv: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]:
        self.watch_rvs.append(rv)
        assert 270 <= timeout_seconds <= 330  # ~5 min, jittered
        stream = next(self._streams, None)
        if stream is None:  # stay silent forever (until the inactivity bound or a stop)
            await self.hang.wait()
            return
        for ev in stream:
            yield ev


def scripted_cache(script: Script, **options: Any) -> ObjectCache[Pod]:
    options.setdefault("backoff", fast_backoff())
    return ObjectCache("pods", script.list_fn, script.watch_fn, trim_pod, **options)


async def test_unknown_event_types_are_skipped(running: Runner, caplog: pytest.LogCaptureFixture) -> None:
    script = Script([[]], [STREAM_WITH_UNKNOWN_TYPE])
    cache = scripted_cache(script)
    await running(cache)
    await eventually(lambda: cache.get("default", "after-unknown") is not None, "event after the unknown one")
    assert "SURPRISE" in caplog.text
    assert cache.relist_count == 1


async def test_error_410_event_relists_at_once(running: Runner) -> None:
    script = Script(
        [[], [pod("fresh") | {"metadata": {"name": "fresh", "namespace": "default"}}]], [STREAM_WITH_ERROR_410GONE]
    )
    cache = scripted_cache(script, backoff=Backoff(initial_seconds=60, rng=random.Random(1)))
    await running(cache)
    # With a 60 s backoff, reaching the second list quickly proves no backoff was slept.
    await eventually(lambda: cache.relist_count == 2, "relist")
    assert cache.get("default", "a") is None
    assert cache.get("default", "fresh") is not None


async def test_other_error_event_relists_after_backoff(running: Runner) -> None:
    script = Script([[], []], [STREAM_WITH_ERROR_500])
    cache = scripted_cache(script)
    await running(cache)
    await eventually(lambda: cache.relist_count == 2, "relist after backoff")
    assert script.watch_rvs[0] == "10"


async def test_repeated_410_without_progress_backs_off(running: Runner, caplog: pytest.LogCaptureFixture) -> None:
    gone = [error_event(410, "Expired")]
    script = Script([[]] * 4, [gone, gone, gone])
    cache = scripted_cache(script)
    caplog.set_level(logging.INFO, logger="multusd.kube.watch")
    await running(cache)
    await eventually(lambda: cache.relist_count == 4, "relists")
    assert caplog.text.count("relisting now") == 1
    assert caplog.text.count("relisting in") == 2


async def test_stream_end_rewatches_from_the_latest_rv(running: Runner) -> None:
    script = Script([[]], [STREAM_WITH_BOOKMARK])
    cache = scripted_cache(script)
    await running(cache)
    await eventually(lambda: len(script.watch_rvs) == 2, "second watch")
    assert script.watch_rvs == ["10", "50"]
    assert cache.relist_count == 1


async def test_silent_stream_hits_the_inactivity_bound_and_rewatches(running: Runner) -> None:
    script = Script([[]], [None, STREAM_WITH_BOOKMARK])
    cache = scripted_cache(script, inactivity_timeout_seconds=0.02)
    await running(cache)
    await eventually(lambda: len(script.watch_rvs) >= 3, "re-watch after silence")
    assert script.watch_rvs[:3] == ["10", "10", "50"]
    assert cache.relist_count == 1


async def test_a_failing_hook_does_not_break_the_cache(running: Runner) -> None:
    script = Script([[pod("a")]], [[event("ADDED", "b", "11")]])
    cache = scripted_cache(script)

    def broken(kind: str, obj: Pod) -> None:
        raise RuntimeError("hook bug")

    cache.add_hook(broken)
    await running(cache)
    await eventually(lambda: cache.get("default", "b") is not None, "event after a hook failure")


async def test_relist_reports_modified_and_deleted_to_hooks() -> None:
    first = pod("keep") | {"metadata": {"name": "keep", "namespace": "default", "resourceVersion": "1"}}
    changed = pod("keep") | {"metadata": {"name": "keep", "namespace": "default", "resourceVersion": "2"}}
    script = Script([[first, pod("drop")], [changed]], [])
    cache = scripted_cache(script)
    changes: list[tuple[str, str]] = []
    await cache.relist()
    cache.add_hook(lambda kind, obj: changes.append((kind, obj["metadata"]["name"])))
    await cache.relist()
    assert sorted(changes) == [("DELETED", "drop"), ("MODIFIED", "keep")]


async def test_run_returns_promptly_on_stop() -> None:
    script = Script([[]], [None])
    cache = scripted_cache(script)
    stop = asyncio.Event()
    task = asyncio.create_task(cache.run(stop))
    await eventually(lambda: len(script.watch_rvs) == 1, "watch open")
    stop.set()
    async with asyncio.timeout(WAIT):
        await task


async def test_a_bug_in_the_loop_propagates_out_of_run() -> None:
    async def broken_list() -> ObjectList:
        raise RuntimeError("bug")

    async def no_watch(rv: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]:
        if False:
            yield  # pragma: no cover

    cache: ObjectCache[Pod] = ObjectCache("pods", broken_list, no_watch, trim_pod)
    async with asyncio.timeout(WAIT):
        with pytest.raises(RuntimeError, match="bug"):
            await cache.run(asyncio.Event())


def test_backoff_is_capped_exponential_with_jitter() -> None:
    backoff = Backoff(initial_seconds=0.5, cap_seconds=30.0, jitter=0.5, rng=random.Random(0))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [min(30.0, 0.5 * 2**i) for i in range(10)]
    assert all(base / 2 <= d <= base for d, base in zip(delays, bases, strict=True))
    assert backoff.attempt == 10
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5
