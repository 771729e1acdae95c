"""The layering rules of DESIGN.md §2, checked on the source so a violation fails the build."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIM_FILES = [ROOT / "shim" / "multus-shim", ROOT / "shim" / "passthru"]

# package (relative to multusd) -> module prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cni": (
        "multusd.kube",
        "multusd.attach",
        "multusd.server",
        "multusd.daemon",
        "kubernetes_asyncio",
        "aiohttp",
    ),
    "kube": ("multusd.cni", "multusd.attach", "multusd.server", "multusd.daemon"),
    "attach": ("aiohttp", "kubernetes_asyncio", "multusd.server", "multusd.daemon"),
}


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def violations(subpackage: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "multusd" / subpackage).rglob("*.py")):
        for name in imported_modules(path, root):
            for prefix in FORBIDDEN[subpackage]:
                if name == prefix or name.startswith(prefix + "."):
                    found.append(f"{path.relative_to(root)} imports {name}")
    return sorted(found)


@pytest.mark.parametrize("subpackage", sorted(FORBIDDEN))
def test_layer_imports_point_downwards(subpackage: str) -> None:
    assert violations(subpackage) == []


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """Guard against a checker that can never fail: a planted upward import is reported."""
    (tmp_path / "multusd" / "cni").mkdir(parents=True)
    (tmp_path / "multusd" / "cni" / "planted.py").write_text("from ..attach import flows\n", encoding="utf-8")
    assert violations("cni", tmp_path) == [
        "multusd/cni/planted.py imports multusd.attach",
        "multusd/cni/planted.py imports multusd.attach.flows",
    ]


@pytest.mark.parametrize("path", SHIM_FILES, ids=lambda p: p.name)
def test_shim_is_stdlib_only_and_python36(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 6))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in mods:
                top = mod.split(".")[0]
                assert top in sys.stdlib_module_names, f"{path.name} imports non-stdlib {mod}"
