"""Finding and running CNI plugins (libcni ``pkg/invoke``), with a timeout and an optional chroot.

Three pieces, from the outside in:

* :class:`PluginRunner` — the I/O seam: run an argv with stdin and env, bounded by a timeout, and
  return ``(returncode, stdout, stderr)``. :class:`SubprocessRunner` is the real one; tests may
  pass an in-memory double (libcni's ``Exec`` interface has the same purpose).
* :func:`find_in_path` / :func:`resolve_in_root` — libcni's ``FindInPath``: the first
  ``<dir>/<type>`` that is a regular file, symlinks followed. With a ``chroot_dir`` the lookup
  happens *inside* that root, following symlinks with the root as ``/``: K3s's bin dir is full of
  absolute symlinks into ``/var/lib/rancher/k3s/data/<hash>/bin/cni`` that mean nothing in the
  daemon's own mount namespace (P9). Upstream looked in its own namespace and failed there.
* :class:`PluginExecutor` — builds the env (process env, then ``CNI_*``; later keys win), runs the
  plugin (``/usr/sbin/chroot <root> <path>`` when chrooted: forking to call ``chroot(2)`` in a
  ``preexec_fn`` costs 2 to 13 ms per spawn and is unsafe with threads, python-costs §4), retries
  "text file busy" as libcni does, and turns the output into a :class:`~multusd.cni.types.Result`
  or a :class:`CniError` with the plugin's own code.

The path handed to exec is the *unresolved* ``<dir>/<type>``: K3s's multi-call ``cni`` binary
picks the plugin from ``argv[0]``, so executing the symlink's target would run the wrong plugin.

Child reaping: on Python 3.11 asyncio's default child watcher starts one thread per running
plugin. The daemon should call :func:`install_pidfd_child_watcher` once, from inside its running
loop, before serving (3.12+ does this by default). Importing this module changes no global state.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import CniCode, CniError
from .rootpath import resolve_in_root
from .types import LATEST_VERSION, Result

log = logging.getLogger(__name__)

#: Default bound on one plugin invocation. Upstream has none (a hung delegate hangs the pod's
#: sandbox creation forever, §12.6); 60 s covers slow IPAM (DHCP) with room to spare.
PLUGIN_TIMEOUT_SECONDS = 60.0
#: libcni retries a plugin whose binary is being written ("text file busy") after 1 s, 5 times.
TEXT_BUSY_RETRIES = 5
TEXT_BUSY_RETRY_DELAY_SECONDS = 1.0
#: coreutils chroot(1): execs its argument with argv[0] unchanged, keeps stdin/stdout/env.
CHROOT_BINARY = "/usr/sbin/chroot"
#: Bound on symlinks followed while resolving a path inside a root (Linux's MAXSYMLINKS is 40).
#: How much of an unparsable stdout is quoted in an error.
STDOUT_EXCERPT_BYTES = 512

# chroot(1) and nsenter(1) exit 126 when they cannot exec their command.
_EXEC_FAILED_RC = 126


# --------------------------------------------------------------------------------------------
# The runner seam


class PluginRunner(Protocol):
    """Runs one process to completion. Implementations must leave no process behind.

    ``timeout`` bounds the whole run; on expiry raise :class:`TimeoutError` (after killing and
    reaping). An exec failure is an :class:`OSError` (ETXTBSY included, for the retry).
    """

    async def run(
        self, argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes, bytes]: ...


class SubprocessRunner:
    """The real runner: ``asyncio.create_subprocess_exec`` in a new process group.

    ``process_group=0`` makes the plugin a group leader, so a timeout or a cancellation kills it
    *and* whatever it forked (bridge → host-local) with one ``killpg``; the child is always reaped.
    It also keeps CPython on its vfork fast path (no ``preexec_fn``).

    ``prefix`` is prepended to every argv. Tests use ``["nsenter", "--net=<node netns>", "--"]``
    to run plugins inside a network namespace that stands in for the node, so they can create
    bridges, veths and iptables rules without touching the real host; ``nsenter`` execs the
    plugin in place (same pid, same process group), so the kill-the-group guarantee holds.
    """

    def __init__(self, prefix: Sequence[str] = ()) -> None:
        self.prefix: tuple[str, ...] = tuple(prefix)

    async def run(
        self, argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            *self.prefix,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            process_group=0,
        )
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await proc.communicate(stdin)
        except BaseException:  # timeout or cancellation: kill the whole group, always reap
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            raise
        assert proc.returncode is not None
        return proc.returncode, stdout, stderr


def install_pidfd_child_watcher() -> bool:
    """Reap plugins with pidfds instead of one waitpid thread each (Python 3.11 only).

    Call once from the daemon's main coroutine (it attaches to the running loop), before the first
    plugin runs. No-op returning False on 3.12+ (already the default; the watcher API is
    deprecated there) or when the kernel lacks ``pidfd_open`` (< 5.3).
    """
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return True


# --------------------------------------------------------------------------------------------
# Lookup


def _is_regular_file(path: str, root: str | None) -> bool:
    try:
        host_path = resolve_in_root(root, path) if root is not None else path
        return stat.S_ISREG(os.stat(host_path).st_mode)
    except OSError:
        return False


def find_in_path(plugin_type: str, paths: Sequence[str], root: str | None = None) -> str:
    """The first ``<dir>/<plugin_type>`` that is a regular file (symlinks followed).

    With ``root`` the dirs and symlinks are read inside that root and the returned path is the
    path *inside* it, ready for ``chroot <root> <path>``. Errors carry libcni's texts.
    """
    if not plugin_type:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, "no plugin name provided")
    if "/" in plugin_type:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"invalid plugin name: {plugin_type}")
    if not paths:
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, "no paths provided")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if _is_regular_file(candidate, root):
            return candidate
    where = f" (inside {root})" if root not in (None, "/") else ""
    raise CniError(CniCode.INTERNAL, f'failed to find plugin "{plugin_type}" in path [{" ".join(paths)}]{where}')


# --------------------------------------------------------------------------------------------
# Execution


@dataclass(frozen=True)
class ExecArgs:
    """The ``CNI_*`` variables of one invocation (libcni ``invoke.Args``, minus the path)."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()

    def to_env(self, cni_path: str, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` then the CNI variables, later keys winning (libcni ``AsEnv`` + ``dedupEnv``)."""
        env = dict(base)
        env.update(
            CNI_COMMAND=self.command,
            CNI_CONTAINERID=self.container_id,
            CNI_NETNS=self.netns,
            CNI_ARGS=";".join(f"{k}={v}" for k, v in self.args),
            CNI_IFNAME=self.ifname,
            CNI_PATH=cni_path,
        )
        return env


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin's VERSION command reported."""

    cni_version: str
    supported_versions: tuple[str, ...]


class PluginExecutor:
    """Finds and runs plugins from an ordered list of bin dirs.

    ``bin_dirs`` are host paths: they are searched in order and passed to plugins as
    ``CNI_PATH`` (joined with ``:``), which is what delegating plugins (bridge → host-local) use.
    With ``chroot_dir`` they are looked up and executed inside that root.
    ``base_env`` defaults to the daemon's environment as it is at each call.
    """

    def __init__(
        self,
        bin_dirs: Sequence[str],
        runner: PluginRunner | None = None,
        *,
        chroot_dir: str | None = None,
        timeout_seconds: float = PLUGIN_TIMEOUT_SECONDS,
        base_env: Mapping[str, str] | None = None,
        chroot_binary: str = CHROOT_BINARY,
        busy_retries: int = TEXT_BUSY_RETRIES,
        busy_retry_delay_seconds: float = TEXT_BUSY_RETRY_DELAY_SECONDS,
    ) -> None:
        self.bin_dirs: tuple[str, ...] = tuple(bin_dirs)
        self.runner: PluginRunner = runner if runner is not None else SubprocessRunner()
        self.chroot_dir = chroot_dir or None
        self.timeout_seconds = timeout_seconds
        self.base_env = base_env
        self.chroot_binary = chroot_binary
        self.busy_retries = busy_retries
        self.busy_retry_delay_seconds = busy_retry_delay_seconds

    @property
    def cni_path(self) -> str:
        return ":".join(self.bin_dirs)

    def find_plugin(self, plugin_type: str) -> str:
        """The plugin's path (inside the chroot when there is one); CniError if absent."""
        return find_in_path(plugin_type, self.bin_dirs, self.chroot_dir)

    def argv(self, plugin_path: str) -> list[str]:
        """What to exec for a found plugin: itself, or chroot(1) into the root running it."""
        if self.chroot_dir is None:
            return [plugin_path]
        return [self.chroot_binary, self.chroot_dir, plugin_path]

    async def exec_plugin(
        self, plugin_type: str, stdin: bytes, args: ExecArgs, *, cni_path: str | None = None
    ) -> bytes:
        """Run a plugin; its stdout on exit 0, else the plugin's CniError (see :meth:`run_plugin`)."""
        stdout, _ = await self.run_plugin(plugin_type, stdin, args, cni_path=cni_path)
        return stdout

    async def run_plugin(
        self, plugin_type: str, stdin: bytes, args: ExecArgs, *, cni_path: str | None = None
    ) -> tuple[bytes, bytes]:
        """Run a plugin; (stdout, stderr) on exit 0, else the plugin's CniError (``pluginErr``).

        A timeout is ``CniError(TRY_AGAIN_LATER)``: the plugin did not fail, it did not finish,
        and the runtime may retry (kubelet does); 999 would claim a plugin failure that never
        happened. "Text file busy" (an upgrade is writing the binary) is retried
        ``busy_retries`` times ``busy_retry_delay_seconds`` apart, then also reported as 11.
        """
        path = self.find_plugin(plugin_type)
        argv = self.argv(path)
        base = os.environ if self.base_env is None else self.base_env
        env = args.to_env(self.cni_path if cni_path is None else cni_path, base)
        attempts = self.busy_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                rc, stdout, stderr = await self.runner.run(argv, stdin, env, self.timeout_seconds)
            except TimeoutError:
                raise CniError(
                    CniCode.TRY_AGAIN_LATER,
                    f'plugin "{plugin_type}" timed out after {self.timeout_seconds:g}s ({args.command})',
                    f"command: {' '.join(argv)}; killed",
                ) from None
            except OSError as exc:
                if exc.errno == errno.ETXTBSY:
                    busy_detail = str(exc)
                else:
                    raise CniError(
                        CniCode.INTERNAL,
                        f'failed to execute plugin "{plugin_type}" ({args.command}): {exc.strerror or exc}',
                        " ".join(argv),
                    ) from exc
            else:
                text_busy = rc == _EXEC_FAILED_RC and b"Text file busy" in stderr
                if not text_busy:
                    if rc != 0:
                        raise CniError.from_plugin(stdout, stderr, rc)
                    if stderr.strip():
                        log.debug("plugin %s (%s) stderr: %s", plugin_type, args.command, _text(stderr))
                    return stdout, stderr
                busy_detail = _text(stderr)
            if attempt < attempts:
                log.info(
                    "plugin %s is busy (text file busy), retry %d/%d in %gs",
                    plugin_type,
                    attempt,
                    self.busy_retries,
                    self.busy_retry_delay_seconds,
                )
                await asyncio.sleep(self.busy_retry_delay_seconds)
        raise CniError(
            CniCode.TRY_AGAIN_LATER,
            f'plugin "{plugin_type}" could not be executed: text file busy after {attempts} attempts',
            busy_detail,
        )

    async def exec_with_result(self, plugin_type: str, conf_bytes: bytes, conf_version: str, args: ExecArgs) -> Result:
        """Run a plugin that must print a result (ADD); see :func:`parse_result`."""
        stdout, stderr = await self.run_plugin(plugin_type, conf_bytes, args)
        return parse_result(stdout, conf_version, plugin_type, args.command, stderr)

    async def exec_without_result(self, plugin_type: str, conf_bytes: bytes, args: ExecArgs) -> None:
        """Run a plugin whose output is ignored on success (DEL, CHECK, GC, STATUS)."""
        await self.exec_plugin(plugin_type, conf_bytes, args)

    async def version_info(self, plugin_type: str) -> PluginInfo:
        """The plugin's VERSION answer (libcni ``GetVersionInfo``: netns/ifname/path "dummy")."""
        args = ExecArgs(command="VERSION", netns="dummy", ifname="dummy")
        stdin = json.dumps({"cniVersion": LATEST_VERSION}).encode()
        try:
            stdout = await self.exec_plugin(plugin_type, stdin, args, cni_path="dummy")
        except CniError as exc:
            if exc.msg == "unknown CNI_COMMAND: VERSION":
                return PluginInfo(cni_version="0.1.0", supported_versions=("0.1.0",))
            raise
        return parse_plugin_info(stdout, plugin_type)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()


def parse_result(
    stdout: bytes, conf_version: str, plugin_type: str = "", command: str = "ADD", stderr: bytes = b""
) -> Result:
    """A plugin's stdout as a Result; a result without ``cniVersion`` is in the conf's version.

    JSON ``null`` is the empty result (libcni). Anything else that is not a valid result is a
    CniError naming the plugin, quoting the start of what it printed, with its stderr as details.
    """
    who = f'plugin "{plugin_type}" ({command})' if plugin_type else f"plugin ({command})"
    try:
        obj: Any = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as exc:
        excerpt = stdout[:STDOUT_EXCERPT_BYTES].decode("utf-8", "replace")
        raise CniError(
            CniCode.DECODING_FAILURE, f"{who} printed an unparsable result {excerpt!r}: {exc}", _text(stderr)
        ) from exc
    try:
        return Result.from_json(obj, default_version=conf_version)
    except CniError as exc:
        raise CniError(exc.code, f"{who} printed an invalid result: {exc.msg}", exc.details or _text(stderr)) from exc


def parse_plugin_info(stdout: bytes, plugin_type: str = "") -> PluginInfo:
    """A VERSION answer (libcni ``PluginDecoder``): 0.2.0 without a list means 0.1.0 and 0.2.0."""
    try:
        obj: Any = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"decoding version info of {plugin_type!r}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CniError(CniCode.DECODING_FAILURE, f"decoding version info of {plugin_type!r}: not an object")
    version = obj.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(CniCode.DECODING_FAILURE, f"decoding version info of {plugin_type!r}: missing field cniVersion")
    supported = obj.get("supportedVersions")
    if not supported:
        if version == "0.2.0":
            return PluginInfo(version, ("0.1.0", "0.2.0"))
        raise CniError(
            CniCode.DECODING_FAILURE, f"decoding version info of {plugin_type!r}: missing field supportedVersions"
        )
    if not isinstance(supported, list) or not all(isinstance(v, str) for v in supported):
        raise CniError(
            CniCode.DECODING_FAILURE,
            f"decoding version info of {plugin_type!r}: supportedVersions is not a list of strings",
        )
    return PluginInfo(version, tuple(supported))
