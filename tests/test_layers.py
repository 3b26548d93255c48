"""The layers of docs/architecture.md hold: no module under kb/ imports from a layer above its own, and no
module under kb/ or pages/ runs over 400 lines unless its docstring says why ("Over 400 lines: …")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first, as docs/architecture.md lists them. A module belongs to the layer of the longest prefix that
# names it; it may import from its own layer and the ones before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("kb/config/", "kb/timestamps.py", "kb/credits.py", "kb/access.py", "kb/formats.py")),
    ("database", ("kb/db/",)),
    ("engine", ("kb/engine/",)),
    ("intake", ("kb/intake/", "kb/mail/")),
    ("tools", ("kb/tools/",)),
    ("store", ("kb/store.py", "kb/snapshot.py", "kb/kept.py", "kb/opening.py", "kb/health.py", "kb/background.py")),
    ("reads", ("kb/reads/", "kb/alerts/", "kb/statement/")),
    ("service", ("kb/service/",)),
    ("faces", ("kb/ui.py", "kb/marks.py", "kb/navigation.py", "kb/cli/", "kb/tools/bench.py",
               "kb/tools/bench_service.py", "kb/__main__.py", "kb/__init__.py")),
]
MAX_LINES = 400
LONG_REASON = "Over 400 lines:"


def layer_of(path: str) -> int:
    """The index in ``LAYERS`` of a path like ``kb/db/backup.py`` (longest matching prefix wins)."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (path == prefix or (prefix.endswith("/") and path.startswith(prefix))) and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{path} is in no layer: add it to LAYERS and docs/architecture.md")
    return best


def module_path(module: str) -> str | None:
    """``kb.db.backup`` → ``kb/db/backup.py`` (or ``…/__init__.py`` for a package); None outside kb."""
    if module != "kb" and not module.startswith("kb."):
        return None
    base = ROOT / module.replace(".", "/")
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py").relative_to(ROOT).as_posix()
    if (base / "__init__.py").is_file():
        return (base / "__init__.py").relative_to(ROOT).as_posix()
    raise AssertionError(f"{module} is imported but is no module under kb/")


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every kb module a file imports, at its top or inside a function, with the line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "kb":  # from kb import opening: the module kb.opening
                found += [(node.lineno, f"kb.{alias.name}") for alias in node.names]
    return found


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_module_is_in_a_layer():
    for path in modules("kb"):
        layer_of(path.relative_to(ROOT).as_posix())


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in modules("kb"):
        name = path.relative_to(ROOT).as_posix()
        own = layer_of(name)
        for line, module in imported(ast.parse(path.read_text(encoding="utf-8"))):
            target = module_path(module)
            if target is not None and target != "kb/__init__.py" and layer_of(target) > own:
                upward.append(f"{name}:{line} ({LAYERS[own][0]}) imports {module} ({LAYERS[layer_of(target)][0]})")
    assert upward == []


@pytest.mark.parametrize("folder", ["kb", "pages"])
def test_no_module_runs_over_400_lines_unless_its_docstring_says_why(folder):
    long = []
    for path in modules(folder):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines > MAX_LINES and LONG_REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert long == []


def test_the_layers_here_are_the_ones_the_architecture_names():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, prefixes in LAYERS:
        row = next((line for line in doc.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"docs/architecture.md has no row for the {name} layer"
        for prefix in prefixes:
            if prefix not in ("kb/__main__.py", "kb/__init__.py"):
                assert f"`{prefix}" in row, f"docs/architecture.md does not place {prefix} in {name}"
