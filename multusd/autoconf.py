"""00-multus.conf: choose the primary config, generate, keep it current, keep or remove it on exit.

containerd uses the first config file by name in its conf dir, so ``00-multus.conf`` routes every
pod through multus; it points (``clusterNetwork``) at the primary config — on K3s Flannel's
``10-flannel.conflist``. Upstream's behaviour (reference §3) is followed, including the exact JSON
shape, with these deliberate differences:

* **Never an empty or torn file** (Q3). A primary that does not parse (half written by its owner)
  raises; the old 00-multus.conf stays, and the next poll retries. Writes are tmp + fsync + rename.
* **Capabilities are recomputed** from the current primary on every generation, plus the
  daemon-config's ``capabilities`` (Q4: upstream's map only grew).
* ``daemonSocketPath`` is added (our shim reads it), and the shim's timeouts are passed through
  from daemon-config when given there.
* The file is **kept across restarts** (DESIGN §3, P3): :meth:`ConfigManager.cleanup_on_exit`
  applies ``cleanupConfigOnExit``; ``auto`` removes it only when the DaemonSet itself is going away.
* It is **recreated** when someone deletes (or renames) it, written only when its content changes
  (no churn for containerd's own watcher), and only once the daemon socket serves.
* Non-auto mode (``multusConfigFile`` = a path) copies that file, atomically, and keeps running
  (Q1: upstream's daemon exited right after startup).

Like upstream, the primary is chosen once, at startup; a new, earlier file appearing later is only
warned about (P12), and when the primary disappears the file is kept, pointing at it, until it comes
back. When the readiness indicator file disappears while running, 00-multus.conf is removed and
:class:`ReadinessIndicatorLostError` ends :meth:`ConfigManager.run` — the daemon exits 2, as
upstream does (§3.4): the primary network is gone, so no pod should be routed through multus.

Watching is a **stat poll** (default every 0.5 s) of the primary, 00-multus.conf, the readiness
file and both directories, rather than inotify: these files change a few times per node boot, so
a handful of ``stat`` calls per second is nothing, while inotify brings its own failure modes —
the per-user instance limit (128 by default, routinely exhausted on Kubernetes nodes), watches that
silently die when a directory is replaced or re-mounted, and a second code path for the readiness
file's directory. A poll also notices a deleted 00-multus.conf and a primary rewritten in place
with no special cases. Same-size rewrites inside one timestamp tick are caught the way git handles
"racily clean" files: a file modified shortly before we last read it is read again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from multusd.cni.atomicfile import write_atomic
from multusd.config import DaemonConfig

log = logging.getLogger(__name__)

MULTUS_CONF_NAME = "00-multus.conf"
MULTUS_CONF_PREFIX = "00-multus"  # upstream skips every candidate starting like this (§3.1)
DEFAULT_NETWORK_NAME = "multus-cni-network"
DEFAULT_TYPE = "multus-shim"
PRIMARY_EXTENSIONS = (".conf", ".conflist")  # upstream ignores .json candidates (§3.1)
RUNTIME_EXTENSIONS = (".conf", ".conflist", ".json")  # what containerd (libcni) itself loads
CONF_MODE = 0o600
PRIMARY_RETRIES = 120  # upstream: 120 attempts …
PRIMARY_RETRY_SECONDS = 1.0  # … 1 s apart, then exit 2
POLL_INTERVAL_SECONDS = 0.5
DAEMONSET_CHECK_TIMEOUT_SECONDS = 10.0
# A file modified less than this before we read it may change again without its (mtime, size)
# changing (coarse timestamps); it is read again at the next poll.
RACY_WINDOW_NS = 1_000_000_000
EXIT_AUTOCONF = 2  # upstream's exit code for every config-manager failure
# Keys our shim reads from its stdin conf that only daemon-config can set; copied when given there.
SHIM_PASSTHROUGH_KEYS = ("daemonReadyTimeout", "daemonDelTimeout", "daemonRequestTimeout")
_LOG_OPTION_KEYS = ("maxAge", "maxSize", "maxBackups", "compress")  # Go struct order


class AutoconfError(Exception):
    """00-multus.conf cannot be produced or kept; the daemon exits :data:`EXIT_AUTOCONF`."""


class ConfigGenError(AutoconfError):
    """The primary config cannot be turned into a multus config (bad version, bad name …)."""


class PrimaryNotFoundError(ConfigGenError):
    """No primary config (yet): retried at startup, fatal after the bounded wait."""


class PrimaryUnreadableError(ConfigGenError):
    """The primary exists but does not read as a JSON object — often a writer mid-write; retried."""


class ReadinessIndicatorLostError(AutoconfError):
    """The readiness indicator file vanished while running: 00-multus.conf was removed."""


# --------------------------------------------------------------------------------------------
# Choosing and generating (pure, apart from reading the primary)


def find_primary(directory: str | os.PathLike[str], master_cni: str = "") -> Path:
    """The primary config: ``master_cni`` if given, else the first ``.conf``/``.conflist`` by name.

    Names are compared byte-wise (Go's sort), ``00-multus*`` is skipped so we never nest ourselves,
    and directories are skipped (upstream does not; a directory named ``x.conf`` broke it). A missing
    directory or candidate raises :class:`PrimaryNotFoundError`, which the caller may retry.
    """
    base = os.fspath(directory)
    if master_cni:
        path = Path(os.path.join(base, master_cni))
        if not path.is_file():
            raise PrimaryNotFoundError(f"multusMasterCNI {master_cni!r} not found in {base}")
        return path
    try:
        names = os.listdir(base)
    except FileNotFoundError as exc:
        raise PrimaryNotFoundError(f"could not find a plugin configuration in {base}: directory missing") from exc
    except OSError as exc:
        raise ConfigGenError(f"error when listing the CNI plugin configurations: {exc}") from exc
    candidates = sorted(
        (
            name
            for name in names
            if not name.startswith(MULTUS_CONF_PREFIX)
            and os.path.splitext(name)[1] in PRIMARY_EXTENSIONS
            and not os.path.isdir(os.path.join(base, name))
        ),
        key=os.fsencode,
    )
    if not candidates:
        raise PrimaryNotFoundError(f"could not find a plugin configuration in {base}")
    return Path(os.path.join(base, candidates[0]))


_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?",
    re.ASCII,
)


def _semver_key(version: str) -> tuple[int, int, int, int] | None:
    """A sort key for a strict semantic version (as Go's blang/semver ``Make``), or None.

    Only comparisons with 0.4.0 are needed, so a pre-release simply sorts below its release.
    """
    match = _SEMVER.fullmatch(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3]), 0 if match[4] else 1


_V040 = (0, 4, 0, 1)


def check_version_compatibility(multus_version: str, delegate_version: Any) -> None:
    """Upstream's rule (§3.2): a multus config ≥ 0.4.0 needs a primary ≥ 0.4.0 (texts as upstream)."""
    top = _semver_key(multus_version)
    if top is None:
        raise ConfigGenError(f"couldn't get top level cni version: {multus_version!r} is not a semantic version")
    if top < _V040:
        return
    if not isinstance(delegate_version, str):
        raise ConfigGenError("couldn't get cni version of delegate")
    key = _semver_key(delegate_version)
    if key is None:
        raise ConfigGenError(f"delegate cni version {delegate_version!r} is not a semantic version")
    if key < _V040:
        raise ConfigGenError(
            f"delegate cni version is {delegate_version} while top level cni version is {multus_version}"
        )


def primary_capabilities(primary: Mapping[str, Any]) -> dict[str, bool]:
    """Capabilities set true by the primary: every plugin's in a list, else the top-level map.

    Non-boolean values are ignored (upstream panicked, Q13); ``false`` never removes a capability
    another plugin enables.
    """
    plugins = primary.get("plugins")
    if isinstance(plugins, list) and plugins:
        maps = [p.get("capabilities") for p in plugins if isinstance(p, dict)]
    else:
        maps = [primary.get("capabilities")]
    out: dict[str, bool] = {}
    for caps in maps:
        if isinstance(caps, dict):
            out.update({name: True for name, value in caps.items() if value is True})
    return out


def _read_json_object(path: str | os.PathLike[str], what: str) -> tuple[bytes, dict[str, Any]]:
    """(bytes, object) of a config file; missing → PrimaryNotFoundError, anything unusable (a
    torn write included) → PrimaryUnreadableError, so callers keep the last good 00-multus.conf."""
    name = f"{what}{os.fspath(path)}"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise PrimaryNotFoundError(f"{name} is missing") from exc
    except OSError as exc:
        raise PrimaryUnreadableError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PrimaryUnreadableError(f"{name} is not valid JSON (yet?): {exc}") from exc
    if not isinstance(obj, dict):
        raise PrimaryUnreadableError(f"{name} is not a JSON object")
    return data, obj


def load_primary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The primary config as a JSON object; anything else is :class:`PrimaryUnreadableError`."""
    return _read_json_object(path, "primary CNI configuration ")[1]


def _given(cfg: DaemonConfig, key: str, attr: str) -> bool:
    """Was ``key`` set by the operator? Upstream copies only keys present in daemon-config.

    Our :class:`DaemonConfig` fills defaults (K3s's ``binDir``, ``logLevel`` …) that upstream leaves
    empty; copying those would change the file's exact shape. A value that differs from the default
    also counts, so configs built in code behave the same as parsed ones.
    """
    if any(k.lower() == key.lower() for k in cfg.raw):
        return True
    default = next(f.default for f in fields(DaemonConfig) if f.name == attr)
    return bool(getattr(cfg, attr) != default)


def _go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it: UTF-8, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)  # these can only occur inside JSON strings
    return text.encode()


def generate(cfg: DaemonConfig, primary_path: str | os.PathLike[str]) -> bytes:
    """The 00-multus.conf bytes for ``primary_path``: upstream's exact shape (§3.3), plus our keys.

    Field order is upstream's struct order; empty values are omitted except ``cniVersion``,
    ``name`` and ``type``; no trailing newline. With ``forceCNIVersion`` the version check uses
    multus' own version, because the primary is (or will be) rewritten to it.
    Raises :class:`ConfigGenError` (never returns something empty or invalid).
    """
    path = os.fspath(primary_path)
    primary = load_primary(path)
    delegate_version = cfg.cni_version if cfg.force_cni_version else primary.get("cniVersion")
    try:
        check_version_compatibility(cfg.cni_version, delegate_version)
    except ConfigGenError as exc:
        raise ConfigGenError(
            f"failed to load the primary CNI configuration as a multus delegate with error '{exc}'"
        ) from exc
    plugins = primary.get("plugins")
    types = {p.get("type") for p in plugins if isinstance(p, dict)} if isinstance(plugins, list) else set()
    types.add(primary.get("type"))
    if types & {"multus", DEFAULT_TYPE, cfg.type}:
        # P12: a multus config as our own cluster network would recurse on every ADD.
        raise ConfigGenError(f"refusing to use {path} as the primary config: it is a multus config itself")
    name: Any = DEFAULT_NETWORK_NAME
    if cfg.override_network_name:
        name = primary.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigGenError(f"overrideNetworkName is set but the primary config {path} has no name")

    capabilities = primary_capabilities(primary)
    capabilities.update({k: True for k, v in (cfg.capabilities or {}).items() if v is True})

    out: dict[str, Any] = {}

    def copy(key: str, attr: str) -> None:
        value = getattr(cfg, attr)
        if value and _given(cfg, key, attr):
            out[key] = value

    copy("binDir", "bin_dir")
    if capabilities:
        out["capabilities"] = dict(sorted(capabilities.items(), key=lambda kv: kv[0].encode()))
    out["cniVersion"] = cfg.cni_version
    copy("logFile", "log_file")
    copy("logLevel", "log_level")
    copy("logToStderr", "log_to_stderr")
    if cfg.log_options is not None and _given(cfg, "logOptions", "log_options"):
        out["logOptions"] = {k: cfg.log_options[k] for k in _LOG_OPTION_KEYS if cfg.log_options.get(k) is not None}
    out["name"] = name
    out["clusterNetwork"] = path
    copy("namespaceIsolation", "namespace_isolation")
    copy("globalNamespaces", "global_namespaces")
    out["type"] = cfg.type or DEFAULT_TYPE
    copy("cniDir", "cni_dir")
    copy("auxiliaryCNIChainName", "auxiliary_cni_chain_name")
    copy("daemonSocketDir", "daemon_socket_dir")
    out["daemonSocketPath"] = str(cfg.effective_socket_path)
    for key in SHIM_PASSTHROUGH_KEYS:
        value = cfg.raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            out[key] = value
    if cfg.override_network_name:
        out["overrideNetworkName"] = True  # upstream does not clear it (§3.3)
    return _go_json(out)


def force_cni_version(primary_path: str | os.PathLike[str], version: str) -> bool:
    """Rewrite the primary's ``cniVersion`` to ``version`` (forceCNIVersion, §3.5), atomically.

    Only when it differs — our own rewrite must not look like a change forever. Key order is kept
    (upstream re-sorts); the file keeps its mode. Returns whether the file was rewritten.
    """
    path = Path(primary_path)
    obj = load_primary(path)
    if obj.get("cniVersion") == version:
        return False
    obj["cniVersion"] = version
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    try:
        write_atomic(path, json.dumps(obj, indent=2).encode() + b"\n", mode)
    except OSError as exc:
        raise ConfigGenError(f"forceCNIVersion: cannot rewrite {path}: {exc.strerror or exc}") from exc
    log.info("forceCNIVersion: rewrote cniVersion of %s to %s", path, version)
    return True


def target_path(cfg: DaemonConfig) -> Path:
    """The file multusd owns in ``cniConfigDir``: 00-multus.conf, or the copied user config."""
    if cfg.auto_mode:
        return Path(cfg.cni_config_dir) / MULTUS_CONF_NAME
    return Path(cfg.cni_config_dir) / os.path.basename(cfg.multus_config_file)


def load_user_config(path: str | os.PathLike[str]) -> bytes:
    """Non-auto mode: the user's file, as is, once it parses as a JSON object (never a torn copy)."""
    return _read_json_object(path, "multusConfigFile ")[0]


def render_once(cfg: DaemonConfig) -> tuple[Path, bytes]:
    """(target, content) without waiting or touching any file — ``multusd generate-config``."""
    if not cfg.auto_mode:
        return target_path(cfg), load_user_config(cfg.multus_config_file)
    primary = find_primary(cfg.multus_autoconfig_dir, cfg.multus_master_cni)
    return target_path(cfg), generate(cfg, primary)


# --------------------------------------------------------------------------------------------
# Watching


Signature = tuple[int, int, int]  # (mtime_ns, size, inode)


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass
class _Watched:
    """One polled path: reports a change when its signature moves, or while it is "racy"."""

    path: Path
    sig: Signature | None = None
    read_ns: int = 0
    primed: bool = False

    def changed(self) -> bool:
        sig = _signature(self.path)
        racy = sig is not None and sig[0] + RACY_WINDOW_NS >= self.read_ns
        moved = not self.primed or sig != self.sig
        self.sig, self.primed = sig, True
        if moved or racy:
            self.read_ns = time.time_ns()
            return True
        return False


class ConfigManager:
    """Owns ``<cniConfigDir>/00-multus.conf`` (or the copied user config) for the daemon's lifetime.

    ``run(stop, serving)`` is a daemon-lifetime task (name it ``autoconf``). It raises an
    :class:`AutoconfError` — exit :data:`EXIT_AUTOCONF` — when no primary appears within the bounded
    wait, the primary is incompatible at startup, the first write fails, or the readiness indicator
    file vanishes. Later generation problems are logged and the last good file is kept.
    """

    def __init__(
        self,
        cfg: DaemonConfig,
        *,
        primary_retries: int = PRIMARY_RETRIES,
        primary_retry_seconds: float = PRIMARY_RETRY_SECONDS,
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.cfg = cfg
        self.primary_retries = primary_retries
        self.primary_retry_seconds = primary_retry_seconds
        self.poll_interval = poll_interval
        self.target = target_path(cfg)
        #: The primary config in use (auto mode) or the user's file (non-auto), once found.
        self.source: Path | None = None if cfg.auto_mode else Path(cfg.multus_config_file)
        #: Set once the file has been written (or found up to date) after the socket served.
        self.written = asyncio.Event()
        #: The content multusd keeps on disk (last good generation).
        self.content: bytes | None = None
        self._source_watch: _Watched | None = None
        self._target_watch = _Watched(self.target)
        self._dirs_watch: list[_Watched] = []
        self._failing: str | None = None  # last generation error, logged once
        self._source_missing = False
        self._write_error: str | None = None
        self._warned_candidates: set[str] = set()
        self._readiness_seen = False

    # ---------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event, serving: asyncio.Event) -> None:
        """Find the primary, write once ``serving`` is set, then keep the file current until ``stop``."""
        content = await self._initial_content(stop)
        if content is None or not await _wait_either(serving, stop):
            return
        try:  # the wait for serving can be long: prefer what the primary says now
            content = self._render()
        except ConfigGenError as exc:
            log.warning("primary changed while the daemon started and is not usable now (%s); using the earlier", exc)
        self.content = content
        try:
            await self._ensure_target(force_check=True)
        except OSError as exc:
            raise AutoconfError(f"cannot write {self.target}: {exc.strerror or exc}") from exc
        self.written.set()
        log.info("%s written (clusterNetwork %s)", self.target, self.source)
        self._check_readiness()  # from here on, the readiness file vanishing is fatal
        self._dirs_watch = [_Watched(Path(d)) for d in {self.cfg.multus_autoconfig_dir, self.cfg.cni_config_dir}]
        while not await _wait_either(stop, timeout=self.poll_interval):
            await self.poll()

    async def _initial_content(self, stop: asyncio.Event) -> bytes | None:
        """Bounded wait for a usable primary (upstream: 120 tries, 1 s apart). None when stopped meanwhile."""
        last: ConfigGenError | None = None
        for attempt in range(1, max(1, self.primary_retries) + 1):
            try:
                if self.cfg.auto_mode:
                    self.source = find_primary(self.cfg.multus_autoconfig_dir, self.cfg.multus_master_cni)
                self._source_watch = _Watched(self._source_path)
                self._source_watch.changed()  # prime: the next poll compares with what we read now
                return self._render()
            except (PrimaryNotFoundError, PrimaryUnreadableError) as exc:
                last = exc
                if attempt == 1 or attempt % 10 == 0:
                    log.warning(
                        "waiting for the primary CNI config (attempt %d/%d): %s", attempt, self.primary_retries, exc
                    )
            if await _wait_either(stop, timeout=self.primary_retry_seconds):
                return None
        assert last is not None
        if isinstance(last, PrimaryNotFoundError) and self.cfg.auto_mode:
            raise PrimaryNotFoundError(f"failed to find the cluster master CNI plugin: {last}") from last
        raise last

    @property
    def _source_path(self) -> Path:
        assert self.source is not None
        return self.source

    def _render(self) -> bytes:
        if not self.cfg.auto_mode:
            return load_user_config(self._source_path)
        if self.cfg.force_cni_version:
            force_cni_version(self._source_path, self.cfg.cni_version)
        return generate(self.cfg, self._source_path)

    # ---------------------------------------------------------------- one poll

    async def poll(self) -> None:
        """One watch step: readiness, primary, our file, new candidates. Public for tests."""
        self._check_readiness()
        assert self._source_watch is not None
        if self._source_watch.changed() or self._failing is not None:
            self._regenerate()
        try:
            await self._ensure_target()
        except OSError as exc:
            text = f"{exc.strerror or exc}"
            if text != self._write_error:
                log.error("cannot write %s (will retry): %s", self.target, text)
            self._write_error = text
        else:
            self._write_error = None
        if any([w.changed() for w in self._dirs_watch]):  # list: poll every dir, not just the first
            self._warn_candidates()

    def _check_readiness(self) -> None:
        path = self.cfg.readiness_indicator_file
        if not path or not self.cfg.auto_mode:
            return  # non-auto: upstream applies the file per request instead (§2.5)
        if os.path.exists(path):
            self._readiness_seen = True
            return
        if self._readiness_seen:
            log.error("readinessindicatorfile %s is gone: removing %s and exiting", path, self.target)
            self.target.unlink(missing_ok=True)
            raise ReadinessIndicatorLostError(f"readiness indicator file {path} was removed")

    def _regenerate(self) -> None:
        if self._source_watch is not None and self._source_watch.sig is None:
            if not self._source_missing:
                log.warning("%s was removed; keeping %s until it comes back", self.source, self.target)
            self._source_missing = True
            return
        self._source_missing = False
        try:
            content = self._render()
        except ConfigGenError as exc:
            if str(exc) != self._failing:
                log.error("cannot regenerate %s, keeping the current one (retrying): %s", self.target, exc)
            self._failing = str(exc)
            return
        if self._failing is not None:
            log.info("%s readable again", self.source)
        self._failing = None
        if content != self.content:
            log.info("%s changed: regenerating %s", self.source, self.target)
            self.content = content

    async def _ensure_target(self, force_check: bool = False) -> None:
        """Make the file on disk equal :attr:`content`; write only when it differs."""
        if self.content is None:
            return
        changed = self._target_watch.changed()
        if not (changed or force_check):
            return
        try:
            current: bytes | None = self.target.read_bytes()
        except FileNotFoundError:
            current = None
        if current == self.content:
            return
        if self.written.is_set():
            if current is None:
                log.warning("%s was removed or renamed by someone else: recreating it", self.target)
            else:
                log.info("writing %s", self.target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_atomic, self.target, self.content, CONF_MODE)
        self._target_watch.changed()  # our own write is not a change to react to

    def _warn_candidates(self) -> None:
        """P12: say so when a config containerd would prefer, or a new primary candidate, appears."""
        try:
            names = os.listdir(self.cfg.cni_config_dir)
        except OSError:
            names = []
        for name in names:
            if (
                os.path.splitext(name)[1] in RUNTIME_EXTENSIONS
                and os.fsencode(name) < os.fsencode(self.target.name)
                and name not in self._warned_candidates
            ):
                self._warned_candidates.add(name)
                log.warning("%s sorts before %s: containerd will use it and bypass multus", name, self.target.name)
        if not self.cfg.auto_mode or self.cfg.multus_master_cni:
            return
        try:
            now = find_primary(self.cfg.multus_autoconfig_dir)
        except ConfigGenError:
            return
        if now != self.source and now.name not in self._warned_candidates:
            self._warned_candidates.add(now.name)
            log.warning("%s would now be the primary config; multusd keeps %s until restarted", now, self.source)

    # ---------------------------------------------------------------- exit

    async def cleanup_on_exit(
        self,
        policy: str,
        daemonset_gone: Callable[[], Awaitable[bool]],
        timeout: float = DAEMONSET_CHECK_TIMEOUT_SECONDS,
    ) -> bool:
        """Apply ``cleanupConfigOnExit``; returns whether the file was removed.

        ``always`` is upstream's behaviour; ``never`` keeps it; ``auto`` removes it only when
        ``daemonset_gone()`` says our DaemonSet is deleted or being deleted — an uninstall (P4) —
        and keeps it on a plain restart (P3). If that question cannot be answered (API down,
        timeout), the file is kept: a restart is far more likely than an uninstall, and pods then
        wait for the next daemon instead of silently getting Flannel only.
        """
        if policy == "never":
            remove = False
        elif policy == "always":
            remove = True
        elif policy == "auto":
            try:
                async with asyncio.timeout(timeout):
                    remove = bool(await daemonset_gone())
            except Exception as exc:  # API unreachable, timeout …: the safe side is keeping it
                log.warning("cannot tell whether the DaemonSet is being deleted (%s): keeping %s", exc, self.target)
                return False
        else:
            raise ValueError(f"unknown cleanupConfigOnExit policy {policy!r}")
        if not remove:
            log.info("keeping %s (cleanupConfigOnExit=%s)", self.target, policy)
            return False
        if self.source is not None and not self.cfg.auto_mode and _same_file(self.source, self.target):
            log.warning("%s is the user's own multusConfigFile: not removing it", self.target)
            return False
        try:
            self.target.unlink()
        except FileNotFoundError:
            return False
        log.info("removed %s (cleanupConfigOnExit=%s)", self.target, policy)
        return True


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


async def _wait_either(event: asyncio.Event, other: asyncio.Event | None = None, timeout: float | None = None) -> bool:
    """Wait for ``event`` (or ``other``, or the timeout). True only when ``event`` is set."""
    if event.is_set():
        return True
    waiters = [asyncio.ensure_future(event.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return event.is_set()
