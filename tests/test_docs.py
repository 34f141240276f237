"""The documentation: the MkDocs site builds with --strict, the strict build really fails on a broken
link, a missing anchor, a page left out of nav and a nav entry to no page, and README.md stays short
with every relative link pointing at a file that exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mkdocs  # noqa: F401  (a declared test dependency: without it this file fails, it is not skipped)
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 170
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the project folder (its mkdocs.yml and docs/) into `site`."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(project / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


def html_for(site: Path, page: Path) -> Path:
    """Where MkDocs (use_directory_urls, the default) writes the HTML of docs/<page>."""
    rel = page.relative_to(DOCS).with_suffix("")
    return site / ("index.html" if rel.name == "index" else rel / "index.html")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT, out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_site_builds_strict_with_a_page_for_every_doc(site):
    pages = sorted(DOCS.rglob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [str(p.relative_to(ROOT)) for p in pages if not html_for(site, p).is_file()]
    assert not missing, f"no HTML page built for {missing}"


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(DOCS, project / "docs")
    shutil.copy2(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    return project


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text + "\n")


def _broken_link(project: Path) -> str:
    _append(project / "docs" / "data.md", "See [x](missing.md).")
    return "missing.md"


def _broken_anchor(project: Path) -> str:
    _append(project / "docs" / "data.md", "See [x](results.md#no-such-section).")
    return "no-such-section"


def _page_not_in_nav(project: Path) -> str:
    (project / "docs" / "orphan.md").write_text("# Orphan\n\nA page nobody listed.\n")
    return "orphan.md"


def _nav_to_missing_page(project: Path) -> str:
    config = project / "mkdocs.yml"
    text = config.read_text()
    assert "\nnav:\n" in text
    config.write_text(text.replace("\nnav:\n", "\nnav:\n  - Gone: gone.md\n", 1))
    return "gone.md"


@pytest.mark.parametrize("breakage", [_broken_link, _broken_anchor, _page_not_in_nav, _nav_to_missing_page],
                         ids=["broken-link", "broken-anchor", "page-not-in-nav", "nav-to-missing-page"])
def test_strict_build_fails_on_a_broken_docs_tree(tmp_path, breakage):
    project = _copy_project(tmp_path)
    # The untouched copy builds: the failure below is the breakage's, not the copy's.
    assert mkdocs_build(project, tmp_path / "clean-site").returncode == 0
    named = breakage(project)
    result = mkdocs_build(project, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"strict build passed despite {breakage.__name__}:\n{output}"
    assert named in output, output


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_readme_relative_links_point_at_files(site):
    links = LINK.findall(README.read_text())
    relative = [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link) and not link.startswith("#")]
    assert any(link.startswith("docs/") for link in relative), "README.md links to no docs page"
    broken = []
    for link in relative:
        target, _, anchor = link.partition("#")
        path = (ROOT / target).resolve()
        if not path.exists():
            broken.append(link)
        elif anchor and path.is_relative_to(DOCS.resolve()) and path.suffix == ".md":
            # The anchor must be a heading id of the built page (GitHub derives the same slugs).
            html = html_for(site, path).read_text()
            if f'id="{anchor}"' not in html:
                broken.append(link)
    assert not broken, f"README.md links to missing files or anchors: {broken}"
