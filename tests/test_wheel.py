"""The wheel a normal install gets: built from the sources, installed into a fresh environment outside
the checkout, and run from another folder (spectune spaces, a one-epoch spectune train, a two-trial search).

The fresh environment reuses the dependencies already installed for the tests instead of downloading
them again: a ``.pth`` file in its site-packages names the test interpreter's site-packages as a plain
path. Python does not read the ``.pth`` files of a folder added that way, so the editable install of
the checkout (a ``__editable__...pth`` finder there) stays inactive, and the environment's own
site-packages, where the wheel goes, comes first on sys.path. The test checks that every package
resolves inside that environment, never in the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("search", "trainables", "spaces", "results")
# Non-Python files the wheel must carry ([tool.setuptools.package-data]); nothing else besides code.
PACKAGE_DATA = {"spaces/galspecnet_source.json", "search/strategy/fusion_rules.json"}
# What a search leaves under results/<space>/<name>/: never part of the wheel.
PLANTED_RUN = {
    "results/wine_mlp/planted-run/best.json": "{}",
    "results/wine_mlp/planted-run/trials.csv": "trial_id\n",
    "results/wine_mlp/planted-run/helper.py": "X = 1\n",
    "results/wine_mlp/planted-run/checkpoint/model.pt": "not a model",
}


def _run(cmd: list, *, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _source_files() -> list[str]:
    """The checkout's files as git sees them (tracked, and new files not ignored): what a clone builds
    from, without .venv, build/ or the ignored run outputs."""
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout.decode()
        return sorted({p for p in out.split("\0") if p and (ROOT / p).is_file()})
    files = ["pyproject.toml", "README.md"]
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and "__pycache__" not in rel.parts and not (
                    rel.parts[0] == "results" and len(rel.parts) > 2):
                files.append(rel.as_posix())
    return sorted(files)


def _build_wheel(tmp_path: Path) -> tuple[Path, list[str]]:
    """Copy the sources (plus a planted run folder) out of the checkout and build the wheel there, so
    that the build leaves no build/ or egg-info behind in the checkout."""
    src = tmp_path / "src"
    files = _source_files()
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    for rel, text in PLANTED_RUN.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    dist = tmp_path / "dist"
    # Offline: setuptools (in the test extra) from this environment, nothing fetched.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", dist, src], cwd=tmp_path, timeout=300)
    wheels = sorted(dist.glob("spectune-*.whl"))
    assert len(wheels) == 1, f"expected one spectune wheel in {dist}: {[w.name for w in dist.iterdir()]}"
    return wheels[0], files


def _site_packages() -> list[str]:
    """Where this interpreter's dependencies live (purelib and platlib, and site's own list)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    return list(dict.fromkeys(os.path.realpath(p) for p in paths if os.path.isdir(p)))


def _fresh_env(tmp_path: Path, wheel: Path) -> tuple[Path, Path, dict]:
    env_dir = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=tmp_path, timeout=120)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path).stdout.strip())
    # The wheel first, while the environment sees nothing else (pip must not find the editable
    # spectune and call it installed); then the dependencies.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=tmp_path, timeout=300)
    (purelib / "_spectune_test_dependencies.pth").write_text("".join(f"{p}\n" for p in _site_packages()))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "SPECTUNE_PATH")}
    env.update(PYTHONNOUSERSITE="1", PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env_dir, purelib, env


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel, sources = _build_wheel(tmp_path)

    names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")}
    content = {n for n in names if not n.split("/")[0].endswith(".dist-info")}
    for sub in ("trainables/data", "trainables/models", "search/bench", "search/running", "search/strategy", "search/commands"):
        assert any(PurePosixPath(n).parent.as_posix() == sub and n.endswith(".py") for n in content), \
            f"the wheel lacks {sub}/*.py"
    # Exactly the packages' code (every .py of the four packages, each folder a package) and the
    # declared data: no run folders, no result images, no scripts.
    code = {p for p in sources if p.split("/")[0] in PACKAGES and p.endswith(".py")}
    assert content == code | PACKAGE_DATA, (
        f"missing from the wheel: {sorted(code | PACKAGE_DATA - content)}; "
        f"unexpected in the wheel: {sorted(content - code - PACKAGE_DATA)}")
    assert not any(n.startswith("results/wine_mlp/") for n in names)

    env_dir, purelib, env = _fresh_env(tmp_path, wheel)
    work = tmp_path / "work"  # a user's folder: not the checkout, nothing in it
    work.mkdir()

    where = json.loads(_run([env_dir / "bin" / "python", "-c",
                             "import importlib.metadata as m, json, search, trainables, spaces, results, "
                             "trainables.data, trainables.models, search.bench; "
                             "print(json.dumps({'modules': {n: __import__(n).__file__ for n in "
                             f"{list(PACKAGES)!r}}}, 'dist': str(m.distribution('spectune').locate_file(''))}}))"],
                            cwd=work, env=env).stdout)
    for name, file in where["modules"].items():
        assert Path(file).resolve().is_relative_to(purelib.resolve()), \
            f"{name} was imported from {file}, not from the fresh environment's {purelib}"
        assert not Path(file).resolve().is_relative_to(ROOT), f"{name} came from the checkout: {file}"
    assert Path(where["dist"]).resolve() == purelib.resolve()

    spectune = env_dir / "bin" / "spectune"
    assert spectune.is_file(), "the wheel installed no spectune command"
    listed = _run([spectune, "spaces"], cwd=work, env=env, timeout=300).stdout
    shipped = {PurePosixPath(n).stem for n in content
               if PurePosixPath(n).parent.as_posix() == "spaces" and n.endswith(".py")
               and not PurePosixPath(n).name.startswith("_")}
    assert {"wine_mlp", "galspecnet"} <= shipped
    for space in shipped:
        assert f"\n{space}: " in f"\n{listed}", f"spectune spaces does not list {space}:\n{listed}"

    # The wine data comes with scikit-learn: no data step first.
    out = tmp_path / "t.json"
    _run([spectune, "train", "--space", "wine_mlp", "--epochs", "1", "--device", "cpu", "--threads", "1",
          "--json-out", out], cwd=work, env=env, timeout=600)
    summary = json.loads(out.read_text())
    assert summary["space"] == "wine_mlp" and summary["epochs_run"] == 1
    assert 0.0 <= summary["val_macro_f1"] <= 1.0

    # And a search (Ray, Optuna and MLflow from the fresh environment), from the user's folder.
    _run([spectune, "search", "--space", "wine_mlp", "--trials", "2", "--max-epochs", "2", "--concurrency", "1",
          "--name", "wheel", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"], cwd=work, env=env, timeout=600)
    best = json.loads((work / "results" / "wine_mlp" / "wheel" / "best.json").read_text())
    assert best["space"] == "wine_mlp" and best["trials"] == 2 and 0.0 <= best["best_value"] <= 1.0
