"""Network configurations: parsing, loading from disk, injection, and libcni's name validators.

A netconf is kept as *raw + view* (STYLE §2.1): ``raw`` is the JSON object exactly as the operator
or NAD wrote it, and the few typed fields libcni itself reads (``name``, ``type``, ``cniVersion``,
``capabilities`` …) are a view over it. Plugins receive ``raw`` with a handful of keys injected
(:func:`inject`), never JSON rebuilt from the view, so plugin-specific keys (calico's
``kubernetes.kubeconfig``, flannel's ``delegate`` …) always pass through untouched.

Parsing follows libcni's ``conf.go`` (v1.3.0) rule for rule, error texts included, because users
compare our messages with upstream's. Two deliberate differences:

* :func:`load_conf_by_name` skips unparsable *unrelated* files instead of failing the lookup
  (upstream quirk Q16: one broken file in the conf dir broke every lookup by name).
* Every failure is a :class:`CniError` with a spec code (6 = could not decode JSON, 7 = decoded but
  invalid, 5 = could not read) and, when it came from a file, the file's path in the message.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import CniCode, CniError
from .types import LATEST_VERSION, parse_version

log = logging.getLogger(__name__)

#: Extensions libcni treats as single plugin confs and as lists.
CONF_EXTENSIONS: tuple[str, ...] = (".conf", ".json")
CONFLIST_EXTENSIONS: tuple[str, ...] = (".conflist",)
ALL_CONF_EXTENSIONS: tuple[str, ...] = (".conf", ".conflist", ".json")

# libcni pkg/utils: containerID and network name share one pattern; ASCII only, whole string.
_VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*", re.ASCII)
MAX_IFNAME_BYTES = 15
# Go's unicode.IsSpace differs from str.isspace() only on these four ASCII separators.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")


# --------------------------------------------------------------------------------------------
# Views


@dataclass(frozen=True)
class PluginConf:
    """One plugin's configuration: the raw object plus the fields libcni reads from it.

    ``data`` is the exact bytes the conf was parsed from; the result cache stores them (base64) so a
    later DEL by another implementation sees what we saw. ``raw`` must be treated as read-only:
    derive new confs with :func:`inject`.
    """

    raw: dict[str, Any] = field(repr=False)
    name: str
    type: str
    cni_version: str
    capabilities: Mapping[str, bool] = field(repr=False)
    data: bytes = field(repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The bytes to hand to a plugin (the exact input when nothing was injected)."""
        return self.data


@dataclass(frozen=True)
class ConfList:
    """A network configuration list (``.conflist``): plugins run in order under one name/version.

    ``plugins`` holds the inline plugins followed, for lists loaded from a file, by the
    subdirectory plugins (``<dir>/<name>/*.conf``); ``raw``/``data`` are the list as given, which
    is what libcni caches. :meth:`expanded_raw` gives a lossless object holding every plugin.
    ``cni_version`` is the effective version (after ``cniVersions`` selection).
    """

    raw: dict[str, Any] = field(repr=False)
    name: str
    cni_version: str
    cni_versions: tuple[str, ...]
    disable_check: bool
    disable_gc: bool
    load_only_inlined_plugins: bool
    plugins: tuple[PluginConf, ...]
    data: bytes = field(repr=False, compare=False)

    def to_bytes(self) -> bytes:
        return self.data

    def expanded_raw(self) -> dict[str, Any]:
        """The list object with ``plugins`` replaced by every plugin's raw object.

        Subdirectory plugins exist only on the node that loaded the file; callers that persist a
        list (the scratch cache) need this form so a later DEL runs the same plugins.
        """
        out = dict(self.raw)
        out["plugins"] = [p.raw for p in self.plugins]
        return out


# --------------------------------------------------------------------------------------------
# Parsing


def _decode(data: bytes | str | Mapping[str, Any], what: str) -> tuple[dict[str, Any], bytes]:
    """JSON bytes or an object → (private copy of the object, bytes). Not an object → code 6."""
    if isinstance(data, Mapping):
        try:
            encoded = _dumps(data)
        except (TypeError, ValueError) as exc:
            raise CniError(CniCode.DECODING_FAILURE, f"error parsing {what}: {exc}") from exc
        obj: Any = json.loads(encoded)
        return obj, encoded
    encoded = data.encode() if isinstance(data, str) else bytes(data)
    try:
        obj = json.loads(encoded)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"error parsing {what}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CniError(CniCode.DECODING_FAILURE, f"error parsing {what}: expected a JSON object, got {_json_type(obj)}")
    return obj, encoded


def _dumps(obj: Any) -> bytes:
    """Compact JSON as Go writes it (UTF-8, no spaces); key order is kept."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_field(obj: Mapping[str, Any], key: str) -> Any:
    """Look ``key`` up as Go's encoding/json does for a struct field: case-insensitively.

    ``types.PluginConf`` is a Go struct, so ``"Type"`` or ``"CNIVersion"`` count; an exact match
    wins, otherwise the last case-insensitive match in the document. Absent → None (as ``null``).
    """
    if key in obj:
        return obj[key]
    folded = key.lower()
    found: Any = None
    for k, v in obj.items():
        if k.lower() == folded:
            found = v
    return found


def _string_field(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = _go_field(obj, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CniError(
            CniCode.DECODING_FAILURE,
            f"error parsing {what}: cannot unmarshal {_json_type(value)} into field {key} of type string",
        )
    return value


def parse_plugin_conf(data: bytes | str | Mapping[str, Any]) -> PluginConf:
    """Parse one plugin conf (libcni ``NetworkPluginConfFromBytes``): only ``type`` is required.

    ``name`` may be empty here (plugins inside a list have none); ADD validates the name it runs
    with. ``capabilities`` must map names to booleans, as Go's ``map[string]bool`` insists.
    """
    what = "configuration"
    raw, encoded = _decode(data, what)
    name = _string_field(raw, "name", what)
    plugin_type = _string_field(raw, "type", what)
    cni_version = _string_field(raw, "cniVersion", what)
    caps_raw = _go_field(raw, "capabilities")
    capabilities: dict[str, bool] = {}
    if caps_raw is not None:
        if not isinstance(caps_raw, dict):
            raise CniError(
                CniCode.DECODING_FAILURE,
                f"error parsing {what}: cannot unmarshal {_json_type(caps_raw)} into field capabilities",
            )
        for cap, enabled in caps_raw.items():
            if not isinstance(enabled, bool):
                raise CniError(
                    CniCode.DECODING_FAILURE,
                    f"error parsing {what}: capability {cap!r} must be a bool, not {_json_type(enabled)}",
                )
            capabilities[cap] = enabled
    if not plugin_type:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: missing 'type'")
    return PluginConf(
        raw=raw,
        name=name,
        type=plugin_type,
        cni_version=cni_version,
        capabilities=capabilities,
        data=encoded,
    )


def _valid_version(version: str) -> bool:
    try:
        parse_version(version)
    except (ValueError, CniError):
        return False
    return True


def _select_version(cni_version: str, raw_versions: Any) -> tuple[str, tuple[str, ...]]:
    """CNI 1.1 ``cniVersions``: the highest listed version (``cniVersion`` included) ≤ ours."""
    what = "configuration list"
    if not isinstance(raw_versions, list):
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"error parsing {what}: invalid type for cniVersions: {_json_type(raw_versions)}",
        )
    listed: list[str] = []
    for i, v in enumerate(raw_versions):
        if not isinstance(v, str):
            raise CniError(
                CniCode.INVALID_NETWORK_CONFIG,
                f"error parsing {what}: invalid type for cniVersions index {i}: {_json_type(v)}",
            )
        if not _valid_version(v):
            raise CniError(
                CniCode.INVALID_NETWORK_CONFIG,
                f"error parsing {what}: invalid cniVersions entry {v} at index {i}",
            )
        listed.append(v)
    latest = parse_version(LATEST_VERSION)
    usable = [v for v in listed if parse_version(v) <= latest]
    if cni_version:
        if not _valid_version(cni_version):
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: invalid cniVersion {cni_version}")
        if parse_version(cni_version) <= latest:
            usable.append(cni_version)
    if usable:
        cni_version = max(usable, key=parse_version)
    return cni_version, tuple(listed)


def _read_bool(raw: Mapping[str, Any], key: str) -> bool:
    """libcni's list flags: a JSON bool, or the strings "true"/"false" in any case."""
    value = raw.get(key)
    if value is None and key not in raw:
        return False
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"error parsing configuration list: invalid type {_json_type(value)} for {key}",
        )
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise CniError(
        CniCode.INVALID_NETWORK_CONFIG, f"error parsing configuration list: invalid value {lowered!r} for {key}"
    )


def parse_conf_list(data: bytes | str | Mapping[str, Any], *, allow_empty: bool = False) -> ConfList:
    """Parse a configuration list (libcni ``NetworkConfFromBytes``).

    The list's top-level keys are read case-sensitively (libcni reads them from a raw map).
    ``"plugins": []`` is always an error; a list with *no* ``plugins`` key is accepted only with
    ``allow_empty`` — :func:`load_conf_file` uses that, then appends subdirectory plugins and
    fails if there are still none. Plugins inherit nothing here: ``name`` and ``cniVersion`` are
    injected at execution time.
    """
    what = "configuration list"
    raw, encoded = _decode(data, what)
    if "name" not in raw:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: no name")
    name = raw["name"]
    if not isinstance(name, str):
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: invalid name type {_json_type(name)}")
    cni_version = ""
    if "cniVersion" in raw:
        cni_version = raw["cniVersion"]
        if not isinstance(cni_version, str):
            raise CniError(
                CniCode.INVALID_NETWORK_CONFIG,
                f"error parsing {what}: invalid cniVersion type {_json_type(cni_version)}",
            )
    cni_versions: tuple[str, ...] = ()
    if "cniVersions" in raw:
        cni_version, cni_versions = _select_version(cni_version, raw["cniVersions"])
    disable_check = _read_bool(raw, "disableCheck")
    disable_gc = _read_bool(raw, "disableGC")
    only_inlined = _read_bool(raw, "loadOnlyInlinedPlugins")

    plugins: list[PluginConf] = []
    if "plugins" not in raw:
        if only_inlined:
            raise CniError(
                CniCode.INVALID_NETWORK_CONFIG,
                f"error parsing {what}: `loadOnlyInlinedPlugins` is true, and no 'plugins' key",
            )
        if not allow_empty:
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: no plugins in list")
    else:
        raw_plugins = raw["plugins"]
        if not isinstance(raw_plugins, list):
            raise CniError(
                CniCode.INVALID_NETWORK_CONFIG,
                f"error parsing {what}: invalid 'plugins' type {_json_type(raw_plugins)}",
            )
        if not raw_plugins:
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"error parsing {what}: no plugins in list")
        for i, plugin in enumerate(raw_plugins):
            if not isinstance(plugin, dict):
                raise CniError(
                    CniCode.DECODING_FAILURE,
                    f"failed to parse plugin config {i}: expected a JSON object, got {_json_type(plugin)}",
                )
            try:
                plugins.append(parse_plugin_conf(plugin))
            except CniError as exc:
                raise exc.with_prefix(f"failed to parse plugin config {i}: ") from exc
    return ConfList(
        raw=raw,
        name=name,
        cni_version=cni_version,
        cni_versions=cni_versions,
        disable_check=disable_check,
        disable_gc=disable_gc,
        load_only_inlined_plugins=only_inlined,
        plugins=tuple(plugins),
        data=encoded,
    )


def inject(conf: PluginConf, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> PluginConf:
    """A new conf: ``conf.raw`` copied, the given keys set, re-parsed (libcni ``InjectConf``).

    Keys that are not identifiers (``"cni.dev/valid-attachments"``) go in ``values``. As libcni,
    an empty key or a ``None`` value is refused rather than silently writing ``null``.
    """
    updates: dict[str, Any] = dict(values or {})
    updates.update(kwargs)
    raw = dict(conf.raw)
    for key, value in updates.items():
        if not key:
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, "keys cannot be empty")
        if value is None:
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"key '{key}' value must not be nil")
        raw[key] = value
    return parse_plugin_conf(raw)


def conf_list_from_conf(conf: PluginConf) -> ConfList:
    """Wrap a single conf as a one-plugin list named and versioned like it (``ConfListFromConf``)."""
    return parse_conf_list({"name": conf.name, "cniVersion": conf.cni_version, "plugins": [conf.raw]})


def with_plugins(conf_list: ConfList, extra: Iterable[PluginConf]) -> ConfList:
    """The same list with ``extra`` plugins appended (``raw``/``data`` unchanged, as libcni)."""
    return ConfList(
        raw=conf_list.raw,
        name=conf_list.name,
        cni_version=conf_list.cni_version,
        cni_versions=conf_list.cni_versions,
        disable_check=conf_list.disable_check,
        disable_gc=conf_list.disable_gc,
        load_only_inlined_plugins=conf_list.load_only_inlined_plugins,
        plugins=(*conf_list.plugins, *extra),
        data=conf_list.data,
    )


# --------------------------------------------------------------------------------------------
# Loading from disk


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CniError(CniCode.IO_FAILURE, f"error reading {path}: {exc.strerror or exc}") from exc


def load_conf_dir(directory: str, extensions: Sequence[str] = ALL_CONF_EXTENSIONS) -> list[str]:
    """Paths of the files in ``directory`` whose extension is one of ``extensions``, sorted.

    As libcni ``ConfFiles`` (plus its callers' sort): a missing directory is an empty list, not an
    error; subdirectories are skipped (they hold subdirectory plugins, not networks). Symlinks to
    files count, as ``os.ReadDir`` + ``IsDir`` sees them.
    """
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CniError(CniCode.IO_FAILURE, f"error reading {directory}: {exc.strerror or exc}") from exc
    files = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            continue
        if os.path.splitext(entry.name)[1] in extensions:
            files.append(os.path.join(directory, entry.name))
    return sorted(files)


def load_subdir_plugins(conf_dir: str, network_name: str) -> list[PluginConf]:
    """``<conf_dir>/<network_name>/*.conf``, sorted (libcni ``NetworkPluginConfsFromFiles``)."""
    plugin_dir = os.path.join(conf_dir, network_name)
    plugins = []
    for path in load_conf_dir(plugin_dir, (".conf",)):
        try:
            plugins.append(parse_plugin_conf(_read(path)))
        except CniError as exc:
            raise exc.with_prefix(f"{path}: ") from exc
    return plugins


def load_conf_file(path: str) -> PluginConf | ConfList:
    """Load ``path`` by extension: ``.conflist`` → :class:`ConfList`, ``.conf``/``.json`` → conf.

    Lists get their subdirectory plugins appended unless ``loadOnlyInlinedPlugins`` is set; a
    list that ends up with no plugins is an error ("no plugin configs found"). Errors name the file.
    """
    ext = os.path.splitext(path)[1]
    data = _read(path)
    try:
        if ext in CONFLIST_EXTENSIONS:
            conf_list = parse_conf_list(data, allow_empty=True)
            if not conf_list.load_only_inlined_plugins:
                extra = load_subdir_plugins(os.path.dirname(path), conf_list.name)
                conf_list = with_plugins(conf_list, extra)
            if not conf_list.plugins:
                raise CniError(CniCode.INVALID_NETWORK_CONFIG, "no plugin configs found")
            return conf_list
        if ext in CONF_EXTENSIONS:
            return parse_plugin_conf(data)
    except CniError as exc:
        raise exc.with_prefix(f"{path}: ") from exc
    raise CniError(
        CniCode.INVALID_NETWORK_CONFIG,
        f"{path}: unsupported configuration file extension {ext!r} (want .conf, .conflist or .json)",
    )


class ConfNotFoundError(CniError):
    """No configuration with the wanted network name (libcni ``NotFoundError``'s text)."""

    def __init__(self, directory: str, name: str, skipped: Sequence[str] = ()) -> None:
        details = ""
        if skipped:
            details = "unparsable files skipped: " + "; ".join(skipped)
        super().__init__(
            CniCode.INVALID_NETWORK_CONFIG, f'no net configuration with name "{name}" in {directory}', details
        )
        self.directory = directory
        self.name = name


def load_conf_by_name(directory: str, name: str) -> PluginConf | ConfList:
    """The first file in ``directory`` (sorted, .conf/.conflist/.json) whose network is ``name``.

    Upstream's lookup (Q16) failed as soon as *any* earlier file did not parse. Here an unparsable
    file is logged and skipped, and listed in the not-found error's details so the operator still
    learns about it; a matching file that fails to parse is impossible to tell from an unrelated
    one, so it is skipped the same way. An empty ``name`` takes the first loadable file, as
    upstream does for a clusterNetwork given as a directory.
    """
    skipped: list[str] = []
    for path in load_conf_dir(directory):
        try:
            conf = load_conf_file(path)
        except CniError as exc:
            log.warning("skipping unparsable CNI config %s: %s", path, exc)
            skipped.append(str(exc))
            continue
        if not name or conf.name == name:
            return conf
    raise ConfNotFoundError(directory, name, skipped)


# --------------------------------------------------------------------------------------------
# libcni pkg/utils validators (run before ADD only)


def validate_container_id(container_id: str) -> None:
    """Raise libcni's error for an empty or badly formed container ID."""
    if not container_id:
        raise CniError(CniCode.UNKNOWN_CONTAINER, "missing containerID")
    if not _VALID_NAME.fullmatch(container_id):
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, "invalid characters in containerID", container_id)


def validate_network_name(name: str) -> None:
    """Raise libcni's error for an empty or badly formed network name (text kept, colon included)."""
    if not name:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, "missing network name:")
    if not _VALID_NAME.fullmatch(name):
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, "invalid characters found in network name", name)


def validate_ifname(ifname: str) -> None:
    """Raise libcni's error for an interface name the kernel would refuse (``dev_valid_name``)."""
    if not ifname:
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, "interface name is empty")
    if len(ifname.encode()) > MAX_IFNAME_BYTES:
        raise CniError(
            CniCode.INVALID_ENVIRONMENT_VARIABLES,
            "interface name is too long",
            f"interface name should be less than {MAX_IFNAME_BYTES + 1} characters",
        )
    if ifname in (".", ".."):
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, "interface name is . or ..")
    for ch in ifname:
        if ch in "/:" or (ch.isspace() and ch not in _NOT_GO_SPACE):
            raise CniError(
                CniCode.INVALID_ENVIRONMENT_VARIABLES,
                "interface name contains / or : or whitespace characters",
            )
