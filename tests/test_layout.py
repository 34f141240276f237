"""The folders are floors, each importing only from the floors below it: search/ (the commands and the
driver, the only folder that imports Ray) above spaces/ above trainables/ above results/ (the bottom:
errors, file schemas, reports). Training a config or exporting a model runs without Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("results", "trainables", "spaces", "search")   # bottom first

def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute import in ``path`` (a function's too), as (line, module)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def against_the_floors(root: Path = ROOT) -> dict[str, set[str]]:
    """Per file under the four floors, the modules it imports from a floor above its own."""
    found: dict[str, set[str]] = {}
    for level, floor in enumerate(FLOORS):
        above = set(FLOORS[level + 1:])
        for path in sorted((root / floor).rglob("*.py")):
            up = {m for _, m in _imports(path) if m.split(".")[0] in above}
            if up:
                found[str(path.relative_to(root))] = up
    return found


def test_no_import_runs_against_the_floors():
    found = against_the_floors()
    assert not found, f"imports against the floors ({' above '.join(reversed(FLOORS))}): {found}"


@pytest.mark.parametrize("floor,above", [("results", "trainables"), ("results", "spaces"), ("results", "search"),
                                         ("trainables", "spaces"), ("trainables", "search"), ("spaces", "search")])
def test_the_check_finds_an_import_against_the_floors(tmp_path, floor, above):
    for f in FLOORS:
        (tmp_path / f).mkdir()
    (tmp_path / floor / "low.py").write_text(f"def f():\n    from {above}.x import y\n")
    assert against_the_floors(tmp_path) == {f"{floor}/low.py": {f"{above}.x"}}


@pytest.mark.parametrize("folder", ["trainables", "spaces", "results"])
def test_only_search_imports_ray(folder):
    offenders = {str(p.relative_to(ROOT)): sorted({m.split(".")[0] for _, m in _imports(p)} & {"ray"})
                 for p in sorted((ROOT / folder).rglob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}


def test_training_and_exporting_load_no_ray():
    code = ("import sys, search.commands.train, trainables.onnx_export, results.best_file, results.report; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def import_circles(root: Path = ROOT) -> list[list[str]]:
    """Groups of project modules that import each other, directly or round a loop (a function's imports
    count: a lazy import hides a circle, it does not remove it)."""
    modules = {}
    for floor in FLOORS:
        for path in (root / floor).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {name: {owner(m) for _, m in _imports(path)} - {"", name} for name, path in modules.items()}
    # Tarjan's strongly connected components, iteratively deep enough for any tree.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_module_imports_one_that_imports_it_back():
    assert import_circles() == []


def test_the_check_finds_an_import_circle(tmp_path):
    for f in FLOORS:
        (tmp_path / f).mkdir()
    (tmp_path / "search" / "a.py").write_text("from search.b import x\n")
    (tmp_path / "search" / "b.py").write_text("def f():\n    from search.a import y\n")
    (tmp_path / "search" / "c.py").write_text("import search.a\n")
    assert import_circles(tmp_path) == [["search.a", "search.b"]]


LAB_FLAGS = {"--live", "--live-only", "--neps", "--sweep", "--serve"}


# search/'s parts, lowest first (search/__init__.py lists them): a module imports from its own part or a lower
# one, and the two parts of one rank (the replay and the commands) not from each other, so the replay's path
# reaches no command module; the bench, the research instrument, sits on top: nothing else imports it.
PARTS = {"options": 0, "resolve": 1, "strategy": 2, "running": 3, "replay": 4, "commands": 4, "cli": 5, "bench": 6}


def against_the_parts(root: Path = ROOT) -> dict[str, list[str]]:
    """Per module of search/, its imports of a part at its own rank or above (or of a module in no part)."""
    found = {}
    for path in sorted((root / "search").rglob("*.py")):
        mine = path.relative_to(root / "search").with_suffix("").parts[0]
        if mine == "__init__":
            continue
        rank = PARTS.get(mine, -1)
        up = sorted({m for _, m in _imports(path) if m.startswith("search.")
                     and m.split(".")[1] != mine and PARTS.get(m.split(".")[1], len(PARTS)) >= rank})
        if up or mine not in PARTS:
            found[str(path.relative_to(root))] = up or ["(in no part: add it to a part)"]
    return found


def test_search_parts_import_only_downwards():
    assert against_the_parts() == {}


def test_the_check_finds_an_import_against_the_parts(tmp_path):
    for part in ("replay", "bench", "commands", "strategy"):
        (tmp_path / "search" / part).mkdir(parents=True)
    (tmp_path / "search" / "replay" / "study.py").write_text("def f():\n    from search.bench.lab import g\n")
    (tmp_path / "search" / "replay" / "front.py").write_text("from search.commands.search import f\n")
    (tmp_path / "search" / "strategy" / "asha.py").write_text("from search.options import x\n")
    (tmp_path / "search" / "bench" / "lab.py").write_text("from search.replay.study import f\n")
    (tmp_path / "search" / "stray.py").write_text("")
    assert against_the_parts(tmp_path) == {"search/replay/front.py": ["search.commands.search"],
                                           "search/replay/study.py": ["search.bench.lab"],
                                           "search/stray.py": ["(in no part: add it to a part)"]}


def _flags(parser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    import argparse

    found = set()
    for action in parser._actions:
        found |= set(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _flags(sub)
    return found


def test_the_wheels_cli_exposes_none_of_the_labs_flags():
    """The research flags live in the lab (python -m search.bench.lab replay), not in ``spectune``."""
    from search.bench.lab import build_parser as lab_parser
    from search.cli import build_parser

    assert not _flags(build_parser()) & LAB_FLAGS
    assert LAB_FLAGS <= _flags(lab_parser())
