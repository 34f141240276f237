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
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
IMAGE_MAX_BYTES = 200_000
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
EXAMPLE = ROOT / "examples" / "digits"


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
    shutil.copytree(ROOT / "examples", project / "examples")   # docs/pairs.md includes files from it
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


def _nav_pages() -> list[str]:
    import yaml

    class Loader(yaml.SafeLoader):   # mkdocs.yml may hold !!python/name tags; nav needs none of them
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]
    return [page for entry in nav for page in entry.values()]


def test_every_image_exists_and_is_small():
    """Every image a page or the README shows is a file (strict mkdocs does not fail on a missing
    image), small enough to keep the repository light; the extra CSS is where mkdocs.yml says."""
    shown = []
    for page in [README, *sorted(DOCS.rglob("*.md"))]:
        for link in IMAGE.findall(page.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):
                continue
            shown.append((page, (page.parent / link.partition("#")[0]).resolve()))
    assert len({p for _, p in shown}) >= 3, "the docs should show the replay plot, a report and a Pareto front"
    missing = [f"{page.relative_to(ROOT)}: {path}" for page, path in shown if not path.is_file()]
    assert not missing, f"images referenced but missing: {missing}"
    large = [f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes" for _, path in shown
             if path.stat().st_size >= IMAGE_MAX_BYTES]
    assert not large, f"images of {IMAGE_MAX_BYTES} bytes or more: {large}"
    css = re.findall(r"^extra_css:\n((?:  - .+\n)+)", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert css, "mkdocs.yml names no extra_css"
    for sheet in re.findall(r"  - (.+)", css[0]):
        assert (DOCS / sheet.strip()).is_file(), f"extra_css {sheet} is not under docs/"


def test_the_example_pair_is_shown_in_full_on_the_pairs_page(site):
    """docs/pairs.md includes each file of examples/digits (pymdownx.snippets), and the built page
    holds every line of each, so the page cannot drift from the files the tests run."""
    import html

    files = sorted(p for p in EXAMPLE.rglob("*.py") if "__pycache__" not in p.parts)
    assert {p.parent.name for p in files} == {"models", "data", "spaces"}, files
    included = SNIPPET.findall((DOCS / "pairs.md").read_text())
    assert sorted(included) == sorted(str(p.relative_to(ROOT)) for p in files), included
    text = html.unescape(re.sub(r"<[^>]+>", "", html_for(site, DOCS / "pairs.md").read_text()))
    for path in files:
        absent = [line for line in path.read_text().splitlines() if line.strip() and line not in text]
        assert not absent, f"the built pairs page lacks lines of {path.relative_to(ROOT)}: {absent[:3]}"


def test_the_home_page_lists_every_page_of_the_nav():
    home = (DOCS / "index.md").read_text()
    listed = set(LINK.findall(home.split("## Where to read next", 1)[1]))
    missing = [page for page in _nav_pages() if page != "index.md" and page not in listed]
    assert not missing, f"'Where to read next' on the home page misses {missing}"


def test_the_quoted_interruption_message_is_what_the_code_prints():
    """README and docs/resume.md quote the line a Ctrl+C'd search prints; it must be search.py's."""
    source = (ROOT / "search" / "commands" / "search.py").read_text()
    for fragment in ("was interrupted with", "trials unfinished; \"", "\"nothing was written to results/. Continue it "
                     "with: \"", "shlex.join(['spectune', 'search', '--space', run.space.name, '--name', run.plan.name, "
                     "'--resume'])} \"", "\"(same data options).\""):
        assert fragment in source, f"search/commands/search.py no longer prints {fragment!r}: update the docs' quotes"
    quoted = ("trials unfinished; nothing was written to results/. Continue it with: spectune search --space "
              "galspecnet --name NAME --resume (same data options).")
    for page in (README, DOCS / "resume.md"):
        assert quoted in " ".join(page.read_text().split()), f"{page.relative_to(ROOT)} does not quote {quoted!r}"


README_OPENING_MAX_WORDS = 90
CODE_BLOCK = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.DOTALL)


def test_readme_opens_in_under_90_words():
    """What it is, the two commands and what the default measurably does, before the first section."""
    opening = README.read_text().split("\n## ", 1)[0].split("\n", 1)[1]   # after the title line
    words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", opening).split()
    assert len(words) < README_OPENING_MAX_WORDS, f"README's opening has {len(words)} words"
    assert "make search SPACE=galspecnet" in opening and "make test" in opening, opening


LAB = "python -m search.bench.lab "


def _documented_commands(prefix: str = "spectune ") -> list[tuple[str, str]]:
    """Every line of a code block in the README and docs that starts with ``prefix`` (continuations joined)."""
    found = []
    for page in [README, *sorted(DOCS.rglob("*.md"))]:
        for block in CODE_BLOCK.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith(prefix):
                    found.append((str(page.relative_to(ROOT)), line))
    return found


def _refused(commands: list[tuple[str, str]], parser, skip: int, capsys) -> list[str]:
    """The documented ``commands`` that ``parser`` refuses (after the first ``skip`` words), with its message."""
    import shlex

    refused = []
    for page, line in commands:
        try:
            parser.parse_args(shlex.split(line, comments=True)[skip:])
        except SystemExit:
            refused.append(f"{page}: {line}: {capsys.readouterr().err.strip().splitlines()[-1]}")
    return refused


def test_every_documented_command_parses(capsys):
    """A flag renamed or dropped breaks the docs' commands: each must still parse with the CLI's parser."""
    from search.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 20, commands
    refused = _refused(commands, build_parser(), 1, capsys)
    assert not refused, refused


def test_every_documented_lab_command_parses(capsys):
    """The research flags (``--live``, ``--neps``, ...) are the lab's: its documented commands parse with its parser."""
    from search.bench.lab import build_parser

    commands = _documented_commands(LAB)
    assert commands
    refused = _refused(commands, build_parser(), 3, capsys)
    assert not refused, refused
