"""The package's layers point one way: no module imports from a layer above its own, function-local imports
included (docs/ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dubber"

# Lowest first. Sub-packages (and top-level modules) on one line may import each other's modules only where the
# line says so; training and evaluation are siblings that never import each other (a trainer takes its dev
# evaluation as an argument).
LAYERS: list[set[str]] = [
    {"errors", "log", "cpu_threads"},
    {"media"},
    {"face"},
    {"models"},
    {"audio"},
    {"render"},
    {"data"},
    {"weights"},
    {"export"},
    {"runtime"},
    {"pipeline", "overlay", "inspection"},
    {"training"},
    {"evaluation"},
    {"cli", "__main__", "__init__"},
]
SIBLINGS = {("evaluation", "training")}  # may not import the layer listed before them


def _part(module: str) -> str:
    """``dubber.audio.speech`` -> ``audio``; ``dubber.weights`` -> ``weights``; ``dubber`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _level(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports() -> list[tuple[str, str, int]]:
    """(importing module, imported dubber module, line) for every import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dubber":
                found.append((module, node.module, node.lineno))
            elif isinstance(node, ast.Import):
                found += [(module, a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "dubber"]
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert parts <= set().union(*LAYERS), parts - set().union(*LAYERS)


def test_no_import_reaches_up_a_layer():
    upward = []
    for module, imported, line in _imports():
        src, dst = _part(module), _part(imported)
        if src == dst or imported == "dubber" and src == "__main__":
            continue
        if _level(dst) > _level(src) or (src, dst) in SIBLINGS:
            upward.append(f"{module}:{line} imports {imported}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_function_local_imports(tmp_path):
    source = "def f():\n    from dubber.cli.app import run\n"
    nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
    assert [n.module for n in nodes] == ["dubber.cli.app"] and _level("cli") > _level("models")
