"""00-multus.conf generation: choosing the primary, exact JSON (V60-V65), Q3/Q4 fixes, exit policy."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from multusd.autoconf import (
    ConfigGenError,
    ConfigManager,
    PrimaryNotFoundError,
    PrimaryUnreadableError,
    find_primary,
    force_cni_version,
    generate,
    render_once,
)
from multusd.config import DaemonConfig, parse_config

SOCKET = "/run/multus/multus-cni-network.sock"
SOCK_KEY = f'"daemonSocketPath":"{SOCKET}"'

# K3s's 10-flannel.conflist exactly as its agent writes it (users-and-k3s.md §2.3).
K3S_FLANNEL_CONFLIST = """{
  "name":"cbr0",
  "cniVersion":"1.0.0",
  "plugins":[
    {
      "type":"flannel",
      "delegate":{
        "hairpinMode":true,
        "forceAddress":true,
        "isDefaultGateway":true
      }
    },
    {
      "type":"portmap",
      "capabilities":{
        "portMappings":true
      }
    },
    {
      "type":"bandwidth",
      "capabilities":{
        "bandwidth":true
      }
    }
  ]
}
"""


def make_cfg(tmp_path: Path, **keys: Any) -> DaemonConfig:
    """A parsed daemon-config as an operator would write it (only ``keys`` given, plus the dirs)."""
    doc = {
        "cniConfigDir": str(tmp_path / "net.d"),
        "multusAutoconfigDir": str(tmp_path / "net.d"),
        **keys,
    }
    return parse_config(doc, "test", env={})


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ---------------------------------------------------------------------------------- find_primary


def test_v64_first_by_name_wins(tmp_path: Path) -> None:
    write(tmp_path / "10-testcni.conf", {})
    write(tmp_path / "00-mycni.conf", {})
    assert find_primary(tmp_path) == tmp_path / "00-mycni.conf"


def test_find_primary_skips_multus_json_and_directories(tmp_path: Path) -> None:
    write(tmp_path / "00-multus.conf", {})
    write(tmp_path / "00-multus-old.conflist", {})
    write(tmp_path / "05-other.json", {})
    (tmp_path / "06-dir.conf").mkdir()
    write(tmp_path / "10-flannel.conflist", {})
    write(tmp_path / "20-z.conf", {})
    assert find_primary(tmp_path) == tmp_path / "10-flannel.conflist"


def test_find_primary_sorts_bytewise(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", {})
    write(tmp_path / "B.conf", {})  # 'B' (0x42) < 'a' (0x61)
    assert find_primary(tmp_path).name == "B.conf"


def test_find_primary_master_cni(tmp_path: Path) -> None:
    write(tmp_path / "00-first.conf", {})
    write(tmp_path / "10-flannel.conflist", {})
    assert find_primary(tmp_path, "10-flannel.conflist") == tmp_path / "10-flannel.conflist"
    with pytest.raises(PrimaryNotFoundError, match=r"multusMasterCNI 'missing\.conf' not found"):
        find_primary(tmp_path, "missing.conf")


def test_find_primary_empty_or_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(PrimaryNotFoundError, match="could not find a plugin configuration in"):
        find_primary(tmp_path)
    with pytest.raises(PrimaryNotFoundError):
        find_primary(tmp_path / "nope")


# ---------------------------------------------------------------------------------- generate


def test_v60_minimal(tmp_path: Path) -> None:
    primary = write(
        tmp_path / "net.d" / "10-flannel.conf",
        {"name": "myCNI", "cniVersion": "0.4.0", "clusterNetwork": "/etc/cni/net.d/10-flannel.conf"},
    )
    cfg = make_cfg(tmp_path, cniVersion="0.4.0")
    assert (
        generate(cfg, primary)
        == (
            f'{{"cniVersion":"0.4.0","name":"multus-cni-network","clusterNetwork":"{primary}",'
            f'"type":"multus-shim",{SOCK_KEY}}}'
        ).encode()
    )


@pytest.mark.parametrize(
    ("primary", "expected"),
    [
        ({"capabilities": {"portMappings": True}}, {"portMappings": True}),
        ({"capabilities": {"portMappings": True, "tuning": True}}, {"portMappings": True, "tuning": True}),
        ({"capabilities": {"portMappings": True, "tuning": False}}, {"portMappings": True}),
        (
            {"plugins": [{"capabilities": {"portMappings": True, "tuning": True}}]},
            {"portMappings": True, "tuning": True},
        ),
        (
            {"plugins": [{"capabilities": {"portMappings": True}}, {"capabilities": {"tuning": True}}]},
            {"portMappings": True, "tuning": True},
        ),
        (
            {"plugins": [{"capabilities": {"portMappings": True}}, {"capabilities": {"tuning": False}}]},
            {"portMappings": True},
        ),
        ({"capabilities": {"portMappings": "yes", "x": 1}}, None),  # non-bool: ignored (Q13 panicked)
    ],
    ids=["one", "two", "false-dropped", "list-one-plugin", "list-two-plugins", "list-false-dropped", "non-bool"],
)
def test_v61_capabilities(tmp_path: Path, primary: dict[str, Any], expected: dict[str, bool] | None) -> None:
    path = write(tmp_path / "net.d" / "10-x.conf", {"cniVersion": "0.4.0", "name": "x", **primary})
    out = json.loads(generate(make_cfg(tmp_path, cniVersion="0.4.0"), path))
    assert out.get("capabilities") == expected
    assert next(iter(out)) == ("capabilities" if expected else "cniVersion")


def test_v62_exact_string_and_override_network_name(tmp_path: Path) -> None:
    primary = write(
        tmp_path / "net.d" / "00-mycni.conf",
        {"cniVersion": "0.4.0", "name": "mycni-name", "type": "mycni", "ipam": {}, "dns": {}},
    )
    plain = make_cfg(tmp_path, cniVersion="0.4.0")
    assert (
        render_once(plain)[1]
        == (
            f'{{"cniVersion":"0.4.0","name":"multus-cni-network","clusterNetwork":"{primary}",'
            f'"type":"multus-shim",{SOCK_KEY}}}'
        ).encode()
    )
    named = make_cfg(tmp_path, cniVersion="0.4.0", overrideNetworkName=True)
    # Unlike upstream's test (which calls the helper directly), the flag stays in the file, as upstream's daemon does.
    assert (
        generate(named, primary)
        == (
            f'{{"cniVersion":"0.4.0","name":"mycni-name","clusterNetwork":"{primary}",'
            f'"type":"multus-shim",{SOCK_KEY},"overrideNetworkName":true}}'
        ).encode()
    )


def test_override_network_name_needs_a_name(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-x.conf", {"cniVersion": "1.0.0", "type": "x"})
    with pytest.raises(ConfigGenError, match="has no name"):
        generate(make_cfg(tmp_path, overrideNetworkName=True), primary)


def test_k3s_flannel_conflist_exact(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-flannel.conflist", K3S_FLANNEL_CONFLIST)
    cfg = make_cfg(tmp_path, cniVersion="1.0.0", logLevel="verbose", logToStderr=True, socketDir="/run/multus/")
    assert (
        generate(cfg, primary)
        == (
            '{"capabilities":{"bandwidth":true,"portMappings":true},"cniVersion":"1.0.0","logLevel":"verbose",'
            f'"logToStderr":true,"name":"multus-cni-network","clusterNetwork":"{primary}",'
            '"type":"multus-shim","daemonSocketPath":"/run/multus/multus-cni-network.sock"}'
        ).encode()
    )


def test_upstream_configmap_example(tmp_path: Path) -> None:
    """§3.3's example: upstream ConfigMap (0.3.1, /host paths) + K3s flannel; plus daemonSocketPath."""
    primary = write(tmp_path / "net.d" / "10-flannel.conflist", K3S_FLANNEL_CONFLIST)
    cfg = make_cfg(
        tmp_path,
        chrootDir="/hostroot",
        cniVersion="0.3.1",
        logLevel="verbose",
        logToStderr=True,
        multusConfigFile="auto",
        socketDir="/host/run/multus/",
    )
    assert (
        generate(cfg, primary)
        == (
            '{"capabilities":{"bandwidth":true,"portMappings":true},"cniVersion":"0.3.1","logLevel":"verbose",'
            f'"logToStderr":true,"name":"multus-cni-network","clusterNetwork":"{primary}","type":"multus-shim",'
            '"daemonSocketPath":"/host/run/multus/multus-cni-network.sock"}'
        ).encode()
    )


def test_every_copied_key_in_upstream_order(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-x.conf", {"cniVersion": "1.0.0", "name": "x", "type": "x"})
    cfg = make_cfg(
        tmp_path,
        binDir="/opt/cni/bin",
        capabilities={"ips": True, "mac": False},
        cniVersion="1.0.0",
        logFile="/var/log/multus.log",
        logLevel="debug",
        logToStderr=False,
        logOptions={"compress": True, "maxAge": 3},
        namespaceIsolation=True,
        globalNamespaces="default,other",
        readinessindicatorfile="/run/flannel/subnet.env",
        type="my-shim",
        cniDir="/var/lib/cni/multus",
        forceCNIVersion=False,
        auxiliaryCNIChainName="aux",
        daemonSocketDir="/run/multus",
        socketPath="/run/multus/x.sock",
        daemonReadyTimeout=30,
    )
    assert (
        generate(cfg, primary)
        == (
            '{"binDir":"/opt/cni/bin","capabilities":{"ips":true},"cniVersion":"1.0.0",'
            '"logFile":"/var/log/multus.log","logLevel":"debug","logOptions":{"maxAge":3,"compress":true},'
            f'"name":"multus-cni-network","clusterNetwork":"{primary}","namespaceIsolation":true,'
            '"globalNamespaces":"default,other","type":"my-shim","cniDir":"/var/lib/cni/multus",'
            '"auxiliaryCNIChainName":"aux","daemonSocketDir":"/run/multus","daemonSocketPath":"/run/multus/x.sock",'
            '"daemonReadyTimeout":30}'
        ).encode()
    )


def test_q4_fixed_capabilities_recomputed_from_current_primary(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-flannel.conflist", K3S_FLANNEL_CONFLIST)
    cfg = make_cfg(tmp_path, capabilities={"ips": True})
    assert json.loads(generate(cfg, primary))["capabilities"] == {"bandwidth": True, "ips": True, "portMappings": True}
    conf = json.loads(K3S_FLANNEL_CONFLIST)
    del conf["plugins"][2]  # bandwidth plugin removed
    write(primary, conf)
    assert json.loads(generate(cfg, primary))["capabilities"] == {"ips": True, "portMappings": True}


def test_v65_version_error_text(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-x.conf", {"cniVersion": "0.3.1", "name": "x", "type": "x"})
    with pytest.raises(ConfigGenError) as err:
        generate(make_cfg(tmp_path, cniVersion="0.4.0"), primary)
    assert str(err.value) == (
        "failed to load the primary CNI configuration as a multus delegate with error "
        "'delegate cni version is 0.3.1 while top level cni version is 0.4.0'"
    )


@pytest.mark.parametrize(
    ("multus", "delegate", "error"),
    [
        ("0.3.1", "0.1.0", None),  # below 0.4.0: no check
        ("1.0.0", "1.0.0", None),
        ("1.0.0", "0.4.0", None),
        ("1.0.0", None, "couldn't get cni version of delegate"),
        ("1.0.0", 1, "couldn't get cni version of delegate"),
        ("1.0.0", "1.0", "is not a semantic version"),
        ("1.0", "1.0.0", "couldn't get top level cni version"),
    ],
)
def test_version_compatibility(tmp_path: Path, multus: str, delegate: Any, error: str | None) -> None:
    conf: dict[str, Any] = {"name": "x", "type": "x"}
    if delegate is not None:
        conf["cniVersion"] = delegate
    primary = write(tmp_path / "net.d" / "10-x.conf", conf)
    cfg = make_cfg(tmp_path, cniVersion=multus)
    if error is None:
        generate(cfg, primary)
    else:
        with pytest.raises(ConfigGenError, match=error):
            generate(cfg, primary)


def test_force_cni_version_check_uses_multus_version(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-x.conf", {"cniVersion": "0.3.1", "name": "x", "type": "x"})
    generate(make_cfg(tmp_path, cniVersion="1.0.0", forceCNIVersion=True), primary)


@pytest.mark.parametrize("text", ["", "{", '{"cniVersion":"1.0.0","na', "[]", "null", "\xff"])
def test_q3_fixed_unparsable_primary_raises(tmp_path: Path, text: str) -> None:
    primary = write(tmp_path / "net.d" / "10-flannel.conflist", text)
    with pytest.raises(PrimaryUnreadableError):
        generate(make_cfg(tmp_path), primary)


def test_go_html_escaping(tmp_path: Path) -> None:
    primary = write(tmp_path / "net.d" / "10-a&b.conf", {"cniVersion": "1.0.0", "name": "x", "type": "x"})
    assert b'10-a\\u0026b.conf"' in generate(make_cfg(tmp_path), primary)


# ---------------------------------------------------------------------------------- forceCNIVersion


def test_v63_force_cni_version_rewrites_atomically_keeping_mode(tmp_path: Path) -> None:
    primary = write(tmp_path / "10-x.conf", {"name": "x", "cniVersion": "0.4.0", "type": "x"})
    os.chmod(primary, 0o640)
    inode = primary.stat().st_ino
    assert force_cni_version(primary, "1.1.1") is True
    obj = json.loads(primary.read_text())
    assert obj == {"name": "x", "cniVersion": "1.1.1", "type": "x"}
    assert list(obj) == ["name", "cniVersion", "type"]
    assert stat.S_IMODE(primary.stat().st_mode) == 0o640
    assert primary.stat().st_ino != inode  # replaced by rename, never truncated in place
    assert force_cni_version(primary, "1.1.1") is False  # no rewrite when already right


# ---------------------------------------------------------------------------------- exit policy


class Answer:
    """A ``daemonset_gone`` stand-in: a fixed answer or an exception, counting its calls."""

    def __init__(self, result: bool | BaseException) -> None:
        self.result = result
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.mark.parametrize(
    ("policy", "answer", "removed", "asked"),
    [
        ("always", Answer(False), True, 0),
        ("never", Answer(True), False, 0),
        ("auto", Answer(True), True, 1),
        ("auto", Answer(False), False, 1),
        ("auto", Answer(ConnectionRefusedError("api down")), False, 1),
    ],
    ids=["always", "never", "auto-daemonset-gone", "auto-restart", "auto-api-unreachable"],
)
async def test_cleanup_policy(tmp_path: Path, policy: str, answer: Answer, removed: bool, asked: int) -> None:
    cfg = make_cfg(tmp_path)
    manager = ConfigManager(cfg)
    write(manager.target, "{}")
    assert await manager.cleanup_on_exit(policy, answer) is removed
    assert manager.target.exists() is not removed
    assert answer.calls == asked


async def test_cleanup_auto_keeps_file_when_the_question_hangs(tmp_path: Path) -> None:
    manager = ConfigManager(make_cfg(tmp_path))
    write(manager.target, "{}")

    async def never_answers() -> bool:
        import asyncio

        await asyncio.Event().wait()
        return True

    assert await manager.cleanup_on_exit("auto", never_answers, timeout=0.01) is False
    assert manager.target.exists()


async def test_cleanup_never_removes_the_users_own_file(tmp_path: Path) -> None:
    own = write(tmp_path / "net.d" / "05-mine.conf", {"cniVersion": "1.0.0", "name": "m", "type": "x"})
    manager = ConfigManager(make_cfg(tmp_path, multusConfigFile=str(own)))
    assert manager.target == own
    assert await manager.cleanup_on_exit("always", Answer(True)) is False
    assert own.exists()


def test_render_once_non_auto_mode_copies_bytes(tmp_path: Path) -> None:
    text = '{"cniVersion": "1.0.0", "name": "m", "type": "multus-shim"}\n'
    own = write(tmp_path / "conf" / "multus.conf", text)
    target, content = render_once(make_cfg(tmp_path, multusConfigFile=str(own)))
    assert target == tmp_path / "net.d" / "multus.conf"
    assert content == text.encode()


# ---------------------------------------------------------------------------------- CLI


def write_daemon_config(tmp_path: Path, **keys: Any) -> Path:
    doc = {"cniConfigDir": str(tmp_path / "net.d"), "multusAutoconfigDir": str(tmp_path / "net.d"), **keys}
    return write(tmp_path / "daemon-config.json", doc)


def test_cli_generate_config_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multusd.cli import main

    primary = write(tmp_path / "net.d" / "10-flannel.conflist", K3S_FLANNEL_CONFLIST)
    config = write_daemon_config(tmp_path, socketPath=SOCKET)
    assert main(["generate-config", "--config", str(config), "--stdout"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("}\n")
    assert json.loads(out)["clusterNetwork"] == str(primary)
    assert not (tmp_path / "net.d" / "00-multus.conf").exists()


def test_cli_generate_config_writes_once(tmp_path: Path) -> None:
    from multusd.cli import main

    primary = write(tmp_path / "net.d" / "10-flannel.conflist", K3S_FLANNEL_CONFLIST)
    config = write_daemon_config(tmp_path)
    assert main(["generate-config", "--config", str(config)]) == 0
    target = tmp_path / "net.d" / "00-multus.conf"
    assert target.read_bytes() == generate(make_cfg(tmp_path), primary)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_cli_generate_config_without_primary_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multusd.cli import main

    (tmp_path / "net.d").mkdir()
    config = write_daemon_config(tmp_path)
    assert main(["generate-config", "--config", str(config)]) == 2
    assert "could not find a plugin configuration in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "primary",
    [
        {"cniVersion": "1.0.0", "name": "m", "type": "multus-shim"},
        {"cniVersion": "1.0.0", "name": "m", "type": "multus"},
        {"cniVersion": "1.0.0", "name": "m", "plugins": [{"type": "multus-shim"}]},
    ],
    ids=["shim", "thin", "in-list"],
)
def test_never_nests_a_multus_config(tmp_path: Path, primary: dict[str, Any]) -> None:
    path = write(tmp_path / "net.d" / "10-x.conf", primary)
    with pytest.raises(ConfigGenError, match="is a multus config itself"):
        generate(make_cfg(tmp_path), path)
