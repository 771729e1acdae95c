"""The Dockerfile, without Docker: its build-stage RUN lines executed into a temporary prefix.

There is no container engine here, so the image cannot be built. Instead the build stage's own RUN
commands are read from the Dockerfile and run with their paths mapped into a temp dir (``/opt/…`` →
``<tmp>/opt/…``, ``/wheels`` → ``<tmp>/wheels``, the build context → a copy made of exactly the
Dockerfile's COPY sources). One deliberate difference keeps the test offline and fast: the
dependency wheels are not downloaded (``pip wheel`` gets ``--no-deps --no-build-isolation``); the
new venv sees the dependencies already installed in the test environment through a ``.pth`` file
(multusd itself excluded, so the copy under test is the one that was just built). Then the image's
entry point is exercised from that prefix: ``multusd --version``, and ``multusd install`` with the
init container's arguments from deploy/multus-daemonset-thick.yml.

The shape of the final stage (base, packages, COPY targets, ENTRYPOINT, PATH) is checked statically
against the manifest and :mod:`multusd.install`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import multusd
from multusd import install
from multusd.config import DEFAULT_CONFIG_PATH

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFEST = ROOT / "deploy" / "multus-daemonset-thick.yml"
BASE_IMAGE = "python:3.11-slim-bookworm"
STEP_TIMEOUT_SECONDS = 120


# ----------------------------------------------------------------------------- Dockerfile model


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions with their ``\\`` continuations joined; comment lines dropped (as Docker does)."""
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            yield current.strip()
        current = ""
    if current.strip():
        yield current.strip()


def parse_dockerfile(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = words[0]
            for name, value in global_args.items():
                base = base.replace("${" + name + "}", value).replace("$" + name, value)
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base, stage_name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
BUILD, FINAL = STAGES[0], STAGES[-1]


def copy_sources(stage: Stage) -> list[tuple[list[str], str]]:
    """``COPY src… dest`` of the build context (``--from`` copies excluded)."""
    copies = []
    for rest in stage.all("COPY"):
        words = shlex.split(rest)
        if any(w.startswith("--from") for w in words):
            continue
        copies.append((words[:-1], words[-1]))
    return copies


def venv_dir() -> str:
    (run,) = [r for r in BUILD.all("RUN") if " -m venv " in r]
    return shlex.split(run)[-1]


# ----------------------------------------------------------------------------- static checks


def test_both_stages_use_the_pinned_slim_python() -> None:
    assert len(STAGES) == 2 and BUILD.name == "build"
    assert BUILD.base == FINAL.base == BASE_IMAGE
    for stage in STAGES:
        assert any(a.startswith("SOURCE_DATE_EPOCH") for a in stage.all("ARG")), "repeatable timestamps"


def test_build_context_is_exactly_what_the_build_copies() -> None:
    allowed = {
        line[1:].rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.startswith("!")
    }
    ignore_lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    assert "*" in ignore_lines, ".dockerignore is an allow-list"
    copied = {src.rstrip("/") for stage in STAGES for sources, _ in copy_sources(stage) for src in sources}
    assert copied == allowed, "COPY sources and the .dockerignore allow-list differ"
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


def test_final_stage_carries_plugins_shim_and_entrypoint() -> None:
    venv = venv_dir()
    runs = " ".join(FINAL.all("RUN"))
    assert "apt-get install -y --no-install-recommends containernetworking-plugins" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    for tool in ("gcc", "build-essential", "-dev ", "git"):
        assert tool not in runs, f"no build tools in the final image ({tool})"
    assert f"--from=build {venv} {venv}" in FINAL.all("COPY")
    shim_copies = [dest for sources, dest in copy_sources(FINAL) if sources == ["shim/"]]
    assert [d.rstrip("/") for d in shim_copies] == [install.IMAGE_SHIM_DIR], "install.py looks for the shim there"
    assert FINAL.all("ENTRYPOINT") == ['["multusd"]']
    cmd = yaml.safe_load(FINAL.all("CMD")[0])
    assert cmd == ["run", "--config", DEFAULT_CONFIG_PATH]
    (env_path,) = [e for e in FINAL.all("ENV") if e.startswith("PATH=")]
    assert env_path.removeprefix("PATH=").split(":")[0] == f"{venv}/bin"


def test_manifest_path_keeps_the_image_path_first() -> None:
    """The DaemonSet overrides PATH (K3s dirs for plugins); the image's entries must stay in front."""
    image_path = next(e for e in FINAL.all("ENV") if e.startswith("PATH=")).removeprefix("PATH=")
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    for c in daemonset["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if "PATH" in env:
            assert env["PATH"].startswith(image_path + ":") or env["PATH"] == image_path


def test_pip_never_caches_and_installs_only_from_the_wheelhouse() -> None:
    pip_runs = [r for r in BUILD.all("RUN") if r.startswith("pip ")]
    assert pip_runs and all("--no-cache-dir" in r for r in pip_runs)
    (installs,) = [r for r in pip_runs if " install " in r]
    assert "--no-index" in installs and "--find-links" in installs
    assert any("--invalidation-mode unchecked-hash" in r for r in BUILD.all("RUN")), "ship compiled .pyc"


# ----------------------------------------------------------------------------- the build, performed


@dataclass(frozen=True)
class Prefix:
    root: Path  # stands for the image's /
    venv: Path
    wheel: Path
    log: str


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS, check=False
    )
    assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", HOME=str(root))
    env["SOURCE_DATE_EPOCH"] = "315532800"
    return env


def _expose_test_dependencies(venv: Path, farm: Path) -> None:
    """Make the test environment's packages, minus multusd and pip, importable in ``venv``."""
    site = Path(sysconfig.get_paths()["purelib"])
    farm.mkdir()
    skip = ("multusd", "__editable__", "_multusd", "pip", "_distutils_hack", "__pycache__")
    for entry in site.iterdir():
        if entry.name.startswith(skip) or entry.suffix == ".pth":
            continue
        (farm / entry.name).symlink_to(entry)
    (site_dir,) = venv.glob("lib/python3.*/site-packages")
    (site_dir / "_image_steps_deps.pth").write_text(f"{farm}\n", encoding="utf-8")


def _map_path(word: str, root: Path, context: Path) -> str:
    if word == ".":
        return str(context)
    if word.startswith("/"):
        return str(root) + word
    return word


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Prefix:
    """The build stage, step by step, into ``<tmp>/root`` (the stand-in for the image's /)."""
    tmp = tmp_path_factory.mktemp("image")
    root = tmp / "root"
    context = root / "src"  # WORKDIR /src
    context.mkdir(parents=True)
    for sources, dest in copy_sources(BUILD):
        target = context / dest if not dest.startswith("/") else root / dest.lstrip("/")
        for src in sources:
            path = ROOT / src
            if path.is_dir():  # Docker copies a directory's contents into dest
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    for cache in context.rglob("__pycache__"):
        shutil.rmtree(cache)  # .dockerignore keeps them out of the context

    env = _clean_env(tmp)
    log: list[str] = []
    venv = Path(_map_path(venv_dir(), root, context))
    for run in BUILD.all("RUN"):
        words = shlex.split(run)
        argv = [_map_path(w, root, context) for w in words]
        if words[:2] == ["pip", "wheel"]:
            # offline: only multusd's own wheel; its dependencies are the test environment's
            argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", *argv[2:]]
        elif words[0] == "pip":
            argv = [sys.executable, "-m", "pip", *argv[1:]]
        elif words[0] == "python":
            argv = [sys.executable, *argv[1:]]
        else:
            pytest.fail(f"RUN {run!r}: the test does not know how to perform this step")
        log.append(shlex.join(argv))
        _run(argv, cwd=context, env=env)
        if words[1:3] == ["-m", "venv"]:
            _expose_test_dependencies(venv, tmp / "deps")
    # COPY shim/ /usr/src/multusd/shim/ of the final stage
    for sources, dest in copy_sources(FINAL):
        for src in sources:
            shutil.copytree(ROOT / src, root / dest.lstrip("/"), dirs_exist_ok=True)
    (wheel,) = (root / "wheels").glob("multusd-*.whl")
    return Prefix(root, venv, wheel, "\n".join(log))


def _in_prefix(p: Prefix, *argv: str) -> subprocess.CompletedProcess[str]:
    env = _clean_env(p.root)
    env["PATH"] = f"{p.venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return _run(list(argv), cwd=p.root, env=env)


def test_wheel_holds_the_package_and_nothing_else(prefix: Prefix) -> None:
    names = zipfile.ZipFile(prefix.wheel).namelist()
    for module in ("multusd/cli.py", "multusd/install.py", "multusd/kube/client.py", "multusd/cni/exec.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("tests/", "shim/", "bench/", "deploy/"))]
    assert not [n for n in names if "__pycache__" in n]


def test_entry_point_runs_from_the_prefix(prefix: Prefix) -> None:
    assert _in_prefix(prefix, "multusd", "--version").stdout.strip() == f"multusd {multusd.__version__}"
    where = _in_prefix(prefix, "python", "-c", "import multusd, multusd.daemon; print(multusd.__file__)")
    assert where.stdout.strip().startswith(str(prefix.venv)), "multusd must come from the built wheel"
    assert "--config" in _in_prefix(prefix, "multusd", "run", "--help").stdout


def test_every_module_ships_an_unchecked_hash_pyc(prefix: Prefix) -> None:
    (package,) = prefix.venv.glob("lib/python3.*/site-packages/multusd")
    tag = sys.implementation.cache_tag
    sources = list(package.rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert pyc.is_file(), f"{source.relative_to(package)} not compiled"
        (flags,) = struct.unpack("<I", pyc.read_bytes()[4:8])
        assert flags == 0b01, f"{pyc.name}: flags {flags:#b}, want hash-based without source check"


def init_container_args() -> list[str]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    (init,) = daemonset["spec"]["template"]["spec"]["initContainers"]
    return list(init["args"])


def test_install_puts_shim_passthru_and_plugins_into_the_bin_dir(prefix: Prefix, tmp_path: Path) -> None:
    """`multusd install` with the init container's own arguments, the host being this machine."""
    args = init_container_args()
    values = dict(a.removeprefix("--").split("=", 1) for a in args[1:])
    plugins = install.parse_plugins(values["plugins"])
    shim_dir = prefix.root / install.IMAGE_SHIM_DIR.lstrip("/")
    missing = [n for n in install.SHIM_FILES if not (shim_dir / n).is_file()]
    if missing:
        pytest.skip(f"shim/{', shim/'.join(missing)} not in the repository yet")
    absent = [p for p in plugins if not (Path(install.DEFAULT_PLUGINS_SRC) / p).is_file()]
    if absent:
        pytest.skip(f"Debian containernetworking-plugins lacks {absent} here (`make deps` installs it)")
    bin_dir = tmp_path / values["bin-dir"].lstrip("/")  # the K3s bin dir, under a fake host
    bin_dir.mkdir(parents=True)
    argv = [
        "multusd",
        args[0],
        "--host-root=/",  # the manifest mounts the host at /hostroot; here the host is this machine
        f"--bin-dir={bin_dir}",
        f"--plugins={values['plugins']}",
        f"--shim-src={shim_dir}",  # the image's /usr/src/multusd/shim, mapped into the prefix
    ]
    first = _in_prefix(prefix, *argv)
    for name in (*install.SHIM_FILES, *plugins):
        installed = bin_dir / name
        assert installed.is_file() and not installed.is_symlink(), f"{name} not installed"
        assert installed.stat().st_mode & 0o777 == 0o755
    for name in install.SHIM_FILES:
        shebang = (bin_dir / name).read_bytes().split(b"\n", 1)[0].decode()
        assert shebang.startswith("#!/") and shebang.endswith(f" {install.SHEBANG_FLAGS}"), shebang
        assert (bin_dir / name).read_bytes().split(b"\n", 1)[1] == (shim_dir / name).read_bytes().split(b"\n", 1)[1]
    for name in plugins:
        assert (bin_dir / name).read_bytes() == (Path(install.DEFAULT_PLUGINS_SRC) / name).read_bytes()
    assert "installed" in first.stdout
    # The init container runs on every pod start: the second run changes nothing.
    second = _in_prefix(prefix, *argv)
    assert "installed" not in second.stdout and second.stdout.count("unchanged") == len(install.SHIM_FILES) + len(
        plugins
    )
