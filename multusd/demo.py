"""``multusd demo``: a throwaway K3s-like node on this machine, one pod with two networks, then gone.

Why this shape: the demo should prove the real thing — the real ``multus-shim`` executed the way
containerd executes it, the real ``multusd run`` process, the real Debian CNI plugins, a real
(local) Kubernetes API — without a cluster and without touching the host's own network. So:

- the *node* is a network namespace. Plugins reach it through a wrapper bin dir whose entries
  ``exec nsenter --net=<node netns> <real plugin>`` (as ``tests/daemon_rig.py`` does), so the
  bridge, the pod's veth peer and the macvlan/ipvlan master all live inside it;
- the daemon and ``multusd localapi`` run in the host namespace but only listen on 127.0.0.1;
  nothing creates a link, address, route or iptables rule there (the demo checks that);
- the cluster network is "flannel-like": Debian's ``bridge`` + ``host-local`` under the name
  ``cbr0`` — what flannel's CNI plugin delegates to on K3s, without flannel's subnet lease;
- the secondary network is a NetworkAttachmentDefinition: ipvlan when the kernel has it, else
  macvlan, on a veth master inside the node namespace.

Everything the demo makes is recorded *before* it is made (namespace names, temp dir) or under
deferred signals (child processes), so cleanup — on success, failure, SIGINT or SIGTERM — finds
it all: processes are stopped by PID, namespaces deleted by name, the temp dir removed, and each
of those is then verified. Every wait has a bound.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

MIN_PYTHON = (3, 11)
NODE_NAME = "demo-node"
POD_NAMESPACE = "default"
POD_NAME = "demo-pod"
CLUSTER_NETWORK = "cbr0"
CLUSTER_SUBNET = "10.42.0.0/24"
CLUSTER_ROUTE = "10.42.0.0/16"
SECONDARY_SUBNET = "192.168.100.0/24"
SECONDARY_RANGE = ("192.168.100.10", "192.168.100.50")
MASTER_IF = "ens3"
MASTER_PEER_IF = "ens3-peer"
DEBIAN_CNI_DIR = Path("/usr/lib/cni")
REQUIRED_PLUGINS = ("bridge", "host-local", "macvlan")
OPTIONAL_PLUGINS = ("ipvlan",)
REQUIRED_COMMANDS = {"ip": "iproute2", "nsenter": "util-linux"}
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
UNIX_SOCKET_MAX_BYTES = 107
"""``sun_path`` is 108 bytes including the terminating NUL."""

COMMAND_TIMEOUT_SECONDS = 10.0
"""One ``ip`` call; they take milliseconds."""
START_TIMEOUT_SECONDS = 30.0
"""localapi announcing its kubeconfig; the daemon becoming ready and writing 00-multus.conf."""
SHIM_TIMEOUT_SECONDS = 60.0
"""One shim invocation (ADD or DEL), far above the ~0.5 s it takes."""
API_SETTLE_TIMEOUT_SECONDS = 10.0
"""network-status and events are written off the request path: how long to wait for them."""
STOP_TIMEOUT_SECONDS = 15.0
"""SIGTERM → exit for one child (the daemon's own shutdownTimeout is 5 s), then SIGKILL."""
HTTP_TIMEOUT_SECONDS = 3.0
POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1
EXIT_FAILED = 1
LOG_TAIL_LINES = 25

INSTALL_HINT = "apt install iproute2 util-linux containernetworking-plugins"


class DemoError(Exception):
    """A step that failed; ``fix`` tells the user what to do about it."""

    def __init__(self, what: str, fix: str = "", details: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix
        self.details = details


class InterruptedDemo(Exception):
    """SIGINT or SIGTERM arrived; raised from the signal handler so every step stops at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ------------------------------------------------------------------------------ output


class Output:
    """Everything the demo prints, flushed at once so a pipe (or a test) sees it as it happens."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def step(self, text: str) -> None:
        self.line(f"[{time.monotonic() - self.started:6.2f}s] {text}")

    def section(self, title: str) -> None:
        self.line()
        self.line(f"== {title} {'=' * max(0, 72 - len(title))}".rstrip())

    def block(self, text: str, indent: str = "   ") -> None:
        for row in text.rstrip("\n").splitlines():
            self.line(indent + row)


# ------------------------------------------------------------------------------ signals


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a resource is made *and* recorded, so cleanup never misses it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    del frame
    raise InterruptedDemo(signum)


def _child_setup(die_with_parent: bool) -> Callable[[], None]:
    """Runs in the forked child before exec: undo :func:`deferred_signals`' mask (children inherit
    it, and a daemon with SIGTERM blocked could not be stopped) and, unless ``--keep``, ask the
    kernel to SIGTERM the child if the demo itself is killed, so no daemon outlives it."""

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        if die_with_parent:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup


# ------------------------------------------------------------------------------ small tools


def run_command(argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run a short command, return stdout; a failure raises :class:`DemoError` quoting stderr."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DemoError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise DemoError(f"cannot run {argv[0]}: {exc.strerror or exc}", fix=INSTALL_HINT) from None
    if check and proc.returncode != 0:
        raise DemoError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def http_get(url: str, timeout: float = HTTP_TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """GET ``url`` (stdlib: the demo's own HTTP needs are tiny); connection errors → status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_until(what: str, probe: Callable[[], Any], timeout: float, alive: Callable[[], None] | None = None) -> Any:
    """Poll ``probe`` until it returns something truthy, at most ``timeout`` s.

    ``alive`` is called each round and raises when a process we wait on has died, so a crash is
    reported at once instead of after the whole bound.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def host_links() -> set[tuple[int, str]]:
    """(ifindex, name) of every link in the host namespace: the before/after proof."""
    return {(link["ifindex"], link["ifname"]) for link in json.loads(run_command(["ip", "-j", "link"]) or "[]")}


def netns_names() -> set[str]:
    out = run_command(["ip", "-j", "netns", "list"]).strip()
    return {entry["name"] for entry in json.loads(out)} if out else set()


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------ preflight


def preflight() -> None:
    """Everything the demo needs, checked up front; all problems reported together, with the fix."""
    problems: list[str] = []
    fixes: list[str] = []
    if sys.version_info < MIN_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        problems.append(f"Python {found} is too old (multusd needs {'.'.join(map(str, MIN_PYTHON))}+)")
        fixes.append("use a newer python3 for the venv: make demo PYTHON=python3.11")
    if sys.platform != "linux":
        raise DemoError("the demo needs Linux network namespaces", fix="run it on a Linux machine or VM")
    if os.geteuid() != 0:
        raise DemoError(
            "the demo needs root: it creates network namespaces and runs CNI plugins",
            fix="run with sudo: sudo make demo  (or: sudo .venv/bin/multusd demo)",
        )
    packages: set[str] = set()
    for command, package in REQUIRED_COMMANDS.items():
        if shutil.which(command) is None:
            problems.append(f"`{command}` not found in PATH")
            packages.add(package)
    missing = [name for name in REQUIRED_PLUGINS if not os.access(DEBIAN_CNI_DIR / name, os.X_OK)]
    if missing:
        problems.append(f"CNI plugins missing from {DEBIAN_CNI_DIR}: {', '.join(missing)}")
        packages.add("containernetworking-plugins")
    if packages:
        fixes.append(f"apt install {' '.join(sorted(packages))}  (or: sudo make deps)")
    if problems:
        raise DemoError("; ".join(problems), fix="; ".join(fixes))


# ------------------------------------------------------------------------------ the node


@dataclass
class Child:
    """A long-running process the demo started: stopped and verified by PID."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise DemoError(f"{self.name} exited with code {code}", details=tail(self.log))


@dataclass
class DemoNode:
    """What the demo created, recorded before (or atomically with) creation, for cleanup."""

    out: Output
    keep: bool
    parent_dir: Path | None
    tag: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(2)}")
    """Namespace names carry the demo's PID (to find them) and a random part (never a stale one's)."""
    workdir: Path | None = None
    created_parent: bool = False
    namespaces: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    kubeconfig: Path | None = None
    api_url: str = ""
    metrics_url: str = ""
    secondary_type: str = "macvlan"

    @property
    def created_anything(self) -> bool:
        return bool(self.workdir or self.namespaces or self.children)

    # ---------------------------------------------------------------- paths

    @property
    def node_ns(self) -> str:
        return f"multusd-demo-{self.tag}-node"

    @property
    def pod_ns(self) -> str:
        return f"multusd-demo-{self.tag}-pod"

    def path(self, *parts: str) -> Path:
        assert self.workdir is not None
        return self.workdir.joinpath(*parts)

    @property
    def bin_dir(self) -> Path:
        return self.path("bin")

    @property
    def conf_dir(self) -> Path:
        return self.path("net.d")

    @property
    def socket_path(self) -> Path:
        return self.path("run", "multus-cni-network.sock")

    @property
    def multus_conf(self) -> Path:
        return self.conf_dir / "00-multus.conf"

    # ---------------------------------------------------------------- building

    def make_workdir(self) -> None:
        """A fresh temp dir (under ``--workdir`` if given); only what we create is removed later."""
        with deferred_signals():
            if self.parent_dir is not None and not self.parent_dir.exists():
                self.parent_dir.mkdir(parents=True)
                self.created_parent = True
            self.workdir = Path(tempfile.mkdtemp(prefix="multusd-demo-", dir=self.parent_dir))
        if len(os.fsencode(self.socket_path)) > UNIX_SOCKET_MAX_BYTES:
            raise DemoError(
                f"the daemon socket path {self.socket_path} is too long for a unix socket",
                fix="pass a shorter --workdir (e.g. --workdir /tmp)",
            )
        for sub in ("bin", "net.d", "run", "ipam", "multus"):
            self.path(sub).mkdir()

    def add_netns(self, name: str) -> None:
        self.namespaces.append(name)  # recorded first: deleting a namespace never made is harmless
        try:
            run_command(["ip", "netns", "add", name])
        except DemoError as exc:
            raise DemoError(
                f"cannot create network namespace {name}: {exc.what}",
                fix="if this kernel or container does not allow network namespaces, run the demo on a VM "
                "or in a privileged container",
            ) from None

    def make_namespaces(self) -> None:
        """The node (with a veth pair as the secondary's master) and the pod's sandbox netns."""
        self.add_netns(self.node_ns)
        self.add_netns(self.pod_ns)
        node = ["ip", "-n", self.node_ns]
        run_command([*node, "link", "set", "lo", "up"])
        run_command([*node, "link", "add", MASTER_IF, "type", "veth", "peer", "name", MASTER_PEER_IF])
        run_command([*node, "link", "set", MASTER_IF, "up"])
        run_command([*node, "link", "set", MASTER_PEER_IF, "up"])
        # containerd brings the sandbox's lo up with the loopback plugin before the pod network
        run_command(["ip", "-n", self.pod_ns, "link", "set", "lo", "up"])
        self.secondary_type = "ipvlan" if self.kernel_has_ipvlan() else "macvlan"

    def kernel_has_ipvlan(self) -> bool:
        """Probe inside the node namespace (never the host's): create an ipvlan link, drop it."""
        if not os.access(DEBIAN_CNI_DIR / "ipvlan", os.X_OK):
            return False
        node = ["ip", "-n", self.node_ns]
        probe = subprocess.run(
            [*node, "link", "add", "ipvl-probe", "link", MASTER_IF, "type", "ipvlan", "mode", "l2"],
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if probe.returncode != 0:
            return False
        run_command([*node, "link", "del", "ipvl-probe"], check=False)
        return True

    def write_bin_dir(self) -> None:
        """Plugins wrapped to run inside the node netns, plus the shim installed by the real installer."""
        wrapped = [*REQUIRED_PLUGINS, *(p for p in OPTIONAL_PLUGINS if (DEBIAN_CNI_DIR / p).exists())]
        for name in wrapped:
            wrapper = self.bin_dir / name
            wrapper.write_text(
                f'#!/bin/sh\nexec nsenter --net=/run/netns/{self.node_ns} -- {DEBIAN_CNI_DIR / name} "$@"\n'
            )
            wrapper.chmod(0o755)
        from multusd.install import InstallOptions, run_install

        report = io.StringIO()
        options = InstallOptions(host_root="/", dest_dir=str(self.bin_dir), plugins=())
        with contextlib.redirect_stderr(report):
            code = run_install(options, out=report)
        if code != 0:
            raise DemoError(
                "could not install multus-shim into the demo's bin dir",
                fix="run the demo from a multusd source checkout (sudo make demo), or set MULTUSD_SHIM_DIR "
                "to the directory holding multus-shim; a host python3 (3.6+) is needed: apt install python3",
                details=report.getvalue(),
            )

    def write_configs(self) -> tuple[Path, Path]:
        """The flannel-like primary conflist, the seed objects (NAD + pod), the daemon config."""
        primary = {
            "cniVersion": "1.0.0",
            "name": CLUSTER_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "isDefaultGateway": True,
                    "hairpinMode": True,
                    "forceAddress": True,
                    "mtu": 1450,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": CLUSTER_SUBNET}]],
                        "routes": [{"dst": CLUSTER_ROUTE}],
                        "dataDir": str(self.path("ipam")),
                    },
                }
            ],
        }
        (self.conf_dir / "10-flannel.conflist").write_text(json.dumps(primary, indent=2) + "\n")

        nad_name = f"{self.secondary_type}-net"
        secondary: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": nad_name,
            "type": self.secondary_type,
            "master": MASTER_IF,
            "mode": "l2" if self.secondary_type == "ipvlan" else "bridge",
            "ipam": {
                "type": "host-local",
                "ranges": [
                    [{"subnet": SECONDARY_SUBNET, "rangeStart": SECONDARY_RANGE[0], "rangeEnd": SECONDARY_RANGE[1]}]
                ],
                "dataDir": str(self.path("ipam")),
            },
        }
        seed = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "k8s.cni.cncf.io/v1",
                    "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": nad_name, "namespace": POD_NAMESPACE},
                    "spec": {"config": json.dumps(secondary)},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": POD_NAME,
                        "namespace": POD_NAMESPACE,
                        "annotations": {NETWORKS_ANNOTATION: nad_name},
                    },
                    "spec": {"nodeName": NODE_NAME, "containers": [{"name": "app", "image": "busybox"}]},
                },
            ],
        }
        seed_path = self.path("seed.json")
        seed_path.write_text(json.dumps(seed, indent=2) + "\n")
        self.kubeconfig = self.path("kubeconfig")

        daemon_config = {
            "kubeconfig": str(self.kubeconfig),
            "nodeName": NODE_NAME,
            "socketPath": str(self.socket_path),
            "cniDir": str(self.path("multus")),
            "binDir": str(self.bin_dir),
            "cniConfigDir": str(self.conf_dir),
            "multusAutoconfigDir": str(self.conf_dir),
            "metricsAddress": "127.0.0.1:0",
            "readinessTimeout": 20,
            "shutdownTimeout": 5,
            "logLevel": "verbose",
        }
        config_path = self.path("daemon-config.json")
        config_path.write_text(json.dumps(daemon_config, indent=2) + "\n")
        return seed_path, config_path

    # ---------------------------------------------------------------- processes

    def spawn(self, name: str, argv: Sequence[str], *, stdout: int | None = None) -> Child:
        """Start a child in its own session (a terminal's Ctrl-C reaches only the demo, which then
        stops it in order) and record it in the same breath."""
        log = self.path(f"{name}.log")
        env = {k: v for k, v in os.environ.items() if k != "CNI_PATH"}
        with deferred_signals(), log.open("ab") as log_fh:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log_fh,
                stderr=log_fh,
                env=env,
                cwd="/",
                start_new_session=True,
                preexec_fn=_child_setup(die_with_parent=not self.keep),
            )
            child = Child(name, proc, log)
            self.children.append(child)
        return child

    def start_localapi(self, seed: Path) -> Child:
        assert self.kubeconfig is not None
        argv = [sys.executable, "-m", "multusd.cli", "localapi", "--listen", "127.0.0.1:0", "--seed", str(seed)]
        child = self.spawn("localapi", [*argv, "--kubeconfig", str(self.kubeconfig)], stdout=subprocess.PIPE)
        assert child.proc.stdout is not None
        announced = read_line(child.proc.stdout.fileno(), START_TIMEOUT_SECONDS, child.check_alive)
        if announced != str(self.kubeconfig):
            raise DemoError(f"localapi announced {announced!r}, expected {self.kubeconfig}", details=tail(child.log))
        config = json.loads(self.kubeconfig.read_text())
        self.api_url = config["clusters"][0]["cluster"]["server"]
        return child

    def start_daemon(self, config_path: Path) -> Child:
        child = self.spawn("multusd", [sys.executable, "-m", "multusd.cli", "run", "--config", str(config_path)])
        pattern = re.compile(r"metrics on (http://\S+)/metrics")

        def metrics_url() -> str:
            match = pattern.search(child.log.read_text(errors="replace"))
            return match.group(1) if match else ""

        self.metrics_url = wait_until(
            "the daemon's metrics listener", metrics_url, START_TIMEOUT_SECONDS, child.check_alive
        )
        wait_until(
            "the daemon's /readyz",
            lambda: http_get(self.metrics_url + "/readyz")[0] == 200,
            START_TIMEOUT_SECONDS,
            child.check_alive,
        )
        wait_until("00-multus.conf (autoconf)", self.multus_conf.exists, START_TIMEOUT_SECONDS, child.check_alive)
        return child

    # ---------------------------------------------------------------- the API, read back

    def api_get(self, path: str) -> Any:
        status, body = http_get(self.api_url + path)
        if status != 200:
            raise DemoError(f"GET {path} from localapi answered {status or 'nothing'}")
        return json.loads(body)

    def pod(self) -> dict[str, Any]:
        pod: dict[str, Any] = self.api_get(f"/api/v1/namespaces/{POD_NAMESPACE}/pods/{POD_NAME}")
        return pod

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api_get(f"/api/v1/namespaces/{POD_NAMESPACE}/events").get("items") or []
        return items

    # ---------------------------------------------------------------- the runtime's side

    def shim(self, command: str, container_id: str, uid: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
        """The real multus-shim, executed as containerd does: CNI_* env, the conf file on stdin."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{self.pod_ns}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bin_dir),
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME={POD_NAME};"
            f"K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={uid}",
        }
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [str(self.bin_dir / "multus-shim")],
                input=self.multus_conf.read_bytes(),
                capture_output=True,
                env=env,
                timeout=SHIM_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoError(f"multus-shim {command} did not answer within {SHIM_TIMEOUT_SECONDS:.0f} s") from None
        return proc, time.monotonic() - started

    # ---------------------------------------------------------------- teardown

    def cleanup(self) -> list[str]:
        """Stop children (daemon before the API it drains events to), delete namespaces, remove the
        temp dir; then verify each. Returns what is left over (empty: all clean)."""
        leftovers: list[str] = []
        for child in reversed(self.children):
            code = stop_child(child)
            if code is None:
                leftovers.append(f"process {child.name} (pid {child.pid}) would not exit")
            else:
                self.out.step(f"stopped {child.name} (pid {child.pid}, exit {code})")
        if self.namespaces:
            try:
                existing = netns_names()
                for name in reversed(self.namespaces):
                    if name in existing:
                        run_command(["ip", "netns", "del", name], check=False)
                remaining = sorted(netns_names() & set(self.namespaces))
            except DemoError as exc:  # one failing step must not stop the rest of the cleanup
                remaining = [f"{name} (could not check: {exc.what})" for name in self.namespaces]
            leftovers += [f"network namespace {name}" for name in remaining]
            if not remaining:
                self.out.step(f"deleted network namespaces {', '.join(self.namespaces)}")
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.workdir.exists():
                leftovers.append(f"directory {self.workdir}")
            else:
                self.out.step(f"removed {self.workdir}")
            if self.created_parent and self.parent_dir is not None:
                with contextlib.suppress(OSError):
                    self.parent_dir.rmdir()
        return leftovers


def read_line(fd: int, timeout: float, alive: Callable[[], None]) -> str:
    """The first line a child prints on ``fd``, waiting at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for localapi to start")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                alive()
                raise DemoError("localapi closed its output before announcing its kubeconfig")
            data += chunk
        else:
            alive()
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def stop_child(child: Child) -> int | None:
    """SIGTERM, a bounded wait, then SIGKILL; the exit code, or None if it still would not go."""
    proc = child.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                return None
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


# ------------------------------------------------------------------------------ presentation


def describe_metrics(text: str) -> list[str]:
    """A readable excerpt: request counts, latency per command and per plugin, the daemon's RSS."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: list[str] = []
    latency: dict[tuple[str, ...], list[float]] = {}
    rss = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "multus_server_request_total":
                rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
                counts.append(f"multus_server_request_total{{{rendered}}} {sample.value:g}")
            elif sample.name in ("multus_request_duration_seconds_sum", "multus_request_duration_seconds_count"):
                key = ("request", labels.get("command", ""), labels.get("outcome", ""))
                latency.setdefault(key, [0.0, 0.0])[sample.name.endswith("_count")] = sample.value
            elif sample.name in ("multus_delegate_duration_seconds_sum", "multus_delegate_duration_seconds_count"):
                key = ("plugin", labels.get("plugin", ""), labels.get("command", ""))
                latency.setdefault(key, [0.0, 0.0])[sample.name.endswith("_count")] = sample.value
            elif sample.name == "process_resident_memory_bytes":
                rss = sample.value
    lines = [*counts]
    for (kind, a, b), (total, count) in sorted(latency.items(), key=lambda item: item[0][0] != "request"):
        if count:
            what = f"request {a} ({b})" if kind == "request" else f"delegate {a} {b}"
            lines.append(f"{what:<26} n={count:<3g} mean {1000 * total / count:7.1f} ms")
    if rss:
        lines.append(f"daemon RSS (process_resident_memory_bytes) = {rss / 2**20:.1f} MiB")
    return lines


def describe_cni_error(stdout: bytes) -> str:
    """The shim prints a CNI error object on failure; show it as ``CNI error <code>: <msg>``."""
    text = stdout.decode(errors="replace").strip()
    try:
        error = json.loads(text)
        return f"CNI error {error['code']}: {error['msg']}" + (f" ({error['details']})" if error.get("details") else "")
    except (ValueError, KeyError, TypeError):
        return text or "no output"


def describe_result(result: dict[str, Any]) -> list[str]:
    """The shim's CNI result (the cluster network's, as the runtime sees it), one line per item."""
    interfaces = result.get("interfaces") or []
    lines = []
    for iface in interfaces:
        where = "in the pod" if iface.get("sandbox") else "on the node"
        lines.append(f"interface {iface.get('name', '?'):<14} {iface.get('mac', ''):<17}  {where}")
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        name = interfaces[index].get("name", "?") if isinstance(index, int) and index < len(interfaces) else "?"
        gateway = f" gateway {ip['gateway']}" if ip.get("gateway") else ""
        lines.append(f"ip        {ip.get('address', '?')} on {name}{gateway}")
    for route in result.get("routes") or []:
        via = f" via {route['gw']}" if route.get("gw") else ""
        lines.append(f"route     {route.get('dst', '?')}{via}")
    return lines


def check_interfaces(addr_json: str) -> dict[str, list[str]]:
    """Interface name → addresses (CIDR) from ``ip -j addr``; the demo needs eth0 and net1."""
    found: dict[str, list[str]] = {}
    for link in json.loads(addr_json or "[]"):
        found[link["ifname"]] = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
    return found


# ------------------------------------------------------------------------------ the run


def run_demo(node: DemoNode) -> dict[str, float]:
    """Build the node, ADD the pod through the shim, show what happened, DEL it. Returns timings."""
    out = node.out
    timings: dict[str, float] = {}
    preflight()

    out.section("building a throwaway K3s-like node (nothing is created in the host's network namespace)")
    node.make_workdir()
    out.step(f"workdir {node.workdir}")
    node.make_namespaces()
    out.step(f"node netns {node.node_ns}: lo, veth {MASTER_IF} <-> {MASTER_PEER_IF} (the secondary's master)")
    out.step(f"pod netns  {node.pod_ns} (the sandbox containerd would have made)")
    out.step(
        f"secondary network type: {node.secondary_type}"
        + ("" if node.secondary_type == "ipvlan" else " (this kernel has no ipvlan)")
    )
    node.write_bin_dir()
    out.step(f"bin dir: {', '.join(sorted(p.name for p in node.bin_dir.iterdir()))}")
    out.step("  (plugins exec via nsenter into the node netns; multus-shim put there by `multusd install`)")
    seed, config_path = node.write_configs()
    out.step(
        f"primary: {node.conf_dir / '10-flannel.conflist'}"
        f" ({CLUSTER_NETWORK}: bridge cni0 + host-local {CLUSTER_SUBNET})"
    )

    started = time.monotonic()
    api = node.start_localapi(seed)
    timings["localapi start"] = time.monotonic() - started
    out.step(
        f"multusd localapi (pid {api.pid}) at {node.api_url}:"
        f" NAD {node.secondary_type}-net, pod {POD_NAMESPACE}/{POD_NAME}"
    )

    started = time.monotonic()
    daemon = node.start_daemon(config_path)
    timings["daemon ready + 00-multus.conf"] = time.monotonic() - started
    out.step(f"multusd run (pid {daemon.pid}) ready; metrics at {node.metrics_url}/metrics")
    out.step(f"autoconf wrote {node.multus_conf}:")
    out.block(json.dumps(json.loads(node.multus_conf.read_text()), indent=2), indent="      ")

    pod = node.pod()
    uid = pod["metadata"]["uid"]
    container_id = secrets.token_hex(32)

    out.section("ADD: containerd -> multus-shim -> multusd -> bridge (eth0) + " + f"{node.secondary_type} (net1)")
    add, seconds = node.shim("ADD", container_id, uid)
    timings["shim ADD"] = seconds
    if add.returncode != 0:
        raise DemoError(
            f"multus-shim ADD failed (exit {add.returncode}): {describe_cni_error(add.stdout)}",
            details="\n".join(filter(None, [add.stderr.decode(errors="replace").strip(), "--- daemon log ---"]))
            + "\n"
            + tail(daemon.log),
        )
    result = json.loads(add.stdout)
    out.step(f"multus-shim ADD exit 0 in {seconds * 1000:.0f} ms; CNI result (cniVersion {result.get('cniVersion')}):")
    out.block("\n".join(describe_result(result)), indent="      ")

    out.section(f"inside the pod: ip -n {node.pod_ns} ...")
    addresses = check_interfaces(run_command(["ip", "-n", node.pod_ns, "-j", "addr", "show"]))
    out.line(f"$ ip -n {node.pod_ns} -br addr")
    out.block(run_command(["ip", "-n", node.pod_ns, "-br", "addr", "show"]))
    out.line(f"$ ip -n {node.pod_ns} route")
    out.block(run_command(["ip", "-n", node.pod_ns, "route", "show"]))
    for ifname in ("eth0", "net1"):
        if not addresses.get(ifname):
            raise DemoError(f"{ifname} has no address in the pod netns", details=tail(daemon.log))

    out.section(f"annotation {NETWORK_STATUS_ANNOTATION}")

    def network_status() -> list[dict[str, Any]] | None:
        annotations = node.pod()["metadata"].get("annotations") or {}
        raw = annotations.get(NETWORK_STATUS_ANNOTATION)
        parsed: list[dict[str, Any]] | None = json.loads(raw) if raw else None
        return parsed if parsed and len(parsed) >= 2 else None

    status = wait_until("the network-status annotation", network_status, API_SETTLE_TIMEOUT_SECONDS, daemon.check_alive)
    out.block(json.dumps(status, indent=2))

    out.section(f"events for {POD_NAMESPACE}/{POD_NAME}")

    def added_events() -> list[dict[str, Any]] | None:
        events = [e for e in node.events() if e.get("reason") == "AddedInterface"]
        return events if len(events) >= 2 else None

    wait_until("the AddedInterface events", added_events, API_SETTLE_TIMEOUT_SECONDS, daemon.check_alive)
    for event in node.events():
        obj = event.get("involvedObject") or {}
        source = f"{obj.get('kind')}/{obj.get('name')}"
        out.line(f"   {event.get('type', ''):<8} {event.get('reason', ''):<16} {source}: {event.get('message', '')}")

    if node.keep:
        out.section("--keep: skipping DEL, the pod stays attached")
    else:
        timings["shim DEL"] = delete_pod(node, daemon, container_id, uid)

    out.section(f"metrics excerpt ({node.metrics_url}/metrics)")
    code, body = http_get(node.metrics_url + "/metrics")
    if code != 200:
        raise DemoError(f"GET /metrics answered {code or 'nothing'}")
    out.block("\n".join(describe_metrics(body.decode())))
    return timings


def delete_pod(node: DemoNode, daemon: Child, container_id: str, uid: str) -> float:
    """DEL through the shim, as containerd's StopPodSandbox does; then prove nothing is left held:
    no interface in the pod, no IP reserved, no multusd scratch or cache file."""
    out = node.out
    out.section("DEL: containerd -> multus-shim -> multusd (from its own state, in reverse)")
    delete, seconds = node.shim("DEL", container_id, uid)
    if delete.returncode != 0:
        raise DemoError(
            f"multus-shim DEL failed (exit {delete.returncode}): {describe_cni_error(delete.stdout)}",
            details=tail(daemon.log),
        )
    out.step(f"multus-shim DEL exit 0 in {seconds * 1000:.0f} ms; the pod netns now holds:")
    out.block(run_command(["ip", "-n", node.pod_ns, "-br", "link", "show"]), indent="      ")
    left = [
        name for name in check_interfaces(run_command(["ip", "-n", node.pod_ns, "-j", "addr", "show"])) if name != "lo"
    ]
    if left:
        raise DemoError(f"DEL left interfaces in the pod netns: {', '.join(left)}", details=tail(daemon.log))
    reserved = [p.name for p in node.path("ipam").rglob("*") if p.is_file() and p.name[:1].isdigit()]
    out.step("host-local reservations left: " + (", ".join(reserved) if reserved else "none"))
    state = [str(p.relative_to(node.path("multus"))) for p in node.path("multus").rglob("*") if p.is_file()]
    out.step("multusd scratch and result-cache files left: " + (", ".join(state) if state else "none"))
    if reserved or state:
        raise DemoError("DEL left state behind (see above)", details=tail(daemon.log))
    return seconds


def print_keep_hints(node: DemoNode) -> None:
    """``--keep``: how to look around, and the exact commands that undo everything."""
    out = node.out
    out.section("left running (--keep)")
    out.line(f"   ip -n {node.pod_ns} addr                      # the pod (eth0 + net1, still attached)")
    out.line(f"   ip -n {node.node_ns} link                     # the node: cni0, veths, {MASTER_IF}")
    out.line(f"   curl -s {node.metrics_url}/metrics | grep ^multus_")
    out.line(f"   kubectl --kubeconfig {node.kubeconfig} get pod {POD_NAME} -o yaml")
    out.line(f"   less {node.path('multusd.log')}")
    out.line("to clean up:")
    pids = " ".join(str(child.pid) for child in reversed(node.children))
    out.line(f"   kill {pids}   # multusd, localapi: both exit within a few seconds")
    out.line(f"   ip netns del {node.pod_ns}; ip netns del {node.node_ns}")
    out.line(f"   rm -rf {node.workdir}")


def demo(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run the demo; 0 when it worked and left nothing behind, else what failed and how to fix it."""
    out = Output(stream or sys.stdout)
    # absolute: the children run with cwd "/" and get these paths in their configs
    node = DemoNode(out=out, keep=args.keep, parent_dir=args.workdir.absolute() if args.workdir else None)
    handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    before: set[tuple[int, str]] | None = None
    timings: dict[str, float] = {}
    try:
        out.line("multusd demo: one pod, two networks, through the real shim, daemon and CNI plugins")
        if os.geteuid() == 0 and shutil.which("ip"):
            before = host_links()
        timings = run_demo(node)
    except InterruptedDemo as exc:
        out.line()
        out.line(
            f"multusd demo: interrupted by {exc}: cleaning up"
            " (skipping DEL: deleting the namespaces removes every interface)"
        )
        code = 128 + exc.signum
    except DemoError as exc:
        out.line()
        out.line(f"multusd demo: FAILED: {exc.what}")
        if exc.details.strip():
            out.block(exc.details)
        if exc.fix:
            out.line(f"  how to fix: {exc.fix}")
        code = EXIT_FAILED
    except Exception:  # a bug in the demo itself: say so, with the traceback, and still clean up
        out.line()
        out.line("multusd demo: FAILED with an unexpected error (a bug in the demo, please report it):")
        out.block(traceback.format_exc())
        code = EXIT_FAILED
    finally:
        late_signals: list[int] = []

        def still_cleaning(signum: int, frame: FrameType | None) -> None:
            del frame
            late_signals.append(signum)
            out.line(f"({signal.Signals(signum).name} received: still cleaning up, every step is bounded)")

        for sig in handlers:
            signal.signal(sig, still_cleaning)
        try:
            if args.keep and code == 0:
                print_keep_hints(node)
            else:
                code = finish(node, before, timings, code, late_signals)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return code


def finish(
    node: DemoNode, before: set[tuple[int, str]] | None, timings: dict[str, float], code: int, late_signals: list[int]
) -> int:
    """Clean up, verify, report timings; a leftover turns success into failure, and a signal that
    arrived during cleanup still makes the exit code say "interrupted" (cleanup itself runs on)."""
    out = node.out
    if not node.created_anything:
        return code
    out.section("cleanup")
    try:
        leftovers = node.cleanup()
    except DemoError as exc:
        leftovers = [f"cleanup step failed: {exc.what}"]
    after: set[tuple[int, str]] | None = None
    with contextlib.suppress(DemoError):
        after = host_links() if before is not None else None
    if before is not None and after is not None:
        if after == before:
            out.step(f"host network namespace untouched: the same {len(after)} links as before")
        else:
            added = sorted(name for _, name in after - before)
            removed = sorted(name for _, name in before - after)
            out.step(f"note: host links changed while the demo ran (+{added} -{removed}); the demo makes none there")
    if leftovers:
        out.line("multusd demo: NOT CLEAN, left behind: " + "; ".join(leftovers))
        out.line(f"  remove by hand: kill the PIDs above, `ip netns del multusd-demo-{node.tag}-…`, rm -rf the workdir")
        return code or EXIT_FAILED
    out.step("verified: no process, namespace or file of the demo is left")
    out.section("timings")
    for name, seconds in timings.items():
        out.line(f"   {name:<32} {seconds * 1000:8.0f} ms")
    out.line(f"   {'total':<32} {(time.monotonic() - out.started) * 1000:8.0f} ms")
    out.line()
    if code == 0 and late_signals:
        code = 128 + late_signals[0]
    if code == 0:
        out.line("multusd demo: OK")
    elif code > 128:
        out.line(f"multusd demo: interrupted ({signal.Signals(code - 128).name}); everything it made is gone")
    else:
        out.line("multusd demo: failed (see above); everything it made is gone")
    return code


# ------------------------------------------------------------------------------ CLI glue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="leave the node up afterwards and print how to look at it and remove it"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where the demo's temp dir is made (default: the system temp dir); only what it makes is removed",
    )


def run(args: argparse.Namespace) -> int:
    return demo(args)
