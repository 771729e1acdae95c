"""The test CNI plugins in tests/plugins behave as tests/plugins/README.md says.

Each plugin is run as a real subprocess with CNI env and stdin. The flannel stand-in is
also run for real, delegating to Debian's bridge + host-local inside a "node" network
namespace, with a pod namespace beside it.
"""

import ipaddress
import itertools
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PLUGINS_DIR = Path(__file__).resolve().parent.parent / "plugins"
SYSTEM_CNI_DIR = "/usr/lib/cni"
ALL_SPEC_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
PLUGIN_TIMEOUT_SECONDS = 20

# What K3s writes: /run/flannel/subnet.env on a node with podCIDR 10.42.0.0/24.
K3S_SUBNET_ENV = "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
# The flannel entry of K3s's 10-flannel.conflist, as libcni hands it to the plugin.
K3S_FLANNEL_CONF: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "cbr0",
    "type": "flannel",
    "delegate": {"hairpinMode": True, "forceAddress": True, "isDefaultGateway": True},
}


def needs_root(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as root-only; skip it, saying why, when not root."""
    test = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")(test)
    return pytest.mark.root(test)


def run_plugin(
    plugin: str,
    command: str,
    conf: dict[str, Any] | None = None,
    *,
    stdin: bytes | None = None,
    container_id: str = "ctr-1",
    netns: str = "/run/netns/pod-does-not-matter",
    ifname: str = "eth0",
    args: str = "",
    path: str = f"{PLUGINS_DIR}:{SYSTEM_CNI_DIR}",
    in_netns: str | None = None,
    timeout: float = PLUGIN_TIMEOUT_SECONDS,
    plugin_dir: Path = PLUGINS_DIR,
) -> subprocess.CompletedProcess[bytes]:
    """Run one plugin as libcni does: CNI_* env, the conf on stdin; optionally inside a netns."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command}
    for key, value in (
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
        ("CNI_PATH", path),
    ):
        if value:
            env[key] = value
    argv = [str(plugin_dir / plugin)]
    if in_netns is not None:
        argv = ["nsenter", f"--net=/run/netns/{in_netns}", "--", *argv]
    data = stdin if stdin is not None else json.dumps(conf or {}).encode()
    return subprocess.run(argv, input=data, capture_output=True, env=env, timeout=timeout, check=False)


def parse_ok(proc: subprocess.CompletedProcess[bytes]) -> Any:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def parse_error(proc: subprocess.CompletedProcess[bytes]) -> Any:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                children.append(int(entry.name))
    return children


def recorder_conf(record_file: Path, **keys: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "testnet",
        "type": "cni-recorder",
        "recordFile": str(record_file),
        **keys,
    }


# --- files ------------------------------------------------------------------------------------------

PLUGIN_NAMES = ["cni-hang", "cni-crash", "cni-garbage", "cni-slow", "cni-recorder", "flannel"]


@pytest.mark.parametrize("name", PLUGIN_NAMES)
def test_plugin_is_an_executable_python3_script(name: str) -> None:
    path = PLUGINS_DIR / name
    assert path.read_text().startswith("#!/usr/bin/python3\n")
    assert path.stat().st_mode & 0o777 == 0o755


# --- cni-hang, cni-crash, cni-garbage ------------------------------------------------------------


def test_hang_never_answers_spawns_nothing_and_dies_by_its_pid() -> None:
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c",
        "CNI_NETNS": "/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/x",
    }
    proc = subprocess.Popen(
        [PLUGINS_DIR / "cni-hang"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(b'{"cniVersion":"1.0.0","name":"n","type":"cni-hang"}', timeout=1)
        assert children_of(proc.pid) == []
    finally:
        proc.kill()
        stdout, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert stdout == b""


def test_crash_exits_3_with_empty_stdout_and_a_stderr_message() -> None:
    proc = run_plugin("cni-crash", "ADD", {"cniVersion": "1.0.0", "name": "n", "type": "cni-crash"})
    assert (proc.returncode, proc.stdout) == (3, b"")
    assert b"cni-crash: boom" in proc.stderr


def test_crash_kind_signal_dies_of_sigsegv() -> None:
    proc = run_plugin("cni-crash", "ADD", {"name": "n", "type": "cni-crash", "crashKind": "signal"})
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout == b""


@pytest.mark.parametrize(("exit_zero", "returncode"), [(False, 1), (True, 0)], ids=["exit-1", "exit-0"])
def test_garbage_prints_unparsable_stdout(exit_zero: bool, returncode: int) -> None:
    proc = run_plugin("cni-garbage", "ADD", {"name": "n", "type": "cni-garbage", "exitZero": exit_zero})
    assert proc.returncode == returncode
    assert proc.stdout.strip()
    with pytest.raises(ValueError):
        json.loads(proc.stdout)
    assert proc.stderr.strip()


# --- cni-recorder -------------------------------------------------------------------------------------


def test_recorder_appends_one_line_per_invocation(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    conf = recorder_conf(record, ip="10.1.0.5/24")
    run_plugin("cni-recorder", "ADD", conf, netns="/run/netns/p1", ifname="net1", args="IgnoreUnknown=1;A=b")
    run_plugin("cni-recorder", "DEL", conf, netns="", ifname="net1")
    calls = read_records(record)
    assert calls == [
        {
            "command": "ADD",
            "containerID": "ctr-1",
            "netns": "/run/netns/p1",
            "ifname": "net1",
            "args": "IgnoreUnknown=1;A=b",
            "path": f"{PLUGINS_DIR}:{SYSTEM_CNI_DIR}",
            "stdin": conf,
        },
        {
            "command": "DEL",
            "containerID": "ctr-1",
            "netns": "",
            "ifname": "net1",
            "args": "",
            "path": f"{PLUGINS_DIR}:{SYSTEM_CNI_DIR}",
            "stdin": conf,
        },
    ]


def test_recorder_takes_record_file_from_cni_args(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "cni-recorder"}
    run_plugin("cni-recorder", "ADD", conf, args=f"IgnoreUnknown=1;RECORD_FILE={record}")
    assert [call["command"] for call in read_records(record)] == ["ADD"]


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS, ids=[f"[{v}]" for v in ALL_SPEC_VERSIONS])
def test_recorder_default_result_in_the_conf_version(tmp_path: Path, version: str) -> None:
    conf = recorder_conf(tmp_path / "r", cniVersion=version, ip=["10.1.0.5/24", "fd00::5/64"])
    result = parse_ok(run_plugin("cni-recorder", "ADD", conf, netns="/run/netns/p1", ifname="net1"))
    assert result["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert result == {"cniVersion": version, "ip4": {"ip": "10.1.0.5/24"}, "ip6": {"ip": "fd00::5/64"}}
        return
    assert result["interfaces"] == [{"name": "net1", "sandbox": "/run/netns/p1"}]
    addresses = [(ip["address"], ip["interface"], ip.get("version")) for ip in result["ips"]]
    if version.startswith("0."):
        assert addresses == [("10.1.0.5/24", 0, "4"), ("fd00::5/64", 0, "6")]
    else:
        assert addresses == [("10.1.0.5/24", 0, None), ("fd00::5/64", 0, None)]


def test_recorder_prints_the_scripted_result_verbatim(tmp_path: Path) -> None:
    scripted = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "192.0.2.9/24"}], "dns": {}}
    result = parse_ok(run_plugin("cni-recorder", "ADD", recorder_conf(tmp_path / "r", result=scripted)))
    assert result == scripted


def test_recorder_passes_prev_result_through(tmp_path: Path) -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": [{"address": "10.42.0.7/24"}]}
    result = parse_ok(run_plugin("cni-recorder", "ADD", recorder_conf(tmp_path / "r", prevResult=prev)))
    assert result == prev


def test_recorder_fails_every_command_with_the_scripted_error(tmp_path: Path) -> None:
    error = {"code": 11, "msg": "try again later", "details": "scripted"}
    conf = recorder_conf(tmp_path / "r", cniVersion="1.1.0", error=error)
    for command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        assert parse_error(run_plugin("cni-recorder", command, conf)) == {**error, "cniVersion": "1.1.0"}
    assert parse_ok(run_plugin("cni-recorder", "VERSION", conf))["cniVersion"] == "1.1.0"


def test_recorder_error_on_fails_only_the_listed_commands(tmp_path: Path) -> None:
    record = tmp_path / "r"
    conf = recorder_conf(record, error={"code": 7, "msg": "no"}, errorOn=["DEL"])
    assert run_plugin("cni-recorder", "ADD", conf).returncode == 0
    assert parse_error(run_plugin("cni-recorder", "DEL", conf))["code"] == 7
    assert run_plugin("cni-recorder", "CHECK", conf).returncode == 0
    assert [call["command"] for call in read_records(record)] == ["ADD", "DEL", "CHECK"]


def test_recorder_error_file_fails_while_it_holds_an_error(tmp_path: Path) -> None:
    error_file = tmp_path / "error.json"
    conf = recorder_conf(tmp_path / "r", errorFile=str(error_file), errorOn=["DEL"])
    assert run_plugin("cni-recorder", "DEL", conf).returncode == 0
    error_file.write_text('{"code": 999, "msg": "DEL broke"}')
    assert parse_error(run_plugin("cni-recorder", "DEL", conf))["msg"] == "DEL broke"
    assert run_plugin("cni-recorder", "ADD", conf).returncode == 0
    error_file.write_text("")
    assert run_plugin("cni-recorder", "DEL", conf).returncode == 0


def test_recorder_status_follows_the_status_file(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    conf = recorder_conf(tmp_path / "r", cniVersion="1.1.0", statusFile=str(status_file))
    proc = run_plugin("cni-recorder", "STATUS", conf, container_id="", netns="", ifname="")
    assert (proc.returncode, proc.stdout) == (0, b"")
    status_file.write_text('{"code": 50, "msg": "status failed"}')
    failed = run_plugin("cni-recorder", "STATUS", conf, container_id="", netns="", ifname="")
    assert parse_error(failed) == {"code": 50, "msg": "status failed", "cniVersion": "1.1.0"}
    assert run_plugin("cni-recorder", "ADD", conf).returncode == 0
    status_file.unlink()
    assert run_plugin("cni-recorder", "STATUS", conf, container_id="", netns="", ifname="").returncode == 0


def test_recorder_gc_records_the_valid_attachments(tmp_path: Path) -> None:
    record = tmp_path / "r"
    attachments = [{"containerID": "ctr-1", "ifname": "net1"}]
    conf = recorder_conf(record, cniVersion="1.1.0", **{"cni.dev/valid-attachments": attachments})
    proc = run_plugin("cni-recorder", "GC", conf, container_id="", netns="", ifname="")
    assert (proc.returncode, proc.stdout) == (0, b"")
    [call] = read_records(record)
    assert call["command"] == "GC"
    assert call["stdin"]["cni.dev/valid-attachments"] == attachments


@pytest.mark.parametrize(
    ("command", "version", "msg"),
    [
        ("CHECK", "0.3.1", "config version does not allow CHECK"),
        ("GC", "1.0.0", "config version does not allow GC"),
        ("STATUS", "1.0.0", "config version does not allow STATUS"),
    ],
)
def test_recorder_refuses_commands_the_conf_version_lacks(tmp_path: Path, command: str, version: str, msg: str) -> None:
    error = parse_error(run_plugin("cni-recorder", command, recorder_conf(tmp_path / "r", cniVersion=version)))
    assert (error["code"], error["msg"]) == (1, msg)


def test_recorder_refuses_an_unsupported_conf_version(tmp_path: Path) -> None:
    conf = recorder_conf(tmp_path / "r", cniVersion="1.1.0", supportedVersions=["0.3.1", "1.0.0"])
    error = parse_error(run_plugin("cni-recorder", "ADD", conf))
    assert (error["code"], error["msg"]) == (1, "incompatible CNI versions")


def test_recorder_requires_env_like_skel(tmp_path: Path) -> None:
    error = parse_error(run_plugin("cni-recorder", "ADD", recorder_conf(tmp_path / "r"), netns=""))
    assert error["code"] == 4
    assert error["msg"] == "required env variables [CNI_NETNS] missing"
    assert run_plugin("cni-recorder", "DEL", recorder_conf(tmp_path / "r"), netns="").returncode == 0


def test_recorder_requires_a_network_name(tmp_path: Path) -> None:
    conf = recorder_conf(tmp_path / "r")
    del conf["name"]
    assert parse_error(run_plugin("cni-recorder", "ADD", conf))["code"] == 7


def test_recorder_version_lists_every_spec_version() -> None:
    info = parse_ok(run_plugin("cni-recorder", "VERSION", stdin=b'{"cniVersion":"1.1.0"}'))
    assert info == {"cniVersion": "1.1.0", "supportedVersions": ALL_SPEC_VERSIONS}


def test_recorder_copy_takes_defaults_from_its_json_file(tmp_path: Path) -> None:
    (tmp_path / "old-plugin").symlink_to(PLUGINS_DIR / "cni-recorder")
    (tmp_path / "old-plugin.json").write_text('{"supportedVersions": ["0.3.0", "0.3.1"]}')
    info = parse_ok(run_plugin("old-plugin", "VERSION", stdin=b'{"cniVersion":"1.0.0"}', plugin_dir=tmp_path))
    assert info == {"cniVersion": "0.3.1", "supportedVersions": ["0.3.0", "0.3.1"]}
    conf = recorder_conf(tmp_path / "r", type="old-plugin")
    assert parse_error(run_plugin("old-plugin", "ADD", conf, plugin_dir=tmp_path))["code"] == 1


def test_slow_sleeps_before_recording_and_answering(tmp_path: Path) -> None:
    record = tmp_path / "r"
    conf = recorder_conf(record, type="cni-slow", sleepSeconds=60)
    with pytest.raises(subprocess.TimeoutExpired):
        run_plugin("cni-slow", "ADD", conf, timeout=1)
    assert read_records(record) == []

    result = parse_ok(run_plugin("cni-slow", "ADD", {**conf, "sleepSeconds": 0.05, "ip": "10.9.0.2/16"}))
    assert [ip["address"] for ip in result["ips"]] == ["10.9.0.2/16"]
    assert [call["command"] for call in read_records(record)] == ["ADD"]


# --- flannel, delegating to a recorder -------------------------------------------------------------


@pytest.fixture
def subnet_env(tmp_path: Path) -> Path:
    path = tmp_path / "subnet.env"
    path.write_text(K3S_SUBNET_ENV)
    return path


@pytest.fixture
def fake_bridge_dir(tmp_path: Path) -> Path:
    """A CNI dir whose "bridge" is cni-recorder, recording to <dir>/bridge.jsonl."""
    directory = tmp_path / "fake-bin"
    directory.mkdir()
    (directory / "bridge").symlink_to(PLUGINS_DIR / "cni-recorder")
    (directory / "bridge.json").write_text(json.dumps({"recordFile": str(directory / "bridge.jsonl")}))
    return directory


def flannel_conf(subnet_env: Path, data_dir: Path, **keys: Any) -> dict[str, Any]:
    return {**K3S_FLANNEL_CONF, "subnetFile": str(subnet_env), "dataDir": str(data_dir), **keys}


def test_flannel_builds_the_delegate_conf_as_flannel_does(
    tmp_path: Path, subnet_env: Path, fake_bridge_dir: Path
) -> None:
    data_dir = tmp_path / "flannel"
    conf = flannel_conf(subnet_env, data_dir, ipam={"dataDir": "/tmp/ipam", "routes": [{"dst": "192.0.2.0/24"}]})
    path = f"{fake_bridge_dir}:{PLUGINS_DIR}"
    result = parse_ok(run_plugin("flannel", "ADD", conf, container_id="ctr-9", path=path))
    expected = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "bridge",
        "hairpinMode": True,
        "forceAddress": True,
        "isDefaultGateway": True,
        "isGateway": True,
        "ipMasq": False,
        "mtu": 1450,
        "ipam": {
            "type": "host-local",
            "dataDir": "/tmp/ipam",
            "ranges": [[{"subnet": "10.42.0.0/24"}]],
            "routes": [{"dst": "192.0.2.0/24"}, {"dst": "10.42.0.0/16"}],
        },
    }
    [call] = read_records(fake_bridge_dir / "bridge.jsonl")
    assert call["stdin"] == expected
    assert (call["command"], call["containerID"], call["path"]) == ("ADD", "ctr-9", path)
    assert json.loads((data_dir / "ctr-9").read_text()) == expected
    assert (data_dir / "ctr-9").stat().st_mode & 0o777 == 0o600
    assert result["interfaces"] == [{"name": "eth0", "sandbox": "/run/netns/pod-does-not-matter"}]


def test_flannel_ipmasq_false_makes_the_bridge_masquerade(
    tmp_path: Path, subnet_env: Path, fake_bridge_dir: Path
) -> None:
    subnet_env.write_text(K3S_SUBNET_ENV.replace("FLANNEL_IPMASQ=true", "FLANNEL_IPMASQ=false"))
    conf = flannel_conf(subnet_env, tmp_path / "flannel", delegate={"type": "bridge", "isGateway": False})
    parse_ok(run_plugin("flannel", "ADD", conf, path=str(fake_bridge_dir)))
    [call] = read_records(fake_bridge_dir / "bridge.jsonl")
    assert (call["stdin"]["ipMasq"], call["stdin"]["isGateway"]) == (True, False)


def test_flannel_hands_its_runtime_config_to_the_delegate(
    tmp_path: Path, subnet_env: Path, fake_bridge_dir: Path
) -> None:
    runtime_config = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    conf = flannel_conf(subnet_env, tmp_path / "flannel", runtimeConfig=runtime_config)
    parse_ok(run_plugin("flannel", "ADD", conf, path=str(fake_bridge_dir)))
    [call] = read_records(fake_bridge_dir / "bridge.jsonl")
    assert call["stdin"]["runtimeConfig"] == runtime_config


def test_flannel_del_runs_the_saved_conf_once(tmp_path: Path, subnet_env: Path) -> None:
    record = tmp_path / "delegate.jsonl"
    data_dir = tmp_path / "flannel"
    conf = flannel_conf(subnet_env, data_dir, delegate={"type": "cni-recorder", "recordFile": str(record)})
    parse_ok(run_plugin("flannel", "ADD", conf))
    saved = json.loads((data_dir / "ctr-1").read_text())

    for _ in range(2):  # containerd sends DEL twice, the second without a netns
        proc = run_plugin("flannel", "DEL", conf, netns="")
        assert (proc.returncode, proc.stdout) == (0, b"")
    calls = read_records(record)
    assert [call["command"] for call in calls] == ["ADD", "DEL"]
    assert calls[1]["stdin"] == saved
    assert not (data_dir / "ctr-1").exists()


def test_flannel_passes_the_delegate_error_through(tmp_path: Path, subnet_env: Path) -> None:
    delegate = {"type": "cni-recorder", "error": {"code": 11, "msg": "bridge is busy", "details": "d"}}
    conf = flannel_conf(subnet_env, tmp_path / "flannel", delegate=delegate)
    assert parse_error(run_plugin("flannel", "ADD", conf)) == {
        "code": 11,
        "msg": "bridge is busy",
        "details": "d",
    }


def test_flannel_removes_the_saved_conf_even_when_the_delegate_del_fails(tmp_path: Path, subnet_env: Path) -> None:
    data_dir = tmp_path / "flannel"
    delegate = {"type": "cni-recorder", "error": {"code": 11, "msg": "DEL failed"}, "errorOn": ["DEL"]}
    conf = flannel_conf(subnet_env, data_dir, delegate=delegate)
    parse_ok(run_plugin("flannel", "ADD", conf))
    assert parse_error(run_plugin("flannel", "DEL", conf))["msg"] == "DEL failed"
    assert not (data_dir / "ctr-1").exists()


def test_flannel_without_subnet_env_fails_like_flannel(tmp_path: Path) -> None:
    conf = flannel_conf(tmp_path / "missing.env", tmp_path / "flannel")
    error = parse_error(run_plugin("flannel", "ADD", conf))
    assert error["code"] == 999
    assert error["msg"].startswith("failed to load flannel 'subnet.env' file: open ")
    assert "no such file or directory" in error["msg"]
    assert not (tmp_path / "flannel").exists()


def test_flannel_names_the_missing_subnet_env_keys(tmp_path: Path, subnet_env: Path) -> None:
    subnet_env.write_text("FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\n")
    error = parse_error(run_plugin("flannel", "ADD", flannel_conf(subnet_env, tmp_path / "flannel")))
    assert error["msg"].endswith(
        f"{subnet_env} is missing FLANNEL_MTU, FLANNEL_IPMASQ. Check the flannel pod log for this node."
    )


def test_flannel_refuses_a_delegate_ipam(tmp_path: Path, subnet_env: Path) -> None:
    conf = flannel_conf(subnet_env, tmp_path / "flannel", delegate={"ipam": {"type": "static"}})
    assert "must not have 'ipam' field" in parse_error(run_plugin("flannel", "ADD", conf))["msg"]


def test_flannel_check_gc_status_succeed_without_delegating(tmp_path: Path, subnet_env: Path) -> None:
    record = tmp_path / "delegate.jsonl"
    conf = flannel_conf(
        subnet_env,
        tmp_path / "flannel",
        cniVersion="1.1.0",
        delegate={"type": "cni-recorder", "recordFile": str(record)},
    )
    assert run_plugin("flannel", "CHECK", conf).returncode == 0
    assert run_plugin("flannel", "GC", conf, container_id="", netns="", ifname="").returncode == 0
    assert run_plugin("flannel", "STATUS", conf, container_id="", netns="", ifname="").returncode == 0
    assert read_records(record) == []


# --- flannel for real: bridge + host-local in a node namespace ------------------------------------


@pytest.fixture
def netns() -> Iterator[Callable[[str], str]]:
    """Factory: netns("node") creates a uniquely named network namespace; all are deleted afterwards."""
    made: list[str] = []
    counter = itertools.count()

    def make(role: str) -> str:
        name = f"mt-{role}-{os.getpid()}-{next(counter)}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def ip_json(*args: str) -> Any:
    return json.loads(subprocess.run(["ip", "-j", *args], check=True, capture_output=True).stdout or b"[]")


def link_exists(ns: str, name: str) -> bool:
    return subprocess.run(["ip", "-n", ns, "link", "show", name], capture_output=True).returncode == 0


def node_nat_rules(node: str) -> str:
    cmd = ["ip", "netns", "exec", node, "iptables-save", "-t", "nat"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@needs_root
@pytest.mark.parametrize("flannel_ipmasq", ["true", "false"], ids=["flannel-masq", "bridge-masq"])
def test_flannel_add_and_del_wire_a_pod_through_the_real_bridge(
    tmp_path: Path, subnet_env: Path, netns: Callable[[str], str], flannel_ipmasq: str
) -> None:
    subnet_env.write_text(K3S_SUBNET_ENV.replace("FLANNEL_IPMASQ=true", f"FLANNEL_IPMASQ={flannel_ipmasq}"))
    node, pod = netns("node"), netns("pod")
    data_dir, ipam_dir = tmp_path / "flannel", tmp_path / "ipam"
    conf = flannel_conf(subnet_env, data_dir, ipam={"dataDir": str(ipam_dir)})
    call = {
        "container_id": "ctr-real",
        "netns": f"/run/netns/{pod}",
        "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
        "in_netns": node,
    }

    result = parse_ok(run_plugin("flannel", "ADD", conf, **call))
    [ip] = result["ips"]
    address = ipaddress.ip_interface(ip["address"])
    assert address.network == ipaddress.ip_network("10.42.0.0/24")
    assert address.ip != ipaddress.ip_address("10.42.0.1")  # the gateway, on cni0
    [eth0] = ip_json("-n", pod, "addr", "show", "eth0")
    assert eth0["mtu"] == 1450
    assert [f"{a['local']}/{a['prefixlen']}" for a in eth0["addr_info"] if a["family"] == "inet"] == [str(address)]
    routes = {route["dst"] for route in ip_json("-n", pod, "route", "show")}
    assert {"default", "10.42.0.0/16"} <= routes
    [cni0] = ip_json("-n", node, "addr", "show", "cni0")
    assert "10.42.0.1" in [a["local"] for a in cni0["addr_info"]]
    reservation = ipam_dir / "cbr0" / str(address.ip)
    assert reservation.read_text().startswith("ctr-real")
    assert (data_dir / "ctr-real").exists()
    masquerading = f"-s {address.ip}/32" in node_nat_rules(node)
    assert masquerading == (flannel_ipmasq == "false")  # the bridge masquerades when flannel does not

    proc = run_plugin("flannel", "DEL", conf, **call)
    assert (proc.returncode, proc.stdout) == (0, b""), proc.stderr
    assert not link_exists(pod, "eth0")
    assert not reservation.exists()
    assert not (data_dir / "ctr-real").exists()
    assert f"-s {address.ip}/32" not in node_nat_rules(node)
