"""daemon-config.json loading: K3s defaults, upstream files, and errors that name the key."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from multusd.config import (
    FIELDS,
    ConfigError,
    DaemonConfig,
    default_of,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]

# The upstream thick manifest's ConfigMap (reference §2.2), verbatim.
UPSTREAM_CONFIGMAP = {
    "chrootDir": "/hostroot",
    "cniVersion": "0.3.1",
    "logLevel": "verbose",
    "logToStderr": True,
    "cniConfigDir": "/host/etc/cni/net.d",
    "multusAutoconfigDir": "/host/etc/cni/net.d",
    "multusConfigFile": "auto",
    "socketDir": "/host/run/multus/",
}


def test_empty_config_gives_k3s_defaults() -> None:
    cfg = parse_config({}, env={})
    assert cfg.bin_dir == "/var/lib/rancher/k3s/data/cni"
    assert cfg.cni_config_dir == "/var/lib/rancher/k3s/agent/etc/cni/net.d"
    assert cfg.effective_socket_path == Path("/run/multus/multus-cni-network.sock")
    assert cfg.effective_metrics_address == ("0.0.0.0", 19090)
    assert cfg.cleanup_config_on_exit == "auto"
    assert cfg.auto_mode


def test_upstream_configmap_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "daemon-config.json"
    path.write_text(json.dumps(UPSTREAM_CONFIGMAP))
    cfg = load_config(path, env={"MULTUS_NODE_NAME": "node-a"})
    assert cfg.chroot_dir == "/hostroot"
    assert cfg.cni_version == "0.3.1"
    assert cfg.effective_socket_path == Path("/host/run/multus/multus-cni-network.sock")
    assert cfg.node_name == "node-a"
    assert cfg.raw == UPSTREAM_CONFIGMAP


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"binDir": 5}, "key 'binDir' must be a string, got 5"),
        ({"logToStderr": "yes"}, "key 'logToStderr' must be true or false"),
        ({"maxConcurrentRequests": 0}, "key 'maxConcurrentRequests' must be greater than 0"),
        ({"maxConcurrentRequests": True}, "key 'maxConcurrentRequests' must be an integer"),
        ({"defaultNetworks": "a,b"}, "key 'defaultNetworks' must be a list of strings"),
        ({"metricsAddress": "19090"}, "key 'metricsAddress' must be HOST:PORT"),
        ({"metricsPort": 70000}, "key 'metricsPort' must be a TCP port"),
        (
            {"cleanupConfigOnExit": "sometimes"},
            "key 'cleanupConfigOnExit' must be one of auto, always, never",
        ),
        ({"logLevel": "loud"}, "key 'logLevel' must be one of"),
        ({"cniVersion": ""}, "key 'cniVersion' must be set when multusConfigFile is auto"),
    ],
)
def test_bad_values_name_the_file_and_key(doc: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "/etc/daemon-config.json", env={})
    assert str(info.value).startswith("/etc/daemon-config.json: ")
    assert words in str(info.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read daemon config"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON"):
        load_config(bad)
    array = tmp_path / "array.json"
    array.write_text("[]")
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        load_config(array)


def test_unknown_and_ignored_keys_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = parse_config({"frobnicate": 1, "enablePprof": True}, "f.json", env={})
    assert "unknown key 'frobnicate'" in caplog.text
    assert "'enablePprof' is ignored" in caplog.text
    assert cfg.raw["frobnicate"] == 1  # still part of the request override


def test_shim_keys_are_accepted_quietly_and_checked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = parse_config({"daemonReadyTimeout": 30, "daemonDelTimeout": 5.5}, "f.json", env={})
    assert caplog.text == ""
    assert cfg.raw["daemonReadyTimeout"] == 30
    with pytest.raises(ConfigError, match=r"key .daemonDelTimeout. must be a number of seconds"):
        parse_config({"daemonDelTimeout": "5"}, "f.json", env={})


def test_keys_match_case_insensitively_like_go() -> None:
    cfg = parse_config({"BINDIR": "/opt/cni/bin", "loglevel": "DEBUG"}, env={})
    assert cfg.bin_dir == "/opt/cni/bin"
    assert cfg.log_level == "debug"


def test_upstream_compat_keys() -> None:
    cfg = parse_config({"metricsPort": 9091, "connectionLimit": 3}, env={})
    assert cfg.effective_metrics_address == ("0.0.0.0", 9091)
    assert cfg.max_concurrent_requests == 3
    both = parse_config({"connectionLimit": 3, "maxConcurrentRequests": 5}, env={})
    assert both.max_concurrent_requests == 5
    explicit = parse_config({"socketPath": "/tmp/x.sock", "nodeName": "n1"}, env={"MULTUS_NODE_NAME": "n2"})
    assert explicit.effective_socket_path == Path("/tmp/x.sock")
    assert explicit.node_name == "n1"


def test_every_field_maps_to_a_config_attribute() -> None:
    attrs = {f.name for f in dataclasses.fields(DaemonConfig)}
    assert {spec.attr for spec in FIELDS} == attrs - {"raw", "source"}
    assert len({spec.key.lower() for spec in FIELDS}) == len(FIELDS)


def test_readme_documents_every_key_with_its_default() -> None:
    """The README's configuration table is the user's reference: keep it equal to FIELDS."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, flags=re.MULTILINE))
    assert set(rows) == {spec.key for spec in FIELDS}
    for spec in FIELDS:
        assert rows[spec.key] == json.dumps(default_of(spec)), spec.key
