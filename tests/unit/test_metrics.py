"""Metric names and labels are an interface: dashboards and upstream's users depend on them."""

from __future__ import annotations

from prometheus_client import generate_latest

from multusd.metrics import Metrics


def test_upstream_request_counter_name_and_labels() -> None:
    metrics = Metrics(process=False)
    metrics.server_requests.labels(handler="/cni", code="200", method="post").inc()
    value = metrics.registry.get_sample_value(
        "multus_server_request_total", {"handler": "/cni", "code": "200", "method": "post"}
    )
    assert value == 1.0
    text = generate_latest(metrics.registry).decode()
    assert "# HELP multus_server_request_total Counter of HTTP requests" in text


def test_registries_are_independent() -> None:
    a, b = Metrics(process=False), Metrics(process=False)
    a.delegate_errors.labels(plugin="macvlan", command="ADD", code="7").inc()
    labels = {"plugin": "macvlan", "command": "ADD", "code": "7"}
    assert a.registry.get_sample_value("multus_delegate_errors_total", labels) == 1.0
    assert b.registry.get_sample_value("multus_delegate_errors_total", labels) is None


def test_scrape_gauges_read_the_owner_at_scrape_time() -> None:
    metrics = Metrics(process=False)
    state = {"n": 3}
    metrics.scrape_gauge("multus_state_files", "State files on disk.", lambda: state["n"])
    assert metrics.registry.get_sample_value("multus_state_files") == 3.0
    state["n"] = 5
    assert metrics.registry.get_sample_value("multus_state_files") == 5.0


def test_process_metrics_present_by_default() -> None:
    metrics = Metrics()
    assert metrics.registry.get_sample_value("process_resident_memory_bytes")
