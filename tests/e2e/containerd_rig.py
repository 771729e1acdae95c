"""A private containerd (Debian's 1.6 + runc) that drives CNI exactly as K3s's embedded one does.

- **Pause image, offline.** ``registry.k8s.io/pause:3.9`` is built with ``umoci`` from
  ``busybox-static``: a rootfs holding only ``/bin/busybox``, entrypoint ``busybox sleep
  2147483647`` (the sandbox's init must stay running; containerd stops it with SIGKILL, so it
  needs no signal handling). The OCI layout is tarred and imported with ``ctr images import``; the
  ``io.containerd.image.name`` annotation in ``index.json`` gives it its name, which the CRI
  config's ``sandbox_image`` names, so containerd never tries to pull.
- **Isolation.** Its own root, state, socket and runc root, all under one tmp dir; the CRI plugin's
  CNI ``bin_dir``/``conf_dir`` point at the test node's dirs (K3s layout: ``00-multus.conf`` beside
  ``10-flannel.conflist``, ``max_conf_num = 1``). Unneeded snapshotters and tracing are disabled.
  ``restrict_oom_score_adj = true`` because this VM's processes may not lower their OOM score.
- **Cleanup by PID.** containerd is our child: SIGTERM, bounded wait, SIGKILL. Its shims are
  daemonised (re-parented to PID 1) and outlive it by design, so leftovers are found by the one
  thing that is ours — the ``-address <our socket>`` in their argv — and killed by PID, together
  with the container init PIDs runc recorded under our runc root. Mounts under the tmp dir are
  unmounted deepest first; :func:`mounts_under` lets the fixture assert none is left.

Everything is synchronous subprocess work with timeouts: fixture plumbing, not the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX = Path("/bin/busybox")
CRI_NAMESPACE = "k8s.io"
COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SHIM_SOCKET_DIR = Path("/run/containerd/s")

# Plugins that cost start-up time or probe things this VM does not have; none is used by CRI here.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
)


class ContainerdUnavailableError(RuntimeError):
    """containerd or runc cannot run on this machine (the message says exactly why)."""


def run(argv: list[str], *, timeout: float = COMMAND_TIMEOUT, cwd: Path | None = None) -> str:
    """Run a command; a failure raises with its stderr (the fixtures' only error path)."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return proc.stdout


def missing_tools() -> list[str]:
    """Executables the rig needs that are not installed (the e2e tests skip naming them)."""
    tools = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "umoci", "nsenter", "tar")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not BUSYBOX.exists():
        missing.append(str(BUSYBOX))
    return missing


def build_pause_image(workdir: Path, name: str = PAUSE_IMAGE) -> Path:
    """An OCI-layout tar of a busybox "pause" image called ``name``, ready for ``ctr images import``."""
    workdir.mkdir(parents=True, exist_ok=True)
    layout, bundle = workdir / "oci", workdir / "bundle"
    image = f"{layout}:pause"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", image])
    run(["umoci", "unpack", "--image", image, str(bundle)])
    (bundle / "rootfs" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bundle / "rootfs" / "bin" / "busybox")
    run(["umoci", "repack", "--image", image, str(bundle)])
    entrypoint = ["/bin/busybox", "sleep", "2147483647"]
    config_args = [arg for word in entrypoint for arg in ("--config.entrypoint", word)]
    run(["umoci", "config", "--image", image, "--os", "linux", "--architecture", "amd64", *config_args])
    run(["umoci", "gc", "--layout", str(layout)])
    shutil.rmtree(bundle)

    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    (manifest,) = index["manifests"]
    manifest["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
    }
    index_path.write_text(json.dumps(index))
    tar = workdir / "pause.tar"
    run(["tar", "-C", str(layout), "-cf", str(tar), "."])
    return tar


def config_toml(root: Path, state: Path, socket: Path, bin_dir: Path, conf_dir: Path, sandbox_image: str) -> str:
    """containerd's v2 config: the CRI plugin as K3s configures it, everything else private."""
    disabled = ", ".join(f'"{name}"' for name in DISABLED_PLUGINS)
    return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{bin_dir}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{state / "runc"}"
"""


def _unescape_mount_path(text: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below ``prefix``, deepest first (the order to unmount them)."""
    base = str(prefix).rstrip("/")
    found = []
    with open("/proc/mounts") as mounts:
        for line in mounts:
            point = _unescape_mount_path(line.split()[1])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def processes_with_arg(value: str) -> list[int]:
    """PIDs whose argv contains ``value`` as a whole argument (how we recognise *our* shims)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if value.encode() in argv:
            pids.append(int(entry))
    return pids


def remove_netns(path: str) -> None:
    """Remove a runtime-made netns: a bind mount of ``/proc/<pid>/ns/net`` on an empty file."""
    subprocess.run(["umount", path], capture_output=True, timeout=30)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@dataclass
class Containerd:
    """One private containerd process and the paths it owns."""

    base: Path
    bin_dir: Path
    conf_dir: Path
    sandbox_image: str = PAUSE_IMAGE
    process: subprocess.Popen[bytes] | None = None
    created_shim_dirs: list[Path] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        """runc's state dir for our CRI namespace (the shim appends the namespace)."""
        return self.state / "runc" / CRI_NAMESPACE

    @property
    def log_path(self) -> Path:
        return self.base / "containerd.log"

    @property
    def config_path(self) -> Path:
        return self.base / "config.toml"

    def log(self, lines: int = 80) -> str:
        """The last ``lines`` lines of containerd's log (for assertion messages)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the config, start containerd, wait (bounded) until it answers on its socket."""
        for path in (self.root, self.state):
            path.mkdir(parents=True, exist_ok=True)
        # containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir: remember
        # which of those dirs we brought into being, to remove them (if empty) at the end
        self.created_shim_dirs = [d for d in (SHIM_SOCKET_DIR, SHIM_SOCKET_DIR.parent) if not d.exists()]
        self.config_path.write_text(
            config_toml(self.root, self.state, self.socket, self.bin_dir, self.conf_dir, self.sandbox_image)
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C to pytest must not kill it before teardown runs
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ContainerdUnavailableError(f"containerd exited ({self.process.returncode}):\n{self.log()}")
            if self.socket.exists():
                probe = subprocess.run(
                    ["ctr", "-a", str(self.socket), "version"], capture_output=True, text=True, timeout=10
                )
                if probe.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise ContainerdUnavailableError(f"containerd not serving after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def ctr(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        return run(["ctr", "-a", str(self.socket), "-n", CRI_NAMESPACE, *args], timeout=timeout)

    def import_image(self, tar: Path) -> None:
        """Import (and unpack for overlayfs) the pause image into the CRI namespace."""
        self.ctr("images", "import", str(tar))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM containerd, wait (bounded), SIGKILL if it does not go; then kill leftovers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.kill_leftovers()
        self.unmount_all()
        for directory in self.created_shim_dirs:
            with contextlib.suppress(OSError):  # only if empty: another containerd may be using it
                directory.rmdir()

    def leftover_pids(self) -> list[int]:
        """Our shims (by their ``-address``) and the container inits runc recorded under our root."""
        pids = set(processes_with_arg(str(self.socket)))
        if self.runc_root.exists():
            for state_file in self.runc_root.glob("*/state.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    pids.add(int(json.loads(state_file.read_text())["init_process_pid"]))
        return sorted(pid for pid in pids if pid_alive(pid))

    def kill_leftovers(self, timeout: float = 5.0) -> None:
        """SIGKILL every leftover PID (recorded in ``killed``), wait for them (bounded)."""
        pids = self.leftover_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed.extend(pids)
        deadline = time.monotonic() + timeout
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.runc_root.exists():
            for container in self.runc_root.iterdir():
                subprocess.run(
                    ["runc", "--root", str(self.runc_root), "delete", "--force", container.name],
                    capture_output=True,
                    timeout=30,
                )

    def unmount_all(self) -> None:
        """Unmount everything under our base dir, deepest first; lazily if busy."""
        for point in mounts_under(self.base):
            if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
