"""The command line stays thin (docs/architecture.md, "Layers"): a command parses its options,
makes one call into donkey/app and prints. Read off the source (AST), like tests/test_layering.py."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "donkey"
MAX_BODY = 40  # lines of a cli function's body; its signature and docstring are not counted
MAX_SHARE = 0.15  # of the package's lines


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(
        getattr(body[0], "value", None), ast.Constant
    )
    if docstring and len(body) == 1:
        return 0
    first = body[1] if docstring else body[0]
    return node.end_lineno - first.lineno + 1


def long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := body_lines(node)) > MAX_BODY:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}: {n}")
    return found


def test_no_cli_function_body_is_longer_than_40_lines():
    assert long_functions(PACKAGE / "cli") == []


def test_cli_is_under_15_percent_of_the_package():
    lines = {p: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    cli = sum(n for p, n in lines.items() if (PACKAGE / "cli") in p.parents)
    share = cli / sum(lines.values())
    assert share < MAX_SHARE, f"donkey/cli is {share:.1%} of the package's lines"


def test_the_measure_counts_bodies_without_docstrings(tmp_path):
    module = tmp_path / "pkg" / "m.py"
    module.parent.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(41))
    module.write_text(
        f'def short():\n    """Doc."""\n    return 1\n\n\ndef long():\n    """Doc."""\n{body}\n'
    )
    assert long_functions(tmp_path / "pkg") == ["pkg/m.py:6 long: 41"]
