"""The daemon's lifetime: config → caches → socket → ready → signals → graceful shutdown.

Everything is built inside one ``AsyncExitStack`` so it unwinds in reverse order, whatever
happened. Long-running tasks (the watch caches) are *guarded*: if one dies, it is logged at once,
``/readyz`` fails and the daemon exits non-zero so the kubelet restarts it.

Shutdown on SIGTERM/SIGINT (DESIGN.md §2, upstream §2.6): ``/readyz`` turns 500 and new
ADD/CHECK/GC/STATUS get 503 (the shims keep retrying, so the next daemon serves them); requests
in flight get ``shutdownTimeout`` to finish; DELs are served until the end; the socket is removed
last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import prometheus_client
from aiohttp import web

from multusd.apisources import ApiNads, ApiPods, ApiStatusSink
from multusd.attach.flows import FlowSettings, Multus
from multusd.attach.podnets import make_pod_delegates
from multusd.autoconf import EXIT_AUTOCONF, AutoconfError, ConfigManager
from multusd.cni.cache import ResultCache
from multusd.cni.exec import PluginExecutor, install_pidfd_child_watcher
from multusd.cni.runtime import CniRuntime
from multusd.config import LEGACY_SOCKET_NAME, DaemonConfig
from multusd.kube.client import ClientSettings, KubeClient, make_kube_client
from multusd.kube.errors import Forbidden, KubeError, NotFound, Unauthorized
from multusd.kube.watch import NadCache, PodCache
from multusd.metrics import Metrics
from multusd.reaper import Reaper
from multusd.server import Health, RequestGate, ServerDeps, make_cni_app, make_metrics_app
from multusd.state import StateStore

log = logging.getLogger("multusd")

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_TASK_DIED = 3
READINESS_POLL_SECONDS = 1.0
EVENT_DRAIN_SECONDS = 2.0
DEFAULT_DAEMONSET_NAME = "kube-multus-ds"

_LEVELS = {"panic": logging.CRITICAL, "error": logging.ERROR, "verbose": logging.INFO, "debug": logging.DEBUG}


def setup_logging(cfg: DaemonConfig) -> None:
    """Upstream's line shape ``<time> [<level>] <message>``, to stderr and/or a rotated file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    if cfg.log_to_stderr or not cfg.log_file:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        root.addHandler(stream)
    if cfg.log_file:
        options = cfg.log_options or {}
        handler = logging.handlers.RotatingFileHandler(
            cfg.log_file,
            maxBytes=int(options.get("maxSize", 100)) * 1024 * 1024,
            backupCount=int(options.get("maxBackups", 5)),
        )
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(_LEVELS.get(cfg.log_level, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def wait_for_file(path: str, timeout: float) -> bool:
    """Stat-poll for the readiness indicator file, bounded."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(READINESS_POLL_SECONDS)
    return True


def prepare_socket_dir(socket_path: Path) -> None:
    """Create the socket dir 0700 and clear *our* stale socket and link (nothing else in it)."""
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(socket_path.parent, 0o700)
    for stale in (socket_path, socket_path.parent / LEGACY_SOCKET_NAME):
        if stale.is_symlink() or stale.is_socket():
            stale.unlink()


def link_legacy_socket(socket_path: Path) -> Path | None:
    """``multus.sock`` beside our socket, so upstream's shims keep working during a migration."""
    legacy = socket_path.parent / LEGACY_SOCKET_NAME
    if socket_path.name == LEGACY_SOCKET_NAME:
        return None
    legacy.symlink_to(socket_path.name)
    return legacy


async def daemonset_gone(client: KubeClient) -> bool:
    """Is this pod's DaemonSet deleted or being deleted? (``cleanupConfigOnExit: auto``)

    Only then is 00-multus.conf removed: a restart or an upgrade keeps it, so pods created in the
    gap wait for the next daemon instead of silently getting flannel only (P3). Without a known
    namespace (not running as the DaemonSet) or on API trouble the answer is "no": keep the file.
    """
    namespace = os.environ.get("MULTUS_POD_NAMESPACE", "")
    name = os.environ.get("MULTUS_DAEMONSET_NAME", DEFAULT_DAEMONSET_NAME)
    if not namespace:
        log.info("MULTUS_POD_NAMESPACE not set: not running as a DaemonSet, keeping 00-multus.conf")
        return False
    try:
        ds = await client.get_daemonset(namespace, name)
    except NotFound:
        return True
    except (Unauthorized, Forbidden):
        # `kubectl delete -f` removes our ServiceAccount/RBAC along with the DaemonSet: losing our
        # own credentials at exit means we are being uninstalled, and a kept 00-multus.conf would
        # send every new pod to a daemon that never comes back (P4).
        log.info("DaemonSet %s/%s unreadable with our credentials: treating it as deleted", namespace, name)
        return True
    except KubeError as exc:
        log.warning(
            "cannot tell whether DaemonSet %s/%s is being deleted (%s); keeping 00-multus.conf", namespace, name, exc
        )
        return False
    return bool((ds.get("metadata") or {}).get("deletionTimestamp"))


class Daemon:
    """One run of multusd."""

    def __init__(self, cfg: DaemonConfig, stop: asyncio.Event | None = None) -> None:
        self.cfg = cfg
        self.stop = stop or asyncio.Event()
        self.metrics = Metrics()
        self.health = Health(reasons={"caches": "API caches not synced yet"})
        self.gate = RequestGate(cfg.max_concurrent_requests, self.metrics)
        self.metrics_address: tuple[str, int] | None = None

    def _bin_dirs(self) -> list[str]:
        extra = [d for d in os.environ.get("CNI_PATH", "").split(os.pathsep) if d]
        return [self.cfg.bin_dir, *[d for d in extra if d != self.cfg.bin_dir]]

    async def run(self) -> int:
        cfg = self.cfg
        install_pidfd_child_watcher()
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        if cfg.readiness_indicator_file:
            log.info(
                "waiting up to %.0f s for readinessindicatorfile %s",
                cfg.readiness_timeout,
                cfg.readiness_indicator_file,
            )
            if not await wait_for_file(cfg.readiness_indicator_file, cfg.readiness_timeout):
                log.error(
                    "have you checked that your default network is ready? "
                    "still waiting for readinessindicatorfile @ %s",
                    cfg.readiness_indicator_file,
                )
                return EXIT_CONFIG

        async with contextlib.AsyncExitStack() as stack:
            client = await make_kube_client(
                cfg.kubeconfig or None,
                settings=ClientSettings(request_timeout_seconds=cfg.api_timeout, event_host=cfg.node_name),
                on_error=lambda verb, resource, code: self.metrics.api_errors.labels(verb, resource, code).inc(),
            )
            stack.push_async_callback(client.close)
            pods = PodCache(client, cfg.node_name)
            nads = NadCache(client)
            sink = ApiStatusSink(client)
            stack.push_async_callback(sink.drain, EVENT_DRAIN_SECONDS)

            state = StateStore(cfg.cni_dir)
            result_cache = ResultCache(cfg.cni_dir)
            executor = PluginExecutor(
                self._bin_dirs(), chroot_dir=cfg.chroot_dir or None, timeout_seconds=cfg.delegate_timeout
            )
            runtime = CniRuntime(executor, result_cache)
            settings = FlowSettings(
                pod_lookup_timeout=cfg.pod_lookup_timeout,
                status_timeout=cfg.api_timeout,
                observe=self._observe_delegate,
                on_status_failure=self.metrics.status_write_failures.inc,
                on_corrupt_state=lambda: log.error("corrupt scratch file found (see above)"),
            )
            api_pods = ApiPods(pods, client, live_timeout=cfg.api_timeout)
            api_nads = ApiNads(nads, client)
            multus = Multus(
                runtime,
                state,
                pods=api_pods,
                nads=api_nads,
                sink=sink,
                settings=settings,
                pod_delegates=make_pod_delegates(
                    api_nads, lambda pod, message: sink.event(pod, "Warning", "NoNetworkFound", message)
                ),
            )
            self.metrics.scrape_gauge("multus_state_files", "Scratch files in cniDir (attachments held).", state.count)
            self.metrics.scrape_gauge("multus_pod_cache_objects", "Pods in this node's watch cache.", lambda: len(pods))
            self.metrics.scrape_gauge(
                "multus_nad_cache_objects", "NetworkAttachmentDefinitions cached.", lambda: len(nads)
            )

            cache_stop = asyncio.Event()
            tasks = [
                asyncio.create_task(pods.run(cache_stop), name="watch:pods"),
                asyncio.create_task(nads.run(cache_stop), name="watch:nads"),
            ]

            if cfg.reaper_interval > 0:
                reaper = Reaper(
                    state,
                    result_cache,
                    multus,
                    api_pods.cached_pod,
                    pods.synced.is_set,
                    self.gate.run,
                    cfg.reaper_interval,
                    on_outcome=lambda outcome: self.metrics.reaped.labels(outcome).inc(),
                )
                tasks.append(asyncio.create_task(reaper.run(cache_stop), name="reaper"))

            async def stop_caches() -> None:
                cache_stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)

            stack.push_async_callback(stop_caches)

            # Metrics first: probes answer (not ready) while the rest comes up.
            metrics_runner = web.AppRunner(make_metrics_app(self.metrics, self.health), handle_signals=False)
            await metrics_runner.setup()
            stack.push_async_callback(metrics_runner.cleanup)
            host, port = cfg.effective_metrics_address
            await web.TCPSite(metrics_runner, host or None, port).start()
            self.metrics_address = metrics_runner.addresses[0][:2]
            log.info("metrics on http://%s:%d/metrics", *self.metrics_address)

            # 00-multus.conf: the primary wait overlaps cache sync; written once the socket serves.
            autoconf = ConfigManager(cfg)
            serving = asyncio.Event()
            autoconf_task = asyncio.create_task(autoconf.run(self.stop, serving), name="autoconf")

            async def finish_autoconf() -> None:
                if not autoconf_task.done():
                    autoconf_task.cancel()
                await asyncio.gather(autoconf_task, return_exceptions=True)
                await autoconf.cleanup_on_exit(cfg.cleanup_config_on_exit, lambda: daemonset_gone(client))

            socket_path = cfg.effective_socket_path
            prepare_socket_dir(socket_path)
            deps = ServerDeps(
                multus, self.metrics, self.health, self.gate, overlay=cfg.raw, ignore_readiness=cfg.auto_mode
            )
            cni_runner = web.AppRunner(make_cni_app(deps), handle_signals=False, shutdown_timeout=1.0)
            await cni_runner.setup()
            await web.UnixSite(cni_runner, str(socket_path)).start()
            os.chmod(socket_path, 0o600)
            legacy = link_legacy_socket(socket_path)

            async def remove_socket() -> None:
                await cni_runner.cleanup()
                for path in (legacy, socket_path):
                    if path is not None and (path.is_symlink() or path.exists()):
                        path.unlink()

            stack.push_async_callback(remove_socket)
            stack.push_async_callback(finish_autoconf)  # unwinds before the socket goes
            log.info("serving CNI requests on %s", socket_path)
            serving.set()

            ready_task = asyncio.create_task(self._become_ready(pods, nads), name="readiness")
            code = await self._wait_for_stop([*tasks, autoconf_task])
            ready_task.cancel()

            # Graceful shutdown: stop taking new work, let what runs finish (DELs still served).
            self.health.shutting_down = True
            log.info(
                "shutting down: waiting up to %.0f s for %d request(s)",
                cfg.shutdown_timeout,
                self.gate.running + self.gate.waiting,
            )
            if not await self.gate.wait_idle(cfg.shutdown_timeout):
                log.warning(
                    "shutdown: %d request(s) still running after %.0f s", self.gate.running, cfg.shutdown_timeout
                )
        log.info("multusd stopped")
        return code

    async def _become_ready(self, pods: PodCache, nads: NadCache) -> None:
        try:
            async with asyncio.timeout(self.cfg.readiness_timeout):
                await asyncio.gather(pods.synced.wait(), nads.synced.wait())
        except TimeoutError:
            log.warning(
                "API caches not synced after %.0f s; serving anyway with live API lookups", self.cfg.readiness_timeout
            )
        self.health.reasons.pop("caches", None)
        self.health.ready = True
        log.info("ready: %d pod(s) on node %r, %d NAD(s) cached", len(pods), self.cfg.node_name, len(nads))

    async def _wait_for_stop(self, guarded: list[asyncio.Task[None]]) -> int:
        """Until stop is set (0) or a guarded task ends, which none should before stop (non-zero)."""
        stopper: asyncio.Task[Any] = asyncio.create_task(self.stop.wait(), name="stop")
        watched: set[asyncio.Task[Any]] = {stopper, *guarded}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stopper in done:
            return EXIT_OK
        code = EXIT_TASK_DIED
        for task in done:
            error = task.exception() if not task.cancelled() else None
            if isinstance(error, AutoconfError):
                log.error("00-multus.conf: %s; exiting", error)
                code = EXIT_AUTOCONF
            else:
                log.error(
                    "task %s ended unexpectedly: %r; exiting so the kubelet restarts multusd", task.get_name(), error
                )
        self.health.ready = False
        self.stop.set()
        return code

    def _observe_delegate(self, plugin: str, command: str, seconds: float, code: int | None) -> None:
        self.metrics.delegate_duration.labels(plugin, command).observe(seconds)
        if code is not None:
            self.metrics.delegate_errors.labels(plugin, command, str(code)).inc()


def run(cfg: DaemonConfig) -> int:
    """Run until SIGTERM/SIGINT; the exit code says why it stopped."""
    setup_logging(cfg)

    async def main() -> int:
        daemon = Daemon(cfg)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop.set)
        return await daemon.run()

    return asyncio.run(main())
