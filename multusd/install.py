"""``multusd install``: the DaemonSet's init container puts the host-side files in place.

What lands in the host's CNI bin dir (containerd's ``bin_dir``):

* ``multus-shim`` and ``passthru`` — stdlib-only Python scripts that run on the *host's* own
  interpreter. The first line of each is rewritten to ``#!<host python3> -IS``, the interpreter
  having been found on the host and executed once to prove it works (≥ 3.6, accepts ``-IS``):
  RHEL 8 keeps its only python at ``/usr/libexec/platform-python``, and a host with none must fail
  here, loudly, not at the first pod's sandbox creation (python-costs §3.3).
* the extra plugins named by ``--plugins`` (default ``ipvlan``), copied from the image's Debian
  ``containernetworking-plugins`` (``/usr/lib/cni``): K3s bundles neither ipvlan nor macvlan
  (users-and-k3s §2.2).

Paths. The init container mounts the host's ``/`` at ``--host-root`` (default ``/host``);
``--bin-dir`` is a *host* path (default K3s's ``/var/lib/rancher/k3s/data/cni``), resolved inside
the host root so that a symlinked bin dir (``/opt/cni/bin -> /var/lib/...``) lands where the host
sees it. ``--dest-dir`` (upstream ``install_multus -d``) names a container path instead. The
interpreter probe runs ``chroot <host-root> <python>``, so the container needs CAP_SYS_CHROOT.

Every file is replaced atomically: ``.<name>.multusd-tmp-<random>`` in the same directory, written,
chmod-ed (the source's mode, at least 0755), fsync-ed, renamed over the target, directory fsync-ed.
A rename never writes into the old inode, so a shim or plugin the runtime is executing right now
keeps running and the copy never fails with "Text file busy" (users-and-k3s P2: upstream's
``cp`` left nodes stuck after reboots); a crash leaves the old file or the new one, never half of
one. A symlink at the target (K3s's links to its multi-call ``cni`` binary) is replaced, never
written through. Leftovers of interrupted runs — ours and upstream ``install_multus``'s
``<name>.temp<digits>`` (§10.3: never cleaned there) — are removed first. Files whose bytes and
mode already match are left alone (``unchanged``), so re-running the init container on every pod
start costs reads only.

Deliberate differences from upstream's ``CopyFileAtomic`` (V103): the mode is the source's *or-ed
with 0755* (a checkout that lost its x bits must still install runnable files), and set-id bits are
dropped.

This module keeps its imports light (no asyncio: +10 MB RSS measured) because the init container's
memory limit is sized for a small one-shot process.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from multusd.cni.atomicfile import fsync_dir
from multusd.cni.rootpath import resolve_in_root

#: Where the init container mounts the host's ``/`` (upstream's manifest uses ``/host`` too).
DEFAULT_HOST_ROOT = "/host"
#: K3s's stable CNI bin dir since the Oct-2024 releases (a host path).
DEFAULT_BIN_DIR = "/var/lib/rancher/k3s/data/cni"
#: Extra plugins copied by default: K3s lacks ipvlan, the usual reason to run multus on it.
DEFAULT_PLUGINS: tuple[str, ...] = ("ipvlan",)
#: Debian's containernetworking-plugins, carried by the image.
DEFAULT_PLUGINS_SRC = "/usr/lib/cni"
#: Overrides where ``multus-shim`` and ``passthru`` are read from (same as ``--shim-src``).
SHIM_DIR_ENV = "MULTUSD_SHIM_DIR"
#: Where the Dockerfile puts the repository's ``shim/`` directory.
IMAGE_SHIM_DIR = "/usr/src/multusd/shim"
#: The repository checkout's ``shim/`` (a development install: ``pip install -e``).
CHECKOUT_SHIM_DIR = Path(__file__).resolve().parents[1] / "shim"
#: The scripts installed from the shim dir; each gets the host interpreter's shebang.
SHIM_FILES: tuple[str, ...] = ("multus-shim", "passthru")

#: Host interpreters tried in order, as host paths. The first that runs wins. Unversioned names
#: first: the shebang keeps the path as found, so ``/usr/bin/python3`` survives a 3.11 → 3.12
#: upgrade where ``/usr/bin/python3.11`` would vanish.
PYTHON_CANDIDATES: tuple[str, ...] = (
    "/usr/bin/python3",
    "/usr/local/bin/python3",
    "/usr/libexec/platform-python",  # RHEL 8 / CentOS 8: the system python, 3.6
    *(f"/usr/bin/python3.{minor}" for minor in range(14, 5, -1)),
    "/run/current-system/sw/bin/python3",  # NixOS
)
#: The shim and passthru are written for Python 3.6 (python-costs §3.3).
MIN_PYTHON: tuple[int, int] = (3, 6)
#: The interpreter flags of the shebang (isolated mode, no site): both exist since 3.4.
SHEBANG_FLAGS = "-IS"
#: Linux before 5.1 reads only the first 128 bytes of a script for its ``#!`` line.
MAX_SHEBANG_BYTES = 127
#: Bound on one interpreter probe; a healthy python answers in tens of milliseconds.
PYTHON_PROBE_TIMEOUT_SECONDS = 10.0
#: What the probe runs: valid on Python 2 and 3, so an old interpreter reports its version.
PYTHON_PROBE_CODE = "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"
#: coreutils chroot(1), as in multusd.cni.exec (not imported from there: it pulls in asyncio).
CHROOT_BINARY = "/usr/sbin/chroot"
#: Bound on symlinks followed while resolving a host path (Linux's MAXSYMLINKS is 40).
#: Marker of our temporary files: ``.<name>.multusd-tmp-<random>``.
TMP_MARKER = ".multusd-tmp-"
#: Copy in chunks: plugins are a few MB each and the init container's memory is small.
COPY_CHUNK_BYTES = 1 << 20

#: What to tell an operator whose host has no usable python3.
PYTHON_INSTALL_HINT = (
    "Install one (Debian/Ubuntu: apt install python3-minimal; RHEL/Fedora: dnf install python3; "
    "SUSE: zypper install python3; Alpine: apk add python3), or name it with --python PATH"
)

PLUGIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class InstallError(Exception):
    """An installation that cannot proceed; the message says what to fix."""


@dataclass(frozen=True)
class HostPython:
    """A python3 on the host that the shim can run on."""

    path: str
    """Host path written into the shebang, as found (symlinks kept, so upgrades keep working)."""
    resolved: str
    """Host path of the file it resolves to, for the log line."""
    version: tuple[int, int]
    """``(major, minor)`` as the interpreter itself reported."""

    @property
    def shebang(self) -> str:
        """The ``#!`` line (without newline) for the shim and passthru."""
        return f"#!{self.path} {SHEBANG_FLAGS}"


@dataclass(frozen=True)
class InstallOptions:
    """What ``multusd install`` does; the CLI flags, one field each."""

    host_root: str = DEFAULT_HOST_ROOT
    """Container path where the host's ``/`` is mounted; ``/`` when running on the host itself."""
    bin_dir: str = DEFAULT_BIN_DIR
    """Host path of containerd's CNI bin dir, resolved inside ``host_root``."""
    dest_dir: str | None = None
    """Container path of the bin dir, used as is; overrides ``bin_dir`` (upstream's ``-d``)."""
    plugins: tuple[str, ...] = DEFAULT_PLUGINS
    """Extra plugins copied from ``plugins_src``."""
    plugins_src: str = DEFAULT_PLUGINS_SRC
    """Directory the extra plugins are read from (in the container)."""
    shim_src: str | None = None
    """Directory holding ``multus-shim`` and ``passthru``; ``None`` searches :func:`locate_shim_dir`."""
    python: str | None = None
    """Host path of the interpreter for the shebangs; ``None`` searches :data:`PYTHON_CANDIDATES`."""


@dataclass(frozen=True)
class Source:
    """One file to install: its name in the bin dir and where it comes from."""

    name: str
    path: Path
    script: bool
    """Whether its ``#!`` line is rewritten to the host interpreter."""


# ------------------------------------------------------------------------------ host paths


def resolve_in_host(host_root: str, path: str) -> str:
    """The container path of host ``path``, every symlink followed as the host would follow it.

    Absolute link targets restart at ``host_root`` (K3s and RHEL use absolute links; read from the
    container, ``/usr/bin/python3 -> /usr/bin/python3.6`` must not land on the *image's* python).
    """
    return resolve_in_root(host_root, path)


def _host_view(host_root: str, container_path: str) -> str:
    """The host's name for a container path below ``host_root`` (inverse of the join above)."""
    if host_root == "/":
        return container_path
    relative = os.path.relpath(container_path, host_root)
    return "/" if relative == "." else "/" + relative


# ------------------------------------------------------------------------------ host python


def probe_python(host_root: str, path: str, timeout: float = PYTHON_PROBE_TIMEOUT_SECONDS) -> tuple[int, int]:
    """Run host interpreter ``path`` with the shebang's flags and return its ``(major, minor)``.

    It runs where the shim will run — ``chroot host_root`` unless the root is ``/`` — because a
    host binary started in the container would load the container's libraries. Raises
    :class:`InstallError` with the reason it is unusable.
    """
    argv = [path, SHEBANG_FLAGS, "-c", PYTHON_PROBE_CODE]
    if host_root != "/":
        argv = [CHROOT_BINARY, host_root, *argv]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise InstallError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        why = f": {lines[-1]}" if lines else ""
        raise InstallError(f"exited with status {proc.returncode} running '{SHEBANG_FLAGS} -c …'{why}")
    answer = proc.stdout.decode(errors="replace").strip()
    match = re.fullmatch(r"(\d+)\.(\d+)", answer)
    if match is None:
        raise InstallError(f"answered {answer[:60]!r} instead of its version")
    version = (int(match[1]), int(match[2]))
    if version < MIN_PYTHON:
        raise InstallError(f"Python {version[0]}.{version[1]} is older than {MIN_PYTHON[0]}.{MIN_PYTHON[1]}")
    return version


def find_host_python(
    host_root: str,
    candidates: Sequence[str] = PYTHON_CANDIDATES,
    *,
    timeout: float = PYTHON_PROBE_TIMEOUT_SECONDS,
) -> HostPython:
    """The first of ``candidates`` (host paths) that exists in ``host_root`` and runs as Python ≥ 3.6.

    Files are looked up with symlinks resolved inside the host root; each distinct file is executed
    at most once (``/usr/bin/python3`` and ``/usr/bin/python3.11`` are usually one). With none
    usable, :class:`InstallError` lists every candidate with its reason and what to install.
    """
    absent: list[str] = []
    reasons: list[str] = []
    verdicts: dict[str, str | tuple[int, int]] = {}  # resolved container path -> reason or version
    for candidate in candidates:
        if not candidate.startswith("/") or any(c.isspace() for c in candidate):
            reasons.append(f"{candidate!r}: not an absolute path without blanks (a #! line could not hold it)")
            continue
        try:
            resolved = resolve_in_host(host_root, candidate)
            st = os.stat(resolved)
        except FileNotFoundError:
            absent.append(candidate)
            continue
        except OSError as exc:
            reasons.append(f"{candidate}: {exc.strerror or exc}")
            continue
        if not stat.S_ISREG(st.st_mode):
            reasons.append(f"{candidate}: not a regular file")
            continue
        if not st.st_mode & 0o111:
            reasons.append(f"{candidate}: not executable")
            continue
        if resolved not in verdicts:
            try:
                verdicts[resolved] = probe_python(host_root, candidate, timeout)
            except InstallError as exc:
                verdicts[resolved] = str(exc)
        verdict = verdicts[resolved]
        if isinstance(verdict, tuple):
            return HostPython(candidate, _host_view(host_root, resolved), verdict)
        reasons.append(f"{candidate}: {verdict}")
    if absent:
        reasons.insert(0, "not found: " + ", ".join(absent))
    where = f" (host root mounted at {host_root})" if host_root != "/" else ""
    minimum = f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
    raise InstallError(
        f"no usable python3 (>= {minimum}) on the host{where}, needed to run multus-shim and passthru: "
        + "; ".join(reasons)
        + f". {PYTHON_INSTALL_HINT}"
    )


# ------------------------------------------------------------------------------ sources


def locate_shim_dir(explicit: str | None = None) -> Path:
    """The directory holding ``multus-shim`` and ``passthru``.

    ``explicit`` (``--shim-src``) wins, then ``$MULTUSD_SHIM_DIR``, then the image's
    ``/usr/src/multusd/shim``, then the repository checkout next to this package. The shim is not
    package data (``importlib.resources`` cannot see a top-level ``shim/``): it is one file the host
    runs, kept outside the package so nothing imports it by accident.
    """
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(SHIM_DIR_ENV)
    if from_env:
        return Path(from_env)
    searched = (Path(IMAGE_SHIM_DIR), CHECKOUT_SHIM_DIR)
    for directory in searched:
        if (directory / SHIM_FILES[0]).is_file():
            return directory
    raise InstallError(
        f"{SHIM_FILES[0]} not found in {' or '.join(map(str, searched))}: pass --shim-src DIR or set ${SHIM_DIR_ENV}"
    )


def parse_plugins(value: str) -> tuple[str, ...]:
    """A ``--plugins`` value (``ipvlan,macvlan``; empty for none) as validated, de-duplicated names."""
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if not name:
            continue
        if not PLUGIN_NAME.fullmatch(name) or TMP_MARKER in name:
            raise ValueError(f"invalid plugin name {name!r}: letters, digits, '.', '_', '-'; no leading '.'")
        if name in SHIM_FILES:
            raise ValueError(f"{name} is always installed from the shim dir, not from --plugins")
        if name not in names:
            names.append(name)
    return tuple(names)


def collect_sources(options: InstallOptions) -> list[Source]:
    """Every file to install, checked to exist before anything is written (no half installs)."""
    shim_dir = locate_shim_dir(options.shim_src)
    sources = [Source(name, shim_dir / name, script=True) for name in SHIM_FILES]
    plugins_src = Path(options.plugins_src)
    sources += [Source(name, plugins_src / name, script=False) for name in options.plugins]
    for source in sources:
        if source.path.is_file():
            continue
        if source.script:
            raise InstallError(f"{source.name} not found in {shim_dir} (--shim-src)")
        try:
            available = ", ".join(sorted(p.name for p in plugins_src.iterdir() if p.is_file())) or "none"
        except OSError as exc:
            raise InstallError(
                f"plugin {source.name!r} not found: cannot read {plugins_src} (--plugins-src): {exc.strerror}"
            ) from exc
        raise InstallError(f"plugin {source.name!r} not found in {plugins_src} (--plugins-src); available: {available}")
    return sources


def destination_dir(options: InstallOptions) -> Path:
    """The bin dir as the container sees it; it must already exist (K3s creates it)."""
    if options.dest_dir is not None:
        if not Path(options.dest_dir).is_dir():
            raise InstallError(f"--dest-dir {options.dest_dir} is not a directory")
        return Path(options.dest_dir)
    if not options.bin_dir.startswith("/"):
        raise InstallError(f"--bin-dir must be an absolute host path, got {options.bin_dir!r}")
    joined = os.path.join(options.host_root, options.bin_dir.lstrip("/"))
    try:
        dest = resolve_in_host(options.host_root, options.bin_dir)
        is_dir = stat.S_ISDIR(os.stat(dest).st_mode)
    except OSError as exc:
        raise InstallError(
            f"bin dir {options.bin_dir} not found on the host ({joined}: {exc.strerror}): is K3s installed, "
            f"and is the host's / mounted at {options.host_root} (--host-root)?"
        ) from exc
    if not is_dir:
        raise InstallError(f"bin dir {options.bin_dir} on the host ({joined}) is not a directory")
    return Path(dest)


# ------------------------------------------------------------------------------ atomic copy


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less). The tests' seam."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _content(src: Path, shebang: str | None) -> Iterator[bytes]:
    """The bytes to install, in chunks: ``src`` with its first line replaced by ``shebang``."""
    with open(src, "rb") as fh:
        if shebang is not None:
            first = fh.readline()
            if not first.startswith(b"#!"):
                raise InstallError(f"{src} does not start with a #! line to point at the host python")
            yield shebang.encode() + b"\n"
        while chunk := fh.read(COPY_CHUNK_BYTES):
            yield chunk


def _is_installed(dest: Path, mode: int, chunks: Iterable[bytes]) -> bool:
    """Whether ``dest`` is a regular file (not a symlink) with exactly this mode and content."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
        return False
    with open(dest, "rb") as fh:  # reading a running executable is fine; writing is what fails
        for chunk in chunks:
            if fh.read(len(chunk)) != chunk:
                return False
        return fh.read(1) == b""


def install_file(
    src: Path,
    dest_dir: Path,
    name: str,
    *,
    shebang: str | None = None,
    write: Callable[[int, bytes], None] = write_all,
) -> str:
    """Install ``src`` as ``dest_dir/name`` atomically; return ``"installed"`` or ``"unchanged"``.

    ``shebang`` (a ``#!…`` line, no newline) replaces the first line of a script. The mode is the
    source's or-ed with 0755. Nothing is written when the target already has these bytes and
    mode. On any failure the temporary file is removed and the target is untouched. ``write`` is
    the seam the tests use to fail or die half way through a copy.
    """
    if shebang is not None and (
        not shebang.startswith("#!") or "\n" in shebang or len(shebang.encode()) > MAX_SHEBANG_BYTES
    ):
        raise InstallError(f"cannot use {shebang!r} as a #! line: one line of at most {MAX_SHEBANG_BYTES} bytes")
    mode = (stat.S_IMODE(os.stat(src).st_mode) | 0o755) & 0o777
    dest = dest_dir / name
    if _is_installed(dest, mode, _content(src, shebang)):
        return "unchanged"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}{TMP_MARKER}", dir=dest_dir)
    try:
        try:
            for chunk in _content(src, shebang):
                write(fd, chunk)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, dest)  # a new inode: a process executing the old one keeps it
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dest_dir)
    return "installed"


def remove_leftovers(dest_dir: Path, names: Iterable[str]) -> list[Path]:
    """Remove temporary files of interrupted installs of ``names``; return what was removed.

    Ours are ``.<name>.multusd-tmp-*``; upstream ``install_multus`` leaves ``<name>.temp<digits>``.
    Only regular files of those exact shapes go, so unrelated files (``ipvlan.template``) stay.
    """
    patterns = [
        re.compile(rf"\.{re.escape(name)}{re.escape(TMP_MARKER)}.+|{re.escape(name)}\.temp\d*") for name in names
    ]
    removed: list[Path] = []
    with os.scandir(dest_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and any(p.fullmatch(entry.name) for p in patterns):
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed.append(Path(entry.path))
    return sorted(removed)


# ------------------------------------------------------------------------------ the command


def run_install(options: InstallOptions, out: TextIO | None = None) -> int:
    """Install everything ``options`` names; print one line per file; 0 on success, 1 on failure.

    Order: check the bin dir and every source, find the host python, remove leftovers, then
    install the shim, passthru and the plugins — so a missing plugin or python changes nothing.
    """
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    try:
        dest_dir = destination_dir(options)
        sources = collect_sources(options)
        candidates = (options.python,) if options.python else PYTHON_CANDIDATES
        python = find_host_python(options.host_root, candidates)
        say(f"host python {python.path} (Python {python.version[0]}.{python.version[1]}, {python.resolved})")
        for leftover in remove_leftovers(dest_dir, [source.name for source in sources]):
            say(f"removed leftover {leftover}")
        for source in sources:
            shebang = python.shebang if source.script else None
            action = install_file(source.path, dest_dir, source.name, shebang=shebang)
            dest = dest_dir / source.name
            if action == "unchanged":
                say(f"unchanged {dest}")
            elif source.script:
                say(f"{action} {dest} (shebang {python.path})")
            else:
                say(f"{action} {dest} (from {source.path})")
    except (InstallError, OSError) as exc:
        print(f"multusd install: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
