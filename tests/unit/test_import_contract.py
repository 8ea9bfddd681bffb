"""Import contract (the layers of ARCHITECTURE.md), checked from the source with `ast`.

1. A module that declares `PURE = True` at top level, and every project module it imports
   (transitively), imports no I/O library: subprocess, pyroute2, pyetcd, grpc, kubernetes,
   socket, and not libcalico.proc or the datastore backends.
2. libcalico imports nothing from the daemons or tools.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("libcalico", "calicoctl", "confd", "felix", "calico_cni", "calico_node",
            "calico_kube_controllers")
FORBIDDEN_IN_PURE = (
    "subprocess", "pyroute2", "pyetcd", "grpc", "kubernetes", "socket", "threading",
    "libcalico.proc", "libcalico.datastore.etcd",
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            out[_module_name(p)] = p
    return out


def _imports(path: Path, modname: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    pkg = modname if path.name == "__init__.py" else modname.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _is_pure(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PURE" for t in node.targets
        ):
            return isinstance(node.value, ast.Constant) and node.value.value is True
    return False


def _hits(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def test_pure_modules_import_no_io() -> None:
    mods = _modules()
    pure = [m for m, p in mods.items() if _is_pure(p)]
    problems: list[str] = []
    for start in pure:
        seen: set[str] = set()
        stack = [start]
        while stack:
            m = stack.pop()
            if m in seen or m not in mods:
                continue
            seen.add(m)
            for imp in _imports(mods[m], m):
                if _hits(imp, FORBIDDEN_IN_PURE):
                    problems.append(f"{start} -> {m} imports {imp}")
                if imp in mods:
                    stack.append(imp)
    assert not problems, "\n".join(problems)


def test_libcalico_imports_no_daemon() -> None:
    mods = _modules()
    daemons = tuple(p for p in PACKAGES if p != "libcalico")
    problems = [
        f"{m} imports {imp}"
        for m, p in mods.items()
        if m.startswith("libcalico")
        for imp in _imports(p, m)
        if _hits(imp, daemons)
    ]
    assert not problems, "\n".join(problems)


def test_contract_detects_violation(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    p = tmp_path / "x.py"
    p.write_text("PURE = True\nimport subprocess\n")
    assert _is_pure(p)
    assert any(_hits(i, FORBIDDEN_IN_PURE) for i in _imports(p, "x"))
