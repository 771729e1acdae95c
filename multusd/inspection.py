"""``multusd inspect``: what multusd holds on this node, what of it is orphaned, how the daemon is.

Users had no way to see what multus thinks is attached (MC#488 asked for a ``multusctl``), and
stale state piles up silently (P7). This reads the same files the daemon and its reaper read —
the scratch files and libcni result cache in cniDir, through :func:`multusd.reaper.survey` — so
what it shows is exactly what a DEL or a reaper sweep would act on. For each attachment: pod,
container, networks, interfaces, IPs, age, and whether it is an *orphan* (netns gone **and** pod
gone from this node, the reaper's own rule).

Pod presence needs the API: this node's pods are listed once (``--kubeconfig``, ``$KUBECONFIG``,
in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, or K3s's admin kubeconfig). Without access
presence is "unknown" and nothing is called an orphan: guessing wrong would invite someone to
delete a live pod's state. The daemon's health comes from its metrics listener (``/readyz`` and a
few ``/metrics`` values); an unreachable daemon is reported, never a crash. Always exits 0 once
it could look (2 for a bad daemon config).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multusd.attach.flows import PodInfo
    from multusd.reaper import Attachment

DEFAULT_METRICS_URL = "http://127.0.0.1:19090"
DEFAULT_TIMEOUT_SECONDS = 5.0
EXIT_CANNOT_INSPECT = 2

#: The few metrics worth a glance, by the JSON key they are reported under. Labelled series are summed.
HEALTH_METRICS: dict[str, str] = {
    "queueDepth": "multus_request_queue_depth",
    "inFlight": "multus_requests_in_flight",
    "stateFiles": "multus_state_files",
    "rssBytes": "process_resident_memory_bytes",
    "requestsTotal": "multus_server_request_total",
}


# --------------------------------------------------------------------------------------------
# Daemon health


@dataclass(frozen=True)
class Health:
    """What the daemon's metrics listener said, or why it could not be asked."""

    url: str
    reachable: bool
    ready: bool | None = None
    ready_detail: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "reachable": self.reachable,
            "ready": self.ready,
            "readyDetail": self.ready_detail,
            "metrics": dict(self.metrics),
            "error": self.error,
        }

    def summary(self) -> str:
        if not self.reachable:
            return f"{self.url} unreachable: {self.error}"
        state = "ready" if self.ready else f"NOT READY ({self.ready_detail or 'no reason given'})"
        parts = []
        labels = (("queueDepth", "queue"), ("inFlight", "in flight"), ("stateFiles", "state files"))
        for key, label in labels:
            if key in self.metrics:
                parts.append(f"{label} {self.metrics[key]:g}")
        if "rssBytes" in self.metrics:
            parts.append(f"RSS {self.metrics['rssBytes'] / 2**20:.1f} MiB")
        if self.error:
            parts.append(self.error)
        return f"{self.url} {state}" + (f"; {', '.join(parts)}" if parts else "")


def parse_metrics(text: str) -> dict[str, float]:
    """The :data:`HEALTH_METRICS` found in a Prometheus text exposition (sums over labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {name: key for key, name in HEALTH_METRICS.items()}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = wanted.get(sample.name)
            if key is not None:
                found[key] = found.get(key, 0.0) + float(sample.value)
    return found


async def fetch_health(url: str, timeout_seconds: float) -> Health:
    """GET ``/readyz`` and ``/metrics``; any transport failure becomes an unreachable Health."""
    import aiohttp

    base = url.rstrip("/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as session:
            async with session.get(f"{base}/readyz") as response:
                ready = response.status == 200
                detail = "" if ready else f"HTTP {response.status}: {(await response.text()).strip()[:200]}"
            async with session.get(f"{base}/metrics") as response:
                if response.status != 200:
                    return Health(base, True, ready, detail, error=f"/metrics answered HTTP {response.status}")
                text = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return Health(base, False, error=_describe(exc) or "timed out")
    try:
        metrics = parse_metrics(text)
    except ValueError as exc:
        return Health(base, True, ready, detail, error=f"/metrics is not Prometheus text: {exc}")
    return Health(base, True, ready, detail, metrics)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Pod presence


@dataclass(frozen=True)
class PodPresence:
    """This node's pods from one API LIST, or why presence is unknown (``pods`` is None then)."""

    source: str  # "api" or "unknown"
    detail: str
    pods: Mapping[tuple[str, str], PodInfo] | None = None

    def lookup(self, namespace: str, name: str) -> PodInfo | None:
        assert self.pods is not None
        return self.pods.get((namespace, name))


async def fetch_pod_presence(kubeconfig: str | None, node: str, timeout_seconds: float) -> PodPresence:
    """List ``node``'s pods once. ``kubeconfig`` None: no access; ``""``: in-cluster."""
    if kubeconfig is None:
        return PodPresence("unknown", "no API access (give --kubeconfig): orphans are not judged")
    if not node:
        return PodPresence("unknown", "node name unknown (give --node or set MULTUS_NODE_NAME)")
    from multusd.apisources import pod_info
    from multusd.kube.client import ClientSettings, make_kube_client
    from multusd.kube.errors import KubeError

    settings = ClientSettings(request_timeout_seconds=timeout_seconds, retry_backoff_seconds=(0.2, 0.5))
    try:
        async with await make_kube_client(kubeconfig or None, settings=settings) as client:
            listed = await client.list_pods(node)
    except (KubeError, OSError) as exc:
        return PodPresence("unknown", f"cannot list pods of node {node}: {exc}")
    pods = {}
    for obj in listed["items"]:
        info = pod_info(obj)
        pods[(info.namespace, info.name)] = info
    return PodPresence("api", f"{len(pods)} pods on node {node}", pods)


# --------------------------------------------------------------------------------------------
# The inspection


def state_of(attachment: Attachment) -> str:
    """One word (or a few) for what the attachment is; orphans shout."""
    if attachment.corrupt:
        return f"corrupt: {attachment.corrupt}"
    if attachment.orphan:
        return "ORPHAN (netns and pod gone)"
    netns, pod = attachment.netns_exists, attachment.pod_present
    if netns is False:
        return "netns gone, pod present" if pod else "netns gone, pod unknown"
    if netns is None:
        return "netns unknown"
    if pod is False:
        return "live netns, pod gone"
    return "live"


@dataclass(frozen=True)
class Inspection:
    """Everything ``multusd inspect`` reports."""

    node: str
    cni_dir: str
    presence: PodPresence
    attachments: Sequence[Attachment]
    health: Health

    @property
    def orphans(self) -> list[Attachment]:
        return [a for a in self.attachments if a.orphan]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "cniDir": self.cni_dir,
            "podPresence": {"source": self.presence.source, "detail": self.presence.detail},
            "attachments": [{**a.to_json(), "state": state_of(a)} for a in self.attachments],
            "orphans": len(self.orphans),
            "daemon": self.health.to_json(),
        }


async def inspect_node(
    cni_dir: str,
    kubeconfig: str | None,
    node: str,
    metrics_url: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    now: float | None = None,
) -> Inspection:
    """Ask the daemon and the API at once, then survey cniDir with the pod list.

    If the API lists no pods at all on this node while attachments exist, the node name is most
    likely wrong: presence is then treated as unknown rather than calling everything an orphan.
    """
    import asyncio

    from multusd.cni.cache import ResultCache
    from multusd.reaper import survey
    from multusd.state import StateStore

    health, presence = await asyncio.gather(
        fetch_health(metrics_url, timeout_seconds), fetch_pod_presence(kubeconfig, node, timeout_seconds)
    )
    state, cache = StateStore(cni_dir), ResultCache(cni_dir)
    if presence.pods is not None and not presence.pods and state.count():
        presence = PodPresence(
            "unknown", f"the API lists no pods on node {node!r} while attachments exist: wrong --node? not judged"
        )
    lookup = presence.lookup if presence.pods is not None else None
    attachments = survey(state, cache, lookup, now=now)
    return Inspection(node, cni_dir, presence, attachments, health)


# --------------------------------------------------------------------------------------------
# Rendering


def format_age(seconds: float) -> str:
    """kubectl-style: 45s, 12m, 5h, 3d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 2 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def render_table(inspection: Inspection) -> Iterator[str]:
    """A header with node, presence and daemon health, then aligned columns, one row per attachment."""
    yield f"node: {inspection.node or '?'}   cniDir: {inspection.cni_dir}"
    yield f"pod presence: {inspection.presence.source}; {inspection.presence.detail}"
    yield f"daemon: {inspection.health.summary()}"
    yield ""
    header = ("POD", "CONTAINER", "AGE", "NETWORKS", "INTERFACES", "IPS", "STATE")
    rows = [
        (
            f"{a.pod_namespace}/{a.pod_name}" if a.pod_name else "?",
            a.container_id[:12],
            format_age(a.age_seconds),
            ",".join(a.networks) or "-",
            ",".join(a.interfaces) or "-",
            ",".join(a.ips) or "-",
            state_of(a),
        )
        for a in inspection.attachments
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
    orphans = len(inspection.orphans)
    yield ""
    yield f"{len(rows)} attachments, {orphans} orphan{'s' if orphans != 1 else ''}"


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``multusd inspect``."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="daemon-config.json for cniDir, kubeconfig, node name, metrics address "
        "(default: /etc/cni/net.d/multus.d/daemon-config.json when present)",
    )
    parser.add_argument("--cni-dir", metavar="DIR", help="multusd's state dir (default: cniDir, /var/lib/cni/multus)")
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="API credentials for pod presence (default: $KUBECONFIG, in-cluster, /etc/rancher/k3s/k3s.yaml)",
    )
    parser.add_argument("--no-api", action="store_true", help="do not ask the API: pod presence stays unknown")
    parser.add_argument("--node", metavar="NAME", help="this node's name (default: $MULTUS_NODE_NAME, nodeName)")
    parser.add_argument(
        "--metrics-url",
        metavar="URL",
        help=f"the daemon's metrics listener (default: metricsAddress's port on 127.0.0.1, {DEFAULT_METRICS_URL})",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"bound on each HTTP request (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def _metrics_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``multusd inspect``: print the table (or JSON); 0 once inspected, 2 for a bad config."""
    import asyncio

    from multusd.config import DEFAULT_CONFIG_PATH, ConfigError, DaemonConfig, load_config
    from multusd.validate import resolve_api_access

    env = os.environ if env is None else env
    path = args.config or (DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None)
    try:
        cfg = load_config(path, env) if path else DaemonConfig(node_name=env.get("MULTUS_NODE_NAME", ""))
    except ConfigError as exc:
        print(f"multusd inspect: {exc}", file=sys.stderr)
        return EXIT_CANNOT_INSPECT
    cni_dir = args.cni_dir or cfg.cni_dir
    node = args.node or env.get("MULTUS_NODE_NAME") or cfg.node_name
    if args.metrics_url:
        metrics_url = args.metrics_url
    else:
        try:
            metrics_url = _metrics_url(*cfg.effective_metrics_address)
        except ValueError:
            metrics_url = DEFAULT_METRICS_URL
    kubeconfig = None
    if not args.no_api:
        configured = cfg.kubeconfig if cfg.kubeconfig and os.path.exists(cfg.kubeconfig) else None
        kubeconfig = resolve_api_access(args.kubeconfig or configured, env)
    inspection = asyncio.run(inspect_node(cni_dir, kubeconfig, node, metrics_url, args.timeout))
    if args.output == "json":
        print(json.dumps(inspection.to_json(), indent=2))
    else:
        for line in render_table(inspection):
            print(line)
    return 0
