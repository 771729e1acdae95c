"""List+watch caches of trimmed objects: this node's pods and all NetworkAttachmentDefinitions.

kubernetes_asyncio has no informer (its ``Watch`` wraps one stream and reconnects silently with a
stale RV), so this is ours, shaped like kopf's three nested loops but as one small class that also
owns readiness and backoff:

- :meth:`ObjectCache.run` relists, then streams again and again from the last resourceVersion. A
  stream the server ends (``timeoutSeconds``) is not an error. Failures sleep a capped exponential
  backoff with jitter (0.5 s → 30 s), reset by a good list.
- :meth:`ObjectCache.relist` builds a new dict and swaps it in whole, so objects deleted while no
  watch was open vanish; it records the list's RV and sets :attr:`ObjectCache.synced`.
- :meth:`ObjectCache.stream` applies events: ADDED/MODIFIED store ``trim(obj)``, DELETED removes,
  BOOKMARK moves the RV; 410 (ERROR event or HTTP) relists at once; another ERROR relists after the
  backoff; a dropped or stalled (70 s without a byte-carrying event) stream re-watches from the RV
  after the backoff; unknown event types are logged and skipped.

There is no timer-driven resync: client-go's resync replays the store to handlers, and a cache
that nobody subscribes to for "resync" has nothing to gain from it. :meth:`ObjectCache.get` never
touches the network; the live-GET fallback on a miss belongs to the attach flows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .errors import Gone, KubeError, kube_error_from_status
from .objects import Nad, ObjectList, Pod, WatchEvent, object_key, resource_version, trim_nad, trim_pod

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Mapping[str, Any])

ListFn = Callable[[], Awaitable[ObjectList]]
"""Lists every object the cache covers (a fresh, consistent read)."""
WatchFn = Callable[[str, int], AsyncIterator[WatchEvent]]
"""``watch(resource_version, timeout_seconds)``: one stream of raw events."""
TrimFn = Callable[[Mapping[str, Any]], T]
ChangeHook = Callable[[str, T], None]
"""``hook(kind, obj)``: kind is ADDED / MODIFIED / DELETED; ``obj`` the trimmed object (for
DELETED, the last state known). Called after the cache has changed, on the event loop: keep it
short and non-blocking (hand off to a queue). Exceptions are logged, never propagated."""

WATCH_TIMEOUT_SECONDS = 300
"""Server-side ``timeoutSeconds`` per stream, jittered ±10% so caches do not reconnect in step."""
INACTIVITY_TIMEOUT_SECONDS = 70.0
"""A stream with no event for this long is dead (bookmarks arrive every ~60 s)."""


class WatchError(KubeError):
    """A watch stream delivered an ``ERROR`` event other than 410."""


@dataclass
class Backoff:
    """Capped exponential backoff with jitter; :meth:`reset` after success.

    Delay for attempt *n* (from 1) is ``min(cap, initial * 2**(n-1))`` scaled by a random factor in
    ``[1 - jitter, 1]``, so many daemons restarted together do not hammer the API in step.
    """

    initial_seconds: float = 0.5
    cap_seconds: float = 30.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Count a failure and return how long to sleep before the next try."""
        self.attempt += 1
        base = min(self.cap_seconds, self.initial_seconds * 2.0 ** (self.attempt - 1))
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


class _Relist(Exception):
    """Internal: the stream asks for a relist (``immediate`` for 410)."""

    def __init__(self, cause: KubeError, *, immediate: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.immediate = immediate


class ObjectCache(Generic[T]):
    """A list+watch cache of one kind, keyed ``(namespace, name)``, holding trimmed objects."""

    def __init__(
        self,
        kind: str,
        list_fn: ListFn,
        watch_fn: WatchFn,
        trim: TrimFn[T],
        *,
        backoff: Backoff | None = None,
        watch_timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
        inactivity_timeout_seconds: float = INACTIVITY_TIMEOUT_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self._list_fn = list_fn
        self._watch_fn = watch_fn
        self._trim = trim
        self.backoff = backoff or Backoff()
        self.watch_timeout_seconds = watch_timeout_seconds
        self.inactivity_timeout_seconds = inactivity_timeout_seconds
        self._rng = rng or random.Random()
        self._store: dict[tuple[str, str], T] = {}
        self._hooks: list[ChangeHook[T]] = []
        self.resource_version: str | None = None
        """The RV the next watch starts from (``None`` until the first good list)."""
        self.synced = asyncio.Event()
        """Set after the first good list; stays set (a relist swaps data, it does not unsync)."""
        self.relist_count = 0
        """Good lists so far (the first included), for metrics and tests."""
        self._gone_streak = 0

    # -- reading ------------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> T | None:
        """The cached object or None. Never touches the network."""
        return self._store.get((namespace, name))

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[T]:
        """A snapshot of the cached objects (safe while the cache keeps changing)."""
        return iter(list(self._store.values()))

    def add_hook(self, hook: ChangeHook[T]) -> None:
        """Call ``hook(kind, obj)`` on every change, relists included (see :data:`ChangeHook`)."""
        self._hooks.append(hook)

    # -- the loops ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the cache current until ``stop`` is set; returns then. Never ends on its own.

        Cancelling it is also clean. A bug (anything that is not a KubeError) propagates, so a
        guarded task sees the death at once.
        """
        worker = asyncio.create_task(self._loop(), name=f"cache:{self.kind}")
        stopper = asyncio.create_task(stop.wait(), name=f"cache:{self.kind}:stop")
        try:
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            worker.cancel()
            stopper.cancel()
            await asyncio.gather(worker, stopper, return_exceptions=True)
        if not worker.cancelled() and (error := worker.exception()) is not None:
            raise error

    async def _loop(self) -> None:
        need_list = True
        while True:
            delay = 0.0
            try:
                if need_list:
                    await self.relist()
                    need_list = False
                    self.backoff.reset()
                await self.stream()
                continue  # the server ended the stream: watch again from the RV, no pause
            except _Relist as relist:
                need_list = True
                self._gone_streak = self._gone_streak + 1 if relist.immediate else 0
                if self._gone_streak == 1:
                    # 410 after progress: relist at once. A second 410 with no event in between
                    # (a server answering 410 to every fresh RV) falls through to the backoff.
                    log.info("%s cache: %s; relisting now", self.kind, relist.cause)
                    continue
                delay = self.backoff.next_delay()
                log.warning(
                    "%s cache: %s; relisting in %.1fs (attempt #%d)",
                    self.kind,
                    relist.cause,
                    delay,
                    self.backoff.attempt,
                )
            except Gone as exc:  # a list page's continue token expired
                delay = self.backoff.next_delay()
                log.warning(
                    "%s cache: %s; relisting in %.1fs (attempt #%d)", self.kind, exc, delay, self.backoff.attempt
                )
            except (KubeError, TimeoutError) as exc:
                delay = self.backoff.next_delay()
                action = "listing again" if need_list else f"watching again from {self.resource_version}"
                log.warning(
                    "%s cache: %s; %s in %.1fs (attempt #%d)",
                    self.kind,
                    str(exc) or f"no event for {self.inactivity_timeout_seconds:g}s",
                    action,
                    delay,
                    self.backoff.attempt,
                )
            await asyncio.sleep(delay)

    async def relist(self) -> None:
        """List everything, swap the new dict in whole, record the RV, set :attr:`synced`."""
        listed = await self._list_fn()
        fresh: dict[tuple[str, str], T] = {}
        for raw in listed.get("items", []):
            obj = self._trim(raw)
            fresh[object_key(obj)] = obj
        old, self._store = self._store, fresh
        self.resource_version = resource_version(listed) or self.resource_version
        self.relist_count += 1
        log.info("%s cache: listed %d objects at resourceVersion %s", self.kind, len(fresh), self.resource_version)
        self.synced.set()
        if self._hooks:
            for key, obj in fresh.items():
                before = old.get(key)
                if before is None:
                    self._notify("ADDED", obj)
                elif resource_version(before) != resource_version(obj):
                    self._notify("MODIFIED", obj)
            for key, gone in old.items():
                if key not in fresh:
                    self._notify("DELETED", gone)

    async def stream(self) -> None:
        """One watch from the current RV; returns when the server ends it.

        Raises :class:`_Relist` for ERROR events and 410, :class:`KubeError` for transport
        failures, :class:`TimeoutError` when no event arrives within the inactivity bound.
        """
        if self.resource_version is None:
            raise _Relist(KubeError(f"{self.kind}: no resourceVersion to watch from"), immediate=True)
        loop = asyncio.get_running_loop()
        timeout = max(1, round(self.watch_timeout_seconds * self._rng.uniform(0.9, 1.1)))
        events = self._watch_fn(self.resource_version, timeout)
        try:
            async with asyncio.timeout(self.inactivity_timeout_seconds) as bound:
                async for event in events:
                    bound.reschedule(loop.time() + self.inactivity_timeout_seconds)
                    self._apply(event)
        except Gone as exc:  # HTTP 410 on the watch request itself
            raise _Relist(exc, immediate=True) from exc
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _apply(self, event: WatchEvent) -> None:
        kind, obj = event["type"], event["object"]
        if kind != "ERROR":
            self._gone_streak = 0
        if kind in ("ADDED", "MODIFIED"):
            trimmed = self._trim(obj)
            self._store[object_key(trimmed)] = trimmed
            self._move_rv(obj)
            self._notify(kind, trimmed)
        elif kind == "DELETED":
            key = object_key(obj)
            last = self._store.pop(key, None)
            self._move_rv(obj)
            self._notify(kind, last if last is not None else self._trim(obj))
        elif kind == "BOOKMARK":
            self._move_rv(obj)
        elif kind == "ERROR":
            error = kube_error_from_status(0, obj, what=f"WATCH {self.kind}")
            if isinstance(error, Gone):
                raise _Relist(error, immediate=True)
            raise _Relist(WatchError(str(error), code=error.code, reason=error.reason), immediate=False)
        else:
            log.warning("%s cache: skipping a watch event of unknown type %r", self.kind, kind)

    def _move_rv(self, obj: Mapping[str, Any]) -> None:
        rv = resource_version(obj)
        if rv is not None:
            self.resource_version = rv

    def _notify(self, kind: str, obj: T) -> None:
        for hook in self._hooks:
            try:
                hook(kind, obj)
            except Exception:
                log.exception("%s cache: change hook failed on %s", self.kind, kind)


class PodSource(Protocol):
    """What :class:`PodCache` needs from a client (``KubeClient`` has it)."""

    async def list_pods(self, node_name: str, resource_version: str | None = None) -> ObjectList: ...

    def watch_pods(self, node_name: str, resource_version: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]: ...


class NadSource(Protocol):
    """What :class:`NadCache` needs from a client (``KubeClient`` has it)."""

    async def list_nads(self, resource_version: str | None = None) -> ObjectList: ...

    def watch_nads(self, resource_version: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]: ...


class PodCache(ObjectCache[Pod]):
    """This node's pods (``fieldSelector=spec.nodeName=<node>``), trimmed by :func:`trim_pod`."""

    def __init__(self, client: PodSource, node_name: str, **options: Any) -> None:
        if not node_name:
            log.warning("pod cache: no node name given, caching the pods of the whole cluster")

        async def list_pods() -> ObjectList:
            return await client.list_pods(node_name)

        def watch_pods(rv: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]:
            return client.watch_pods(node_name, rv, timeout_seconds)

        super().__init__("pods", list_pods, watch_pods, trim_pod, **options)
        self.node_name = node_name


class NadCache(ObjectCache[Nad]):
    """NetworkAttachmentDefinitions of all namespaces, trimmed by :func:`trim_nad`."""

    def __init__(self, client: NadSource, **options: Any) -> None:
        async def list_nads() -> ObjectList:
            return await client.list_nads()

        super().__init__("network-attachment-definitions", list_nads, client.watch_nads, trim_nad, **options)
