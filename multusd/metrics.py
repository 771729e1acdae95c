"""Every metric multusd exports, declared in one place on an explicit registry.

Tests build their own :class:`Metrics` on a fresh registry, so counters are never shared between
tests. Labels are bounded (handler, command, plugin type, code): never a pod, container id or
netns. ``multus_server_request_total`` keeps upstream's exact name, help and label values so
existing dashboards keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Plugin and request latencies: a flannel ADD is ~20-80 ms, a burst after a reboot can queue for
# seconds, and plugins are killed at delegateTimeout (60 s by default).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The instruments. Values that other objects already hold come from a scrape-time collector."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.server_requests = Counter(
            "multus_server_request",
            "Counter of HTTP requests",
            ["handler", "code", "method"],
            registry=r,
        )
        self.request_duration = Histogram(
            "multus_request_duration_seconds",
            "Time to serve one CNI request, from arrival to response, by command and outcome.",
            ["command", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "multus_request_queue_wait_seconds",
            "Time a CNI request waited for an execution slot (maxConcurrentRequests).",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delegate_duration = Histogram(
            "multus_delegate_duration_seconds",
            "Time one delegate plugin (conf) or plugin list took, by plugin type and command.",
            ["plugin", "command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delegate_errors = Counter(
            "multus_delegate_errors",
            "Delegate plugin failures, by plugin type, command and CNI error code.",
            ["plugin", "command", "code"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "multus_request_queue_depth",
            "CNI requests waiting for an execution slot.",
            registry=r,
        )
        self.in_flight = Gauge(
            "multus_requests_in_flight",
            "CNI requests currently executing plugins.",
            registry=r,
        )
        self.api_errors = Counter(
            "multus_api_request_errors",
            "Failed Kubernetes API requests, by verb, resource and HTTP code (or 'network').",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.status_write_failures = Counter(
            "multus_network_status_write_failures",
            "network-status annotations that could not be written (the ADD still succeeded).",
            registry=r,
        )
        self.reaped = Counter(
            "multus_reaper_removed",
            "Orphaned attachments removed by the reaper (DEL run, state deleted), by outcome.",
            ["outcome"],
            registry=r,
        )
        self._gauges = _ScrapeGauges()
        r.register(self._gauges)
        if process:
            ProcessCollector(registry=r)

    def scrape_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Expose a value another object owns (cache sizes, state files), read at scrape time."""
        self._gauges.add(name, documentation, read)


class _ScrapeGauges(Collector):
    """Gauges whose value is computed when Prometheus scrapes, not pushed on every change."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, Callable[[], float]]] = {}

    def add(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._entries[name] = (documentation, read)

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in list(self._entries.items()):
            yield GaugeMetricFamily(name, documentation, value=float(read()))

    def describe(self) -> Iterator[Metric]:
        return iter(())
