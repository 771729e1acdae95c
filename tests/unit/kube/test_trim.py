"""trim_pod / trim_nad keep exactly the fields multusd reads; is_static_pod follows upstream."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from multusd.kube.objects import (
    CONFIG_MIRROR_ANNOTATION,
    CONFIG_SOURCE_ANNOTATION,
    DEFAULT_NETWORK_ANNOTATION,
    NETWORK_STATUS_ANNOTATION,
    NETWORKS_ANNOTATION,
    RESOURCE_NAME_ANNOTATION,
    is_static_pod,
    object_key,
    resource_version,
    trim_nad,
    trim_pod,
)

# A realistic pod as the API server returns it: everything multusd must drop is present.
FULL_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "3f1c0a4e-0000-4000-8000-000000000001",
        "resourceVersion": "4711",
        "generation": 1,
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "deletionTimestamp": "2025-01-01T00:05:00Z",
        "deletionGracePeriodSeconds": 30,
        "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "x"}],
        "finalizers": ["example.com/keep"],
        "annotations": {
            NETWORKS_ANNOTATION: "macvlan-conf@net1",
            DEFAULT_NETWORK_ANNOTATION: "kube-system/flannel",
            NETWORK_STATUS_ANNOTATION: '[{"name":"cbr0","interface":"eth0"}]',
            CONFIG_SOURCE_ANNOTATION: "api",
            "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 2000 + "}",
            "prometheus.io/scrape": "true",
        },
        "managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:containers": {}}}},
        ],
    },
    "spec": {
        "nodeName": "node-a",
        "serviceAccountName": "default",
        "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
        "containers": [
            {
                "name": "web",
                "image": "nginx",
                "command": ["nginx"],
                "args": ["-g", "daemon off;"],
                "env": [{"name": "SECRET", "value": "hunter2"}],
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets"}],
            }
        ],
    },
    "status": {"phase": "Running", "podIP": "10.42.0.9", "conditions": [{"type": "Ready", "status": "True"}]},
}

TRIMMED_POD = {
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "3f1c0a4e-0000-4000-8000-000000000001",
        "resourceVersion": "4711",
        "deletionTimestamp": "2025-01-01T00:05:00Z",
        "annotations": {
            NETWORKS_ANNOTATION: "macvlan-conf@net1",
            DEFAULT_NETWORK_ANNOTATION: "kube-system/flannel",
            NETWORK_STATUS_ANNOTATION: '[{"name":"cbr0","interface":"eth0"}]',
            CONFIG_SOURCE_ANNOTATION: "api",
        },
    },
    "spec": {"nodeName": "node-a"},
}

FULL_NAD: dict[str, Any] = {
    "apiVersion": "k8s.cni.cncf.io/v1",
    "kind": "NetworkAttachmentDefinition",
    "metadata": {
        "name": "macvlan-conf",
        "namespace": "shop",
        "uid": "nad-uid",
        "resourceVersion": "99",
        "labels": {"team": "net"},
        "annotations": {RESOURCE_NAME_ANNOTATION: "intel.com/sriov", "note": "drop me"},
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {"config": '{"cniVersion":"0.3.1","type":"macvlan"}', "unknown": 1},
}


def test_trim_pod_keeps_exactly_the_read_fields() -> None:
    assert trim_pod(FULL_POD) == TRIMMED_POD


def test_trim_pod_does_not_touch_its_input() -> None:
    before = copy.deepcopy(FULL_POD)
    trim_pod(FULL_POD)
    assert before == FULL_POD


def test_trim_pod_is_much_smaller() -> None:
    assert len(json.dumps(trim_pod(FULL_POD))) * 4 < len(json.dumps(FULL_POD))


def test_trim_pod_drops_heavy_fields() -> None:
    text = json.dumps(trim_pod(FULL_POD))
    for dropped in ("managedFields", "volumes", "containers", "hunter2", "ownerReferences", "labels", "podIP"):
        assert dropped not in text


def test_trim_pod_without_kept_annotations_has_no_annotations_key() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", "annotations": {"other": "x"}}, "spec": {}}
    assert trim_pod(pod) == {"metadata": {"name": "p", "namespace": "n"}}


@pytest.mark.parametrize(
    "raw",
    [{}, {"metadata": None}, {"metadata": {"annotations": None}}, {"metadata": {"name": 5}, "spec": "x"}],
    ids=["empty", "null-metadata", "null-annotations", "wrong-types"],
)
def test_trim_pod_survives_malformed_objects(raw: dict[str, Any]) -> None:
    assert trim_pod(raw) == {"metadata": {}}


def test_trim_nad_keeps_config_and_resource_name() -> None:
    assert trim_nad(FULL_NAD) == {
        "metadata": {
            "name": "macvlan-conf",
            "namespace": "shop",
            "uid": "nad-uid",
            "resourceVersion": "99",
            "annotations": {RESOURCE_NAME_ANNOTATION: "intel.com/sriov"},
        },
        "spec": {"config": '{"cniVersion":"0.3.1","type":"macvlan"}'},
    }


def test_trim_nad_with_empty_spec() -> None:
    assert trim_nad({"metadata": {"name": "n", "namespace": "d"}, "spec": {}}) == {
        "metadata": {"name": "n", "namespace": "d"}
    }


@pytest.mark.parametrize(
    ("annotations", "static"),
    [
        (None, False),
        ({}, False),
        ({CONFIG_SOURCE_ANNOTATION: "api"}, False),
        ({CONFIG_SOURCE_ANNOTATION: "file"}, True),
        ({CONFIG_SOURCE_ANNOTATION: "http"}, True),
        ({CONFIG_SOURCE_ANNOTATION: ""}, True),
        ({CONFIG_MIRROR_ANNOTATION: "abc123"}, True),
    ],
    ids=["none", "empty", "api", "file", "http", "empty-source", "mirror"],
)
def test_is_static_pod(annotations: dict[str, str] | None, static: bool) -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}}
    if annotations is not None:
        pod["metadata"]["annotations"] = annotations
    assert is_static_pod(pod) is static
    assert is_static_pod(trim_pod(pod)) is static


def test_object_key_and_resource_version() -> None:
    assert object_key(FULL_POD) == ("shop", "web-1")
    assert object_key({}) == ("", "")
    assert resource_version(FULL_POD) == "4711"
    assert resource_version({"metadata": {"resourceVersion": ""}}) is None
