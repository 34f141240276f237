"""Each top folder means one thing: only search/ imports Ray; trainables/, spaces/ and results/ never
import search/ (so training a config or exporting a model runs without Ray)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", ["trainables", "spaces", "results"])
def test_only_search_imports_ray_and_nothing_imports_search(folder):
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & {"ray", "search"})
                 for p in sorted((ROOT / folder).rglob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}


def test_training_and_exporting_load_no_ray():
    code = ("import sys, trainables.train_config, trainables.onnx_export, results.records, results.report; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'search'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
