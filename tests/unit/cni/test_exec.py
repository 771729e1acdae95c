"""Plugin lookup and execution, with the real test plugins in tests/plugins."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from multusd.cni.errors import CniCode, CniError
from multusd.cni.exec import (
    CHROOT_BINARY,
    ExecArgs,
    PluginExecutor,
    SubprocessRunner,
    find_in_path,
    parse_plugin_info,
    parse_result,
    resolve_in_root,
)

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KEEP_ME": "yes", "CNI_COMMAND": "stale", "CNI_ARGS": "stale"}
ADD = ExecArgs(
    command="ADD",
    container_id="ctr1",
    netns="/var/run/netns/pod1",
    ifname="net1",
    args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0")),
)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def conf(record: Path, **extra: Any) -> bytes:
    return json.dumps(
        {"cniVersion": "1.0.0", "name": "net", "type": "cni-recorder", "recordFile": str(record), **extra}
    ).encode()


def executor(*dirs: str | Path, **kwargs: Any) -> PluginExecutor:
    kwargs.setdefault("base_env", BASE_ENV)
    kwargs.setdefault("timeout_seconds", 10.0)
    return PluginExecutor([str(d) for d in (dirs or (PLUGINS,))], **kwargs)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


class RecordingRunner:
    """In-memory runner double: records argv/env and answers from a script of outcomes."""

    def __init__(self, outcomes: Sequence[tuple[int, bytes, bytes] | BaseException]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[list[str], bytes, dict[str, str], float]] = []

    async def run(
        self, argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes, bytes]:
        self.calls.append((list(argv), stdin, dict(env), timeout))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


# -- lookup --------------------------------------------------------------------------------------


def make_exe(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_first_regular_file_in_dir_order_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_exe(b / "macvlan")
    (a / "macvlan").mkdir(parents=True)  # a directory is not a plugin
    assert find_in_path("macvlan", [str(a), str(b)]) == str(b / "macvlan")
    make_exe(a / "real")
    (a / "macvlan").rmdir()
    (a / "macvlan").symlink_to(a / "real")  # symlinks are followed, the link path is returned
    assert find_in_path("macvlan", [str(a), str(b)]) == str(a / "macvlan")


def test_dangling_symlinks_and_fifos_are_skipped(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "flannel").symlink_to("/nonexistent/bin/cni")
    os.mkfifo(a / "bridge")
    make_exe(b / "flannel")
    make_exe(b / "bridge")
    assert find_in_path("flannel", [str(a), str(b)]) == str(b / "flannel")
    assert find_in_path("bridge", [str(a), str(b)]) == str(b / "bridge")


def test_lookup_errors_use_libcni_texts(tmp_path: Path) -> None:
    with pytest.raises(CniError) as exc:
        find_in_path("nope", [str(tmp_path / "a"), str(tmp_path / "b")])
    assert exc.value.msg == f'failed to find plugin "nope" in path [{tmp_path}/a {tmp_path}/b]'
    with pytest.raises(CniError, match=re.escape("invalid plugin name: ../bin/sh")):
        find_in_path("../bin/sh", [str(tmp_path)])
    with pytest.raises(CniError, match="no plugin name provided"):
        find_in_path("", [str(tmp_path)])
    with pytest.raises(CniError, match="no paths provided"):
        find_in_path("x", [])


@pytest.fixture
def k3s_root(tmp_path: Path) -> Path:
    """A tmp "host root" shaped like K3s: absolute symlinks into a hash dir."""
    root = tmp_path / "host"
    data = root / "var/lib/rancher/k3s/data"
    make_exe(data / "abc123/bin/cni")
    (data / "current").symlink_to("/var/lib/rancher/k3s/data/abc123")
    (data / "cni").mkdir()
    (data / "cni/flannel").symlink_to("/var/lib/rancher/k3s/data/abc123/bin/cni")
    (data / "cni/bridge").symlink_to("/var/lib/rancher/k3s/data/current/bin/cni")  # two hops
    (data / "cni/portmap").symlink_to("../abc123/bin/cni")  # relative
    (data / "cni/escape").symlink_to("../../../../../../../../var/lib/rancher/k3s/data/abc123/bin/cni")
    (data / "cni/loop").symlink_to("/var/lib/rancher/k3s/data/cni/loop")
    (data / "cni/dangling").symlink_to("/var/lib/rancher/k3s/data/old/bin/cni")
    return root


def test_resolve_in_root_follows_absolute_links_relative_to_the_root(k3s_root: Path) -> None:
    target = str(k3s_root / "var/lib/rancher/k3s/data/abc123/bin/cni")
    for name in ("flannel", "bridge", "portmap", "escape"):
        assert resolve_in_root(str(k3s_root), f"/var/lib/rancher/k3s/data/cni/{name}") == target
    with pytest.raises(OSError) as exc:
        resolve_in_root(str(k3s_root), "/var/lib/rancher/k3s/data/cni/loop")
    assert exc.value.errno == 40  # ELOOP
    with pytest.raises(FileNotFoundError):
        resolve_in_root(str(k3s_root), "/var/lib/rancher/k3s/data/cni/dangling")


def test_chroot_lookup_finds_k3s_links_that_fail_outside_the_root(k3s_root: Path) -> None:
    bin_dir = "/var/lib/rancher/k3s/data/cni"
    # In our own mount namespace these absolute links dangle: upstream's P9 failure.
    with pytest.raises(CniError, match='failed to find plugin "flannel"'):
        find_in_path("flannel", [str(k3s_root) + bin_dir])
    found = find_in_path("flannel", ["/opt/cni/bin", bin_dir], root=str(k3s_root))
    assert found == f"{bin_dir}/flannel"  # the link path, inside the root: argv[0] picks the plugin
    with pytest.raises(CniError) as exc:
        find_in_path("dangling", [bin_dir], root=str(k3s_root))
    assert exc.value.msg == f'failed to find plugin "dangling" in path [{bin_dir}] (inside {k3s_root})'


async def test_chroot_argv_and_env_with_a_runner_double(k3s_root: Path) -> None:
    runner = RecordingRunner([(0, b'{"cniVersion":"1.0.0"}', b"")])
    ex = PluginExecutor(
        ["/var/lib/rancher/k3s/data/cni"], runner, chroot_dir=str(k3s_root), base_env={}, timeout_seconds=7
    )
    await ex.exec_with_result("flannel", b"{}", "1.0.0", ADD)
    argv, _, env, timeout = runner.calls[0]
    assert argv == [CHROOT_BINARY, str(k3s_root), "/var/lib/rancher/k3s/data/cni/flannel"]
    assert env["CNI_PATH"] == "/var/lib/rancher/k3s/data/cni"
    assert timeout == 7


# -- execution -----------------------------------------------------------------------------------


async def test_env_is_process_env_then_cni_vars(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    ex = executor(PLUGINS, "/usr/lib/cni")
    result = await ex.exec_with_result("cni-recorder", conf(record, ip="10.1.2.3/24"), "1.0.0", ADD)
    assert [str(ip.address) for ip in result.ips] == ["10.1.2.3/24"]
    (rec,) = records(record)
    assert rec["command"] == "ADD"
    assert (rec["containerID"], rec["netns"], rec["ifname"]) == ("ctr1", "/var/run/netns/pod1", "net1")
    assert rec["args"] == "IgnoreUnknown=1;K8S_POD_NAME=web-0"
    assert rec["path"] == f"{PLUGINS}:/usr/lib/cni"
    env = ADD.to_env("p", BASE_ENV)
    assert env["KEEP_ME"] == "yes" and env["CNI_COMMAND"] == "ADD" and env["CNI_ARGS"] != "stale"
    assert "CNI_COMMAND" not in os.environ or os.environ["CNI_COMMAND"] != "ADD"  # never mutated


async def test_env_is_exactly_base_then_cni_vars_later_winning() -> None:
    runner = RecordingRunner([(0, b"{}", b"")])
    ex = PluginExecutor([str(PLUGINS), "/usr/lib/cni"], runner, base_env=BASE_ENV)
    await ex.exec_with_result("cni-recorder", b"{}", "1.0.0", ADD)
    assert runner.calls[0][2] == {
        "PATH": BASE_ENV["PATH"],
        "KEEP_ME": "yes",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": "/var/run/netns/pod1",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-0",
        "CNI_IFNAME": "net1",
        "CNI_PATH": f"{PLUGINS}:/usr/lib/cni",
    }
    assert runner.calls[0][0] == [str(PLUGINS / "cni-recorder")]


async def test_default_base_env_is_the_process_env(tmp_path: Path) -> None:
    runner = RecordingRunner([(0, b"", b"")])
    await PluginExecutor([str(PLUGINS)], runner).exec_without_result("cni-recorder", b"{}", ExecArgs("DEL"))
    env = runner.calls[0][2]
    assert env["PATH"] == os.environ["PATH"]
    assert env["CNI_COMMAND"] == "DEL" and env["CNI_NETNS"] == "" and env["CNI_ARGS"] == ""


async def test_result_without_version_takes_the_confs(tmp_path: Path) -> None:
    result_obj = {"ips": [{"address": "10.0.0.2/24", "version": "4"}]}
    result = await executor().exec_with_result(
        "cni-recorder", conf(tmp_path / "r", cniVersion="0.4.0", result=result_obj), "0.4.0", ADD
    )
    assert result.cni_version == "0.4.0"


async def test_plugin_error_keeps_code_and_details(tmp_path: Path) -> None:
    err = {"code": 11, "msg": "busy", "details": "try later"}
    with pytest.raises(CniError) as exc:
        await executor().exec_with_result("cni-recorder", conf(tmp_path / "r", error=err), "1.0.0", ADD)
    assert (exc.value.code, exc.value.msg, exc.value.details) == (11, "busy", "try later")


async def test_crash_carries_stderr() -> None:
    with pytest.raises(CniError) as exc:
        await executor().exec_with_result("cni-crash", b'{"cniVersion":"1.0.0","name":"x"}', "1.0.0", ADD)
    assert exc.value.code == CniCode.INTERNAL
    assert "cni-crash: boom" in exc.value.msg


async def test_crash_by_signal_without_output() -> None:
    with pytest.raises(CniError) as exc:
        await executor().exec_with_result("cni-crash", b'{"crashKind":"signal"}', "1.0.0", ADD)
    assert exc.value.code == CniCode.INTERNAL
    assert "no error message" in exc.value.msg and str(-signal.SIGSEGV) in exc.value.msg


async def test_garbage_on_failure_quotes_output_and_stderr() -> None:
    with pytest.raises(CniError) as exc:
        await executor().exec_with_result("cni-garbage", b"{}", "1.0.0", ADD)
    assert "this is <not> JSON {" in exc.value.msg
    assert "cni-garbage: bad output" in exc.value.details


async def test_garbage_on_success_is_a_clear_error_with_stderr() -> None:
    with pytest.raises(CniError) as exc:
        await executor().exec_with_result("cni-garbage", b'{"exitZero":true}', "1.0.0", ADD)
    assert exc.value.code == CniCode.DECODING_FAILURE
    assert exc.value.msg.startswith('plugin "cni-garbage" (ADD) printed an unparsable result ')
    assert "this is <not> JSON {" in exc.value.msg
    assert exc.value.details == "cni-garbage: bad output"


def test_parse_result_edge_cases() -> None:
    assert parse_result(b"null", "1.0.0").cni_version == "1.0.0"
    with pytest.raises(CniError) as exc:
        parse_result(b'{"cniVersion":"9.9.9"}', "1.0.0", "p", "ADD", b"warn")
    assert exc.value.code == CniCode.INCOMPATIBLE_CNI_VERSION
    assert exc.value.msg.startswith('plugin "p" (ADD) printed an invalid result: ')


async def test_non_executable_plugin_is_a_cni_error(tmp_path: Path) -> None:
    (tmp_path / "noexec").write_text("#!/bin/sh\n")
    with pytest.raises(CniError) as exc:
        await executor(tmp_path).exec_plugin("noexec", b"{}", ADD)
    assert exc.value.msg.startswith('failed to execute plugin "noexec" (ADD): Permission denied')


# -- timeouts and cancellation -----------------------------------------------------------------


@pytest.fixture
def hang_with_pids(tmp_path: Path) -> tuple[Path, Path]:
    """A plugin that forks a child, writes both pids, then becomes cni-hang (same pid)."""
    bin_dir = tmp_path / "bin"
    pidfile = tmp_path / "pids"
    make_exe(
        bin_dir / "hang-pids",
        f'#!/bin/sh\nsleep 1000 &\necho "$$ $!" > {pidfile}.tmp\nmv {pidfile}.tmp {pidfile}\n'
        f"exec {PLUGINS / 'cni-hang'}\n",
    )
    return bin_dir, pidfile


async def test_hanging_plugin_is_killed_at_the_timeout(hang_with_pids: tuple[Path, Path]) -> None:
    bin_dir, pidfile = hang_with_pids
    ex = executor(bin_dir, timeout_seconds=0.5)
    with pytest.raises(CniError) as exc:
        await ex.exec_with_result("hang-pids", b"{}", "1.0.0", ADD)
    assert exc.value.code == CniCode.TRY_AGAIN_LATER
    assert exc.value.msg == 'plugin "hang-pids" timed out after 0.5s (ADD)'
    assert "hang-pids" in exc.value.details
    pids = [int(p) for p in pidfile.read_text().split()]
    assert not pid_alive(pids[0])  # the plugin itself: killed and reaped
    await wait_for(lambda: not pid_alive(pids[1]))  # its forked child: killed with the group


async def test_cancellation_kills_the_plugin(hang_with_pids: tuple[Path, Path]) -> None:
    bin_dir, pidfile = hang_with_pids
    task = asyncio.create_task(executor(bin_dir).exec_plugin("hang-pids", b"{}", ADD))
    await wait_for(pidfile.exists)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert pid_alive(pids[0])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pid_alive(pids[0])
    await wait_for(lambda: not pid_alive(pids[1]))


async def test_runner_timeout_is_a_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        await SubprocessRunner().run([str(PLUGINS / "cni-hang")], b"{}", {}, 0.2)


async def test_runner_prefix_is_prepended(tmp_path: Path) -> None:
    """The prefix (nsenter in the integration tests) wraps the plugin's argv."""
    record = tmp_path / "rec"
    ex = executor(runner=SubprocessRunner(prefix=["/usr/bin/env", "CNI_IFNAME=from-prefix"]))
    await ex.exec_with_result("cni-recorder", conf(record), "1.0.0", ADD)
    assert records(record)[0]["ifname"] == "from-prefix"


# -- chroot --------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot(2) needs root (CAP_SYS_CHROOT)")
async def test_real_chroot_into_slash_runs_the_plugin(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    ex = executor(chroot_dir="/")
    assert ex.argv(str(PLUGINS / "cni-recorder")) == ["/usr/sbin/chroot", "/", str(PLUGINS / "cni-recorder")]
    result = await ex.exec_with_result("cni-recorder", conf(record, ip="10.9.9.9/32"), "1.0.0", ADD)
    assert str(result.ips[0].address) == "10.9.9.9/32"
    assert records(record)[0]["containerID"] == "ctr1"


# -- text file busy ------------------------------------------------------------------------------


def busy_copy(tmp_path: Path) -> tuple[Path, int]:
    """A copy of cni-recorder still open for writing: exec gets ETXTBSY until it is closed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = bin_dir / "cni-recorder"
    shutil.copy(PLUGINS / "cni-recorder", target)
    target.chmod(0o755)
    return bin_dir, os.open(target, os.O_WRONLY)


@pytest.mark.parametrize(
    "chroot_dir",
    [None, pytest.param("/", marks=pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root"))],
    ids=["direct", "chroot"],
)
async def test_text_file_busy_is_retried_until_the_writer_closes(tmp_path: Path, chroot_dir: str | None) -> None:
    bin_dir, fd = busy_copy(tmp_path)
    record = tmp_path / "rec"
    loop = asyncio.get_running_loop()
    loop.call_later(1.5, os.close, fd)
    started = time.monotonic()
    result = await executor(bin_dir, chroot_dir=chroot_dir).exec_with_result("cni-recorder", conf(record), "1.0.0", ADD)
    assert result.cni_version == "1.0.0"
    assert time.monotonic() - started >= 1.5
    assert len(records(record)) == 1


async def test_text_file_busy_gives_up_after_the_retries() -> None:
    busy = OSError(26, "Text file busy")
    runner = RecordingRunner([busy])
    ex = PluginExecutor([str(PLUGINS)], runner, busy_retries=5, busy_retry_delay_seconds=0)
    with pytest.raises(CniError) as exc:
        await ex.exec_plugin("cni-recorder", b"{}", ADD)
    assert exc.value.code == CniCode.TRY_AGAIN_LATER
    assert exc.value.msg == 'plugin "cni-recorder" could not be executed: text file busy after 6 attempts'
    assert len(runner.calls) == 6


async def test_chroot_exit_126_text_file_busy_is_retried() -> None:
    busy = (126, b"", b"/usr/sbin/chroot: failed to run command 'x': Text file busy\n")
    runner = RecordingRunner([busy, busy, (0, b"", b"")])
    ex = PluginExecutor([str(PLUGINS)], runner, chroot_dir="/", busy_retry_delay_seconds=0)
    await ex.exec_plugin("cni-recorder", b"{}", ADD)
    assert len(runner.calls) == 3


async def test_exit_126_for_another_reason_is_not_retried() -> None:
    runner = RecordingRunner([(126, b"", b"chroot: failed to run command 'x': Permission denied")])
    ex = PluginExecutor([str(PLUGINS)], runner, busy_retry_delay_seconds=0)
    with pytest.raises(CniError, match="Permission denied"):
        await ex.exec_plugin("cni-recorder", b"{}", ADD)
    assert len(runner.calls) == 1


# -- VERSION -------------------------------------------------------------------------------------


async def test_version_probe_uses_dummy_env(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "old-plugin").symlink_to(PLUGINS / "cni-recorder")
    record = tmp_path / "rec"
    (bin_dir / "old-plugin.json").write_text(
        json.dumps({"supportedVersions": ["0.3.0", "0.3.1"], "recordFile": str(record)})
    )
    info = await executor(bin_dir).version_info("old-plugin")
    assert info.supported_versions == ("0.3.0", "0.3.1")
    assert info.cni_version == "0.3.1"
    (rec,) = records(record)
    assert (rec["command"], rec["netns"], rec["ifname"], rec["path"]) == ("VERSION", "dummy", "dummy", "dummy")
    assert rec["stdin"] == {"cniVersion": "1.1.0"}


async def test_version_probe_of_a_pre_version_plugin(tmp_path: Path) -> None:
    make_exe(
        tmp_path / "ancient",
        '#!/bin/sh\necho \'{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}\'\nexit 1\n',
    )
    info = await executor(tmp_path).version_info("ancient")
    assert info.supported_versions == ("0.1.0",)


def test_parse_plugin_info_rules() -> None:
    assert parse_plugin_info(b'{"cniVersion":"0.2.0"}').supported_versions == ("0.1.0", "0.2.0")
    with pytest.raises(CniError, match="missing field supportedVersions"):
        parse_plugin_info(b'{"cniVersion":"0.3.0"}')
    with pytest.raises(CniError, match="missing field cniVersion"):
        parse_plugin_info(b"{}")


# -- child watcher -------------------------------------------------------------------------------


def test_pidfd_child_watcher_installs_and_spawns() -> None:
    """Run in a fresh interpreter: the watcher is process-global state."""
    script = (
        "import asyncio\n"
        "from multusd.cni.exec import SubprocessRunner, install_pidfd_child_watcher\n"
        "async def main():\n"
        "    installed = install_pidfd_child_watcher()\n"
        "    rc, out, _ = await SubprocessRunner().run(['/bin/echo', 'hi'], b'', {}, 5)\n"
        "    print(installed, type(asyncio.get_child_watcher()).__name__, rc, out.decode().strip())\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["True", "PidfdChildWatcher", "0", "hi"]
