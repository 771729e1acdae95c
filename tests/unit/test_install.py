"""``multusd install``: the init container's atomic copy of the shim, passthru and plugins.

The "host" is a temp tree. Interpreter detection runs the real ``/usr/bin/python3`` through
symlinks in that tree with host root ``/`` (no chroot needed); the one chroot test builds a
two-file root around busybox-static and needs root. Running-binary tests start the installed
files for real and reinstall underneath them.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from multusd import cli, install
from multusd.cni.exec import resolve_in_root
from multusd.install import HostPython, InstallError, InstallOptions, find_host_python, install_file, run_install

REPO = Path(__file__).resolve().parents[2]
REAL_SHIM = REPO / "shim" / "multus-shim"
REAL_PYTHON = "/usr/bin/python3"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
BUSYBOX = Path("/bin/busybox")

#: Stands in for shim/passthru (written in parallel): only "a script with a #! line" matters here.
PASSTHRU_FIXTURE = '#!/usr/bin/python3 -IS\nimport sys\nsys.stdout.write(\'{"cniVersion":"1.0.0"}\\n\')\n'
#: Enough CNI environment for the shim (and a Go plugin) to get as far as reading stdin for ADD.
CNI_ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee",
    "CNI_NETNS": "/var/run/netns/multusd-install-test-absent",
    "CNI_IFNAME": "net1",
    "CNI_PATH": "/usr/lib/cni",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
}
WAIT_SECONDS = 10.0

pytestmark = pytest.mark.skipif(not os.access(REAL_PYTHON, os.X_OK), reason=f"needs a real {REAL_PYTHON}")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def shim_dir(tmp_path: Path) -> Path:
    """A shim source dir: the real multus-shim and a fixture passthru."""
    directory = tmp_path / "shim-src"
    directory.mkdir()
    shutil.copy2(REAL_SHIM, directory / "multus-shim")
    (directory / "passthru").write_text(PASSTHRU_FIXTURE)
    (directory / "passthru").chmod(0o755)
    return directory


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A temp "host" tree (seen with host root ``/``): usr/bin/python3 -> the real python, a bin dir."""
    root = tmp_path / "host"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3").symlink_to(REAL_PYTHON)
    (root / "cni-bin").mkdir()
    return root


@pytest.fixture
def options(host: Path, shim_dir: Path) -> InstallOptions:
    return InstallOptions(
        host_root="/",
        bin_dir=str(host / "cni-bin"),
        plugins=(),
        shim_src=str(shim_dir),
        python=str(host / "usr" / "bin" / "python3"),
    )


def run(options: InstallOptions, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """run_install's exit code, stdout lines and stderr."""
    out = io.StringIO()
    rc = run_install(options, out)
    return rc, out.getvalue().splitlines(), capsys.readouterr().err


def script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if install.TMP_MARKER in p.name or ".temp" in p.name)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def start_add() -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Start an installed CNI executable for ADD; it blocks reading stdin until we close it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(executable: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(executable)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=CNI_ADD_ENV,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ------------------------------------------------------------------------------ installing


def test_installs_shim_and_passthru_executable_with_the_host_python_shebang(
    options: InstallOptions, host: Path, shim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, lines, err = run(options, capsys)

    assert (rc, err) == (0, "")
    python = host / "usr" / "bin" / "python3"
    bin_dir = host / "cni-bin"
    assert lines[0].startswith(f"host python {python} (Python 3.")
    assert lines[0].endswith(f", {os.path.realpath(REAL_PYTHON)})")
    assert lines[1:] == [
        f"installed {bin_dir / 'multus-shim'} (shebang {python})",
        f"installed {bin_dir / 'passthru'} (shebang {python})",
    ]
    for name in ("multus-shim", "passthru"):
        installed = (bin_dir / name).read_bytes()
        first, _, rest = installed.partition(b"\n")
        assert first == f"#!{python} -IS".encode()
        assert rest == (shim_dir / name).read_bytes().partition(b"\n")[2]
        assert stat.S_IMODE((bin_dir / name).stat().st_mode) == 0o755
    # the kernel runs them through the new shebang
    version = subprocess.run([bin_dir / "multus-shim", "--version"], capture_output=True, check=True, timeout=30)
    assert b"multus-shim" in version.stdout
    passthru = subprocess.run([bin_dir / "passthru"], capture_output=True, check=True, timeout=30)
    assert json.loads(passthru.stdout) == {"cniVersion": "1.0.0"}
    assert leftovers(bin_dir) == []


def test_second_run_changes_nothing_and_says_unchanged(
    options: InstallOptions, host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(options, capsys)[0] == 0
    bin_dir = host / "cni-bin"
    before = {p.name: p.stat() for p in bin_dir.iterdir()}

    rc, lines, _ = run(options, capsys)

    assert rc == 0
    assert lines[1:] == [f"unchanged {bin_dir / 'multus-shim'}", f"unchanged {bin_dir / 'passthru'}"]
    after = {p.name: p.stat() for p in bin_dir.iterdir()}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == {
        n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()
    }


def test_a_different_mode_alone_is_rewritten(
    options: InstallOptions, host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(options, capsys)[0] == 0
    shim = host / "cni-bin" / "multus-shim"
    shim.chmod(0o700)

    rc, lines, _ = run(options, capsys)

    assert rc == 0
    assert f"installed {shim} (shebang {options.python})" in lines
    assert stat.S_IMODE(shim.stat().st_mode) == 0o755


@pytest.mark.parametrize(("source_mode", "expected"), [(0o744, 0o755), (0o750, 0o755), (0o644, 0o755), (0o4775, 0o775)])
def test_mode_is_the_source_mode_with_at_least_0755_and_no_set_id_bits(
    tmp_path: Path, source_mode: int, expected: int
) -> None:
    # V103's shape (existing 0611 "inputOldXYZ" replaced by "sampleInputABC"), with multusd's 0755 floor
    src = tmp_path / "src"
    src.write_text("sampleInputABC")
    src.chmod(source_mode)
    dest_dir = tmp_path / "bin"
    dest_dir.mkdir()
    (dest_dir / "plugin").write_text("inputOldXYZ")
    (dest_dir / "plugin").chmod(0o611)

    assert install_file(src, dest_dir, "plugin") == "installed"

    assert (dest_dir / "plugin").read_text() == "sampleInputABC"
    assert stat.S_IMODE((dest_dir / "plugin").stat().st_mode) == expected


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    # K3s's bin dir holds absolute links to its multi-call `cni` binary: writing through one
    # would overwrite every K3s plugin at once
    multi_call = tmp_path / "k3s-data" / "bin" / "cni"
    script(multi_call, "#!/bin/sh\necho k3s multi-call\n")
    dest_dir = tmp_path / "bin"
    dest_dir.mkdir()
    (dest_dir / "ipvlan").symlink_to(multi_call)
    src = script(tmp_path / "ipvlan", "new ipvlan")

    assert install_file(src, dest_dir, "ipvlan") == "installed"

    assert not (dest_dir / "ipvlan").is_symlink()
    assert (dest_dir / "ipvlan").read_text() == "new ipvlan"
    assert multi_call.read_text() == "#!/bin/sh\necho k3s multi-call\n"


def test_plugins_are_copied_from_usr_lib_cni(options: InstallOptions, capsys: pytest.CaptureFixture[str]) -> None:
    if not all((DEBIAN_PLUGINS / name).is_file() for name in ("ipvlan", "macvlan")):
        pytest.skip(f"Debian containernetworking-plugins not in {DEBIAN_PLUGINS}")
    opts = replace(options, plugins=("ipvlan", "macvlan"), plugins_src=install.DEFAULT_PLUGINS_SRC)

    rc, lines, _ = run(opts, capsys)

    assert rc == 0
    bin_dir = Path(opts.bin_dir)
    for name in ("ipvlan", "macvlan"):
        assert f"installed {bin_dir / name} (from {DEBIAN_PLUGINS / name})" in lines
        assert (bin_dir / name).read_bytes() == (DEBIAN_PLUGINS / name).read_bytes()
        assert stat.S_IMODE((bin_dir / name).stat().st_mode) == 0o755
    version = subprocess.run(
        [bin_dir / "ipvlan"],
        env={**CNI_ADD_ENV, "CNI_COMMAND": "VERSION"},
        input=b"{}",
        capture_output=True,
        timeout=30,
    )
    assert "supportedVersions" in json.loads(version.stdout)


def test_a_missing_plugin_is_named_and_nothing_is_installed(
    options: InstallOptions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins_src = tmp_path / "plugins"
    script(plugins_src / "ipvlan", "ipvlan")
    opts = replace(options, plugins=("ipvlan", "nosuchplugin"), plugins_src=str(plugins_src))

    rc, lines, err = run(opts, capsys)

    assert rc == 1
    assert lines == []
    assert f"plugin 'nosuchplugin' not found in {plugins_src} (--plugins-src); available: ipvlan" in err
    assert list(Path(opts.bin_dir).iterdir()) == []


def test_a_missing_passthru_is_named(
    options: InstallOptions, shim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (shim_dir / "passthru").unlink()

    rc, _, err = run(options, capsys)

    assert rc == 1
    assert f"passthru not found in {shim_dir}" in err


def test_a_missing_bin_dir_says_where_it_looked(options: InstallOptions, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(replace(options, bin_dir="/nonexistent/k3s/data/cni"), capsys)

    assert rc == 1
    assert "bin dir /nonexistent/k3s/data/cni not found on the host" in err
    assert "is K3s installed" in err


def test_bin_dir_symlinks_resolve_inside_the_host_root(
    tmp_path: Path, shim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (root / "var" / "lib" / "rancher" / "k3s" / "data" / "cni").mkdir(parents=True)
    (root / "opt" / "cni").mkdir(parents=True)
    (root / "opt" / "cni" / "bin").symlink_to("/var/lib/rancher/k3s/data/cni")  # absolute: host-relative
    python = tmp_path / "python3"
    python.symlink_to(REAL_PYTHON)
    opts = InstallOptions(host_root=str(root), bin_dir="/opt/cni/bin", plugins=(), shim_src=str(shim_dir))

    assert install.destination_dir(opts) == root / "var" / "lib" / "rancher" / "k3s" / "data" / "cni"


# ------------------------------------------------------------------------------ running files, interrupted copies


def _blocked_reading_stdin(pid: int, script_path: Path) -> bool:
    return str(script_path) in _read(f"/proc/{pid}/cmdline") and "pipe_read" in _read(f"/proc/{pid}/wchan")


def test_reinstall_while_the_shim_is_running_leaves_it_running(
    options: InstallOptions,
    host: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    start_add: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    assert run(options, capsys)[0] == 0
    shim = host / "cni-bin" / "multus-shim"
    old_inode = shim.stat().st_ino
    proc = start_add(shim)
    # really running: python has read the script, parsed the CNI env and sits in read(0)
    wait_for(lambda: _blocked_reading_stdin(proc.pid, shim), "the shim to block reading stdin")

    other_python = tmp_path / "other" / "python3"  # a new shebang, so the file must be rewritten
    other_python.parent.mkdir()
    other_python.symlink_to(REAL_PYTHON)
    rc, lines, err = run(replace(options, python=str(other_python)), capsys)

    assert (rc, err) == (0, "")
    assert f"installed {shim} (shebang {other_python})" in lines
    assert shim.read_bytes().startswith(f"#!{other_python} -IS\n".encode())
    assert shim.stat().st_ino != old_inode
    assert proc.poll() is None
    # the running shim finishes its call normally: no daemon, so a CNI "try again later" error
    conf = {"cniVersion": "1.0.0", "name": "t", "daemonSocketPath": str(tmp_path / "absent.sock")}
    stdout, _ = proc.communicate(json.dumps({**conf, "daemonReadyTimeout": 0}).encode(), timeout=WAIT_SECONDS)
    assert proc.returncode == 1
    assert json.loads(stdout)["code"] == 11


def test_reinstall_over_a_running_binary_plugin_avoids_text_file_busy(
    options: InstallOptions,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    start_add: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    # users-and-k3s P2: `cp` onto an executing binary fails with ETXTBSY and the node never recovers
    if not all((DEBIAN_PLUGINS / name).is_file() for name in ("ipvlan", "macvlan")):
        pytest.skip(f"Debian containernetworking-plugins not in {DEBIAN_PLUGINS}")
    plugins_src = tmp_path / "plugins"
    plugins_src.mkdir()
    shutil.copy2(DEBIAN_PLUGINS / "ipvlan", plugins_src / "ipvlan")
    opts = replace(options, plugins=("ipvlan",), plugins_src=str(plugins_src))
    assert run(opts, capsys)[0] == 0
    plugin = Path(opts.bin_dir) / "ipvlan"
    proc = start_add(plugin)
    wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe") == str(plugin), "the plugin to be executing")
    with pytest.raises(OSError) as busy:
        open(plugin, "r+b").close()  # what `cp` does: it must fail here
    assert busy.value.errno == errno.ETXTBSY

    shutil.copy2(DEBIAN_PLUGINS / "macvlan", plugins_src / "ipvlan")  # a new version to install
    rc, lines, err = run(opts, capsys)

    assert (rc, err) == (0, "")
    assert f"installed {plugin} (from {plugins_src / 'ipvlan'})" in lines
    assert plugin.read_bytes() == (DEBIAN_PLUGINS / "macvlan").read_bytes()
    assert proc.poll() is None
    assert os.readlink(f"/proc/{proc.pid}/exe") == f"{plugin} (deleted)"  # still the old inode
    stdout, _ = proc.communicate(b"not json", timeout=WAIT_SECONDS)
    assert proc.returncode == 1
    assert "msg" in json.loads(stdout)  # the old binary answered the call itself


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temp(options: InstallOptions, host: Path) -> None:
    shim_src = Path(str(options.shim_src)) / "multus-shim"
    bin_dir = host / "cni-bin"
    assert install_file(shim_src, bin_dir, "multus-shim", shebang="#!/usr/bin/python3 -IS") == "installed"
    old = (bin_dir / "multus-shim").read_bytes()

    def full_disk(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left"):
        install_file(shim_src, bin_dir, "multus-shim", shebang="#!/usr/local/bin/python3 -IS", write=full_disk)

    assert (bin_dir / "multus-shim").read_bytes() == old
    assert sorted(p.name for p in bin_dir.iterdir()) == ["multus-shim"]


KILLED_COPY = """
import os, signal, sys
from pathlib import Path
from multusd.install import install_file

def write_half_then_die(fd, data):
    os.write(fd, data[: len(data) // 2])
    os.fsync(fd)
    os.kill(os.getpid(), signal.SIGKILL)

install_file(Path(sys.argv[1]), Path(sys.argv[2]), "multus-shim", shebang="#!/usr/local/bin/python3 -IS",
             write=write_half_then_die)
"""


def test_a_killed_copy_leaves_no_partial_target_and_the_next_run_cleans_up(
    options: InstallOptions, host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = host / "cni-bin"
    assert run(options, capsys)[0] == 0
    complete = (bin_dir / "multus-shim").read_bytes()
    shim_src = Path(str(options.shim_src)) / "multus-shim"

    killed = subprocess.run([sys.executable, "-c", KILLED_COPY, shim_src, bin_dir], cwd=REPO, timeout=60)

    assert killed.returncode == -signal.SIGKILL
    assert (bin_dir / "multus-shim").read_bytes() == complete  # never a half-written shim
    [tmp] = leftovers(bin_dir)
    assert tmp.startswith(".multus-shim.multusd-tmp-")
    # upstream install_multus's leftovers too, and an unrelated look-alike that must stay
    (bin_dir / "multus-shim.temp123456").write_text("partial")
    (bin_dir / "passthru.temp").write_text("partial")
    (bin_dir / "multus-shim.template").write_text("not ours")

    rc, lines, _ = run(options, capsys)

    assert rc == 0
    removed = sorted(line for line in lines if line.startswith("removed leftover"))
    assert removed == sorted(
        f"removed leftover {bin_dir / name}" for name in (tmp, "multus-shim.temp123456", "passthru.temp")
    )
    assert f"unchanged {bin_dir / 'multus-shim'}" in lines
    assert sorted(p.name for p in bin_dir.iterdir()) == ["multus-shim", "multus-shim.template", "passthru"]


# ------------------------------------------------------------------------------ host python


def test_find_host_python_skips_absent_broken_and_old_interpreters(tmp_path: Path) -> None:
    absent = tmp_path / "absent" / "python3"
    old = script(tmp_path / "old" / "python3", "#!/bin/sh\necho 3.5\n")
    python2 = script(tmp_path / "py2" / "python", "#!/bin/sh\necho 'Unknown option: -I' >&2\nexit 2\n")
    not_exec = script(tmp_path / "noexec" / "python3", "#!/bin/sh\necho 3.9\n", mode=0o644)
    good = tmp_path / "good" / "python3"
    good.parent.mkdir()
    good.symlink_to(REAL_PYTHON)

    found = find_host_python("/", [str(absent), str(old), str(python2), str(not_exec), str(good)])

    assert found.path == str(good)
    assert found.resolved == os.path.realpath(REAL_PYTHON)
    assert found.version >= (3, 6)
    assert found.shebang == f"#!{good} -IS"

    with pytest.raises(InstallError) as exc:
        find_host_python("/", [str(absent), str(old), str(python2), str(not_exec)])
    message = str(exc.value)
    assert message.startswith("no usable python3 (>= 3.6) on the host, needed to run multus-shim and passthru:")
    assert f"not found: {absent}" in message
    assert f"{old}: Python 3.5 is older than 3.6" in message
    assert f"{python2}: exited with status 2 running '-IS -c …': Unknown option: -I" in message
    assert f"{not_exec}: not executable" in message


def test_a_hung_interpreter_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    hung = script(tmp_path / "python3", "#!/bin/sh\nexec sleep 30\n")

    with pytest.raises(InstallError, match=r"did not answer within 0\.2 s"):
        find_host_python("/", [str(hung)], timeout=0.2)


def test_no_python_on_the_host_fails_with_what_to_install(
    tmp_path: Path, shim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bare-host"
    bin_dir = root / "var" / "lib" / "rancher" / "k3s" / "data" / "cni"
    bin_dir.mkdir(parents=True)
    opts = InstallOptions(host_root=str(root), plugins=(), shim_src=str(shim_dir))

    rc, lines, err = run(opts, capsys)

    assert (rc, lines) == (1, [])
    assert f"no usable python3 (>= 3.6) on the host (host root mounted at {root})" in err
    assert "not found: /usr/bin/python3, /usr/local/bin/python3, /usr/libexec/platform-python" in err
    for hint in ("apt install python3-minimal", "dnf install python3", "apk add python3", "--python PATH"):
        assert hint in err
    assert list(bin_dir.iterdir()) == []
    # and through the command line
    assert cli.main(["install", "--host-root", str(root), "--plugins", "", "--shim-src", str(shim_dir)]) == 1
    assert "no usable python3" in capsys.readouterr().err


def test_an_unusable_python_override_is_refused(options: InstallOptions, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(replace(options, python="/nonexistent/python3"), capsys)

    assert rc == 1
    assert "not found: /nonexistent/python3" in err


def test_symlinks_resolve_inside_the_host_root(tmp_path: Path) -> None:
    # RHEL-like: /usr/bin/python3 -> /etc/alternatives/python3 -> /usr/libexec/python3.9 (absolute links)
    root = tmp_path / "root"
    real = script(root / "usr" / "libexec" / "python3.9", "#!/bin/sh\necho 3.9\n")
    (root / "etc" / "alternatives").mkdir(parents=True)
    (root / "etc" / "alternatives" / "python3").symlink_to("/usr/libexec/python3.9")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3").symlink_to("/etc/alternatives/python3")
    (root / "usr" / "bin" / "py-up").symlink_to("../../../../../../usr/libexec/python3.9")  # `..` stops at /
    (root / "usr" / "bin" / "loop").symlink_to("loop")

    assert install.resolve_in_host(str(root), "/usr/bin/python3") == str(real)
    assert install.resolve_in_host(str(root), "/usr/bin/py-up") == str(real)
    with pytest.raises(FileNotFoundError):
        install.resolve_in_host(str(root), "/usr/bin/python3.12")
    with pytest.raises(OSError) as loop:
        install.resolve_in_host(str(root), "/usr/bin/loop")
    assert loop.value.errno == errno.ELOOP
    # the same answers as the daemon's plugin lookup (the copy exists only to keep asyncio out)
    for path in ("/usr/bin/python3", "/usr/bin/py-up", "/etc/alternatives/python3", "/usr"):
        assert install.resolve_in_host(str(root), path) == resolve_in_root(str(root), path)


@pytest.mark.root
def test_the_interpreter_is_found_and_run_inside_a_chrooted_host_root(
    tmp_path: Path, shim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A full host root is not needed: a "python3.9" that is a busybox sh script answering the
    # probe is enough to exercise the chroot and the host-relative absolute symlink.
    if not BUSYBOX.is_file() or not os.access(install.CHROOT_BINARY, os.X_OK):
        pytest.skip(f"needs a static {BUSYBOX} (busybox-static) and {install.CHROOT_BINARY}")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    script(root / "usr" / "bin" / "python3.9", "#!/bin/sh\necho 3.9\n")
    (root / "usr" / "bin" / "python3").symlink_to("/usr/bin/python3.9")  # outside the root: no such file here
    bin_dir = root / "var" / "lib" / "rancher" / "k3s" / "data" / "cni"
    bin_dir.mkdir(parents=True)

    assert find_host_python(str(root)) == HostPython("/usr/bin/python3", "/usr/bin/python3.9", (3, 9))
    rc, lines, err = run(InstallOptions(host_root=str(root), plugins=(), shim_src=str(shim_dir)), capsys)

    assert (rc, err) == (0, "")
    assert lines == [
        "host python /usr/bin/python3 (Python 3.9, /usr/bin/python3.9)",
        f"installed {bin_dir / 'multus-shim'} (shebang /usr/bin/python3)",
        f"installed {bin_dir / 'passthru'} (shebang /usr/bin/python3)",
    ]
    assert (bin_dir / "multus-shim").read_bytes().startswith(b"#!/usr/bin/python3 -IS\n")


# ------------------------------------------------------------------------------ sources and the command line


def test_shim_dir_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(install.SHIM_DIR_ENV, raising=False)
    assert install.locate_shim_dir(str(tmp_path)) == tmp_path
    if not Path(install.IMAGE_SHIM_DIR, "multus-shim").is_file():
        assert install.locate_shim_dir() == install.CHECKOUT_SHIM_DIR == REPO / "shim"
    monkeypatch.setenv(install.SHIM_DIR_ENV, str(tmp_path / "from-env"))
    assert install.locate_shim_dir() == tmp_path / "from-env"
    assert install.locate_shim_dir(str(tmp_path)) == tmp_path


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ipvlan", ("ipvlan",)), (" ipvlan , macvlan,ipvlan,", ("ipvlan", "macvlan")), ("", ())],
)
def test_parse_plugins(value: str, expected: tuple[str, ...]) -> None:
    assert install.parse_plugins(value) == expected


@pytest.mark.parametrize("value", ["../ipvlan", "a/b", ".hidden", "multus-shim", "x y"])
def test_parse_plugins_refuses_paths_and_shim_names(value: str) -> None:
    with pytest.raises(ValueError):
        install.parse_plugins(value)


def test_cli_install_end_to_end(host: Path, shim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugins_src = tmp_path / "plugins"
    script(plugins_src / "ipvlan", "ipvlan binary")
    script(plugins_src / "macvlan", "macvlan binary")
    argv = [
        "install",
        "--host-root",
        "/",
        "--bin-dir",
        str(host / "cni-bin"),
        "--plugins",
        "ipvlan,macvlan",
        "--plugins-src",
        str(plugins_src),
        "--shim-src",
        str(shim_dir),
        "--python",
        str(host / "usr" / "bin" / "python3"),
    ]

    assert cli.main(argv) == 0

    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["host", "installed", "installed", "installed", "installed"]
    assert sorted(p.name for p in (host / "cni-bin").iterdir()) == ["ipvlan", "macvlan", "multus-shim", "passthru"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv[:5], "--plugins", "../etc/passwd"])
    assert exit_info.value.code == 2
    assert "invalid plugin name '../etc/passwd'" in capsys.readouterr().err


def test_cli_defaults_match_the_k3s_layout() -> None:
    args = cli.make_parser().parse_args(["install"])

    assert (args.host_root, args.bin_dir, args.dest_dir) == ("/host", "/var/lib/rancher/k3s/data/cni", None)
    assert (args.plugins, args.plugins_src, args.shim_src, args.python) == (("ipvlan",), "/usr/lib/cni", None, None)
