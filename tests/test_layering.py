"""The layering of docs/architecture.md, read off every module's imports (AST, not runtime):
imports only go down, and no two modules import each other through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "donkey"

# Which subpackages each subpackage may import (itself included). train may use runtime's
# Animator for evaluation; nothing below imports train, export or cli.
ALLOWED = {
    # Standard library only (the vocabulary and the engine table): everyone may use it.
    "core": {"core"},
    "model": {"model", "core"},
    "data": {"data", "model", "core"},
    "artifacts": {"artifacts", "model", "core"},
    "runtime": {"runtime", "artifacts", "data", "model", "core"},
    "export": {"export", "artifacts", "data", "model", "core"},
    "train": {"train", "runtime", "artifacts", "data", "model", "core"},
    # The application layer: one call per command, over everything below it.
    "app": {"app", "train", "export", "runtime", "artifacts", "data", "model", "core"},
    "serve": {"serve", "app", "runtime", "artifacts", "data", "model", "core"},
    "cli": {
        "cli",
        "serve",
        "app",
        "train",
        "export",
        "runtime",
        "artifacts",
        "data",
        "model",
        "core",
    },
    # donkey/api.py, the Python API: the application layer, for scripts.
    "api": {"api", "app", "runtime", "artifacts", "data", "model", "core"},
}
# donkey/__init__.py (the lazy Python API) is imported by nobody inside the package: the version
# lives in donkey/core/version.py. donkey/__main__.py is the top.
ROOT_MODULES = {"donkey", "donkey.__main__"}
# What the package's own root modules may import.
ROOT_ALLOWED = {"donkey": {"core"}, "donkey.__main__": {"cli"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """donkey modules imported anywhere in the file (function bodies included)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import module` imports pkg.module; `from module import name` the module.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("donkey") and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and module not in ROOT_MODULES else None


def test_every_module_belongs_to_a_known_layer():
    unknown = sorted({layer(m) for m in graph() if layer(m) is not None} - set(ALLOWED))
    assert unknown == [], (
        f"new subpackage(s) {unknown}: add them to ALLOWED and to docs/architecture.md"
    )


def test_imports_only_go_down():
    wrong = []
    for module, targets in graph().items():
        source = layer(module)
        if source is None:
            wrong += [
                f"{module} -> {target}"
                for target in targets
                if layer(target) not in ROOT_ALLOWED.get(module, set())
            ]
            continue
        for target in targets:
            if target in ROOT_MODULES or layer(target) not in ALLOWED.get(source, set()):
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(sorted(wrong))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(edges.get(child, ())))))
                path.append(child)
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_what_they_claim():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    modules = all_modules()
    loader = imports_of("donkey.runtime.loader", modules["donkey.runtime.loader"], modules)
    assert "donkey.runtime.ort_backend" in loader  # `from donkey.runtime import ort_backend`
    assert "donkey.artifacts.verify" in loader
    assert layer("donkey.export.cache") == "export" and layer("donkey.__main__") is None
