"""``multusd demo`` as a user runs it: a subprocess, a bounded wait, then proof nothing is left.

"Nothing left" is checked from outside the demo, not taken from its own report: the host
namespace's links (``ip -j link`` before and after), the namespaces named for the demo's PID,
every process descended from the demo while it ran (recorded by PID *and* start time, so a
recycled PID is not mistaken for a leftover), and the ``--workdir`` it was given.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from multusd import demo

pytestmark = pytest.mark.root

MULTUSD = Path(sys.executable).with_name("multusd")
DEMO_TIMEOUT_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 30.0
WATCH_INTERVAL_SECONDS = 0.02


def host_links() -> set[tuple[int, str]]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {(link["ifindex"], link["ifname"]) for link in json.loads(out)}


def demo_namespaces(pid: int) -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, timeout=10, check=True)
    names = {entry["name"] for entry in json.loads(out.stdout)} if out.stdout.strip() else set()
    return {name for name in names if name.startswith(f"multusd-demo-{pid}-")}


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19])


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class DescendantWatcher:
    """Records every process descended from ``root`` while it runs (a polling thread)."""

    root: int
    seen: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> DescendantWatcher:
        self._thread = threading.Thread(target=self._poll, name="descendants", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            family = {self.root, *self.seen}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    stat = proc_stat(int(entry.name))
                    if stat is not None and stat[0] in family:
                        self.seen.setdefault(int(entry.name), stat[1])
            time.sleep(WATCH_INTERVAL_SECONDS)

    def alive(self) -> list[int]:
        """Recorded descendants still running (same PID *and* start time)."""
        return [pid for pid, start in self.seen.items() if (stat := proc_stat(pid)) and stat[1] == start]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Short on purpose (the daemon's unix socket lives under it); must be empty again at the end."""
    path = Path(tempfile.mkdtemp(prefix="mdd-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_demo(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(MULTUSD), "demo", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def section(output: str, title: str) -> str:
    """The body of one ``== title ===`` section of the demo's output."""
    body = output.split(f"== {title} ", 1)[1].split("\n", 1)[1]
    return body.split("\n== ", 1)[0]


def assert_nothing_left(
    proc: subprocess.Popen[str], watcher: DescendantWatcher, workdir: Path, links: set[tuple[int, str]]
) -> None:
    assert watcher.seen, "the watcher saw no child process at all"
    assert watcher.alive() == [], f"processes left running: {watcher.alive()}"
    assert processes_mentioning(str(workdir)) == []
    assert demo_namespaces(proc.pid) == set()
    assert list(workdir.iterdir()) == [], "files left in the workdir"
    assert host_links() == links, "the host namespace's links changed"


def test_demo_attaches_two_networks_and_leaves_nothing_behind(workdir: Path) -> None:
    links = host_links()
    proc = start_demo(workdir)
    with DescendantWatcher(proc.pid) as watcher:
        output, _ = proc.communicate(timeout=DEMO_TIMEOUT_SECONDS)

    assert proc.returncode == 0, output
    assert re.search(r"^\s+eth0@\S+\s+UP\s+10\.42\.0\.\d+/24", output, re.M), output
    assert re.search(r"^\s+net1@\S+\s+UP\s+192\.168\.100\.\d+/24", output, re.M), output
    kind = re.search(r"secondary network type: (ipvlan|macvlan)", output)
    assert kind, output
    status = json.loads(section(output, f"annotation {demo.NETWORK_STATUS_ANNOTATION}"))
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("cbr0", "eth0", True),
        (f"default/{kind.group(1)}-net", "net1", False),
    ]
    assert "Add net1 [192.168.100." in output
    assert "multus_server_request_total" in output and "MiB" in output
    assert "verified: no process, namespace or file of the demo is left" in output
    assert output.rstrip().endswith("multusd demo: OK")
    assert_nothing_left(proc, watcher, workdir, links)


def test_sigint_after_the_daemon_is_up_cleans_up_and_says_so(workdir: Path) -> None:
    links = host_links()
    proc = start_demo(workdir)
    assert proc.stdout is not None
    lines: list[str] = []
    with DescendantWatcher(proc.pid) as watcher:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not any("multusd run (pid" in line and "ready" in line for line in lines):
            assert time.monotonic() < deadline, "daemon never came up:\n" + "".join(lines)
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                assert line, "demo ended before the daemon was up:\n" + "".join(lines)
                lines.append(line)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=DEMO_TIMEOUT_SECONDS)
    output = "".join(lines) + rest

    assert proc.returncode == 128 + signal.SIGINT, output
    assert "interrupted" in output and "SIGINT" in output
    assert "everything it made is gone" in output
    assert "multusd demo: OK" not in output
    assert_nothing_left(proc, watcher, workdir, links)


def test_not_root_is_told_to_use_sudo(workdir: Path) -> None:
    nobody = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(MULTUSD),
            "demo",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    assert nobody.returncode == 1
    assert "run with sudo" in nobody.stdout
    assert list(workdir.iterdir()) == []


def test_missing_plugins_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "DEBIAN_CNI_DIR", tmp_path)
    with pytest.raises(demo.DemoError) as failed:
        demo.preflight()
    assert "bridge, host-local, macvlan" in failed.value.what
    assert "apt install containernetworking-plugins" in failed.value.fix
