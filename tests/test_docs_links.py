"""Every reference to the docs names a file and a heading that exist, and README.md stays short.

What counts as a reference (docs/development.md "Tests"):

* a markdown link in a ``.md`` file, relative to that file: ``[text](engines.md#speed)``,
  ``[text](#speed)``, ``![alt](../scripts/report.png)``; the anchor is GitHub's slug of a
  heading, and a link to any other local file must find the file;
* anywhere else (code, comments, recipes, the Makefile, and ``.md`` text outside links): a path
  from the repository root, ``README.md``, ``docs/<page>.md``,
  ``wdsr_cli/assets/weights/MODEL_CARD.md`` or ``wdsr_cli/assets/weights/TRAINING_LOG.md``
  (those two may be named alone), optionally followed on the same line by one space and a
  heading in double quotes, ``docs/engines.md "Speed"``, or by ``#anchor``;
* the readme's name in capitals without ``.md`` is refused: it names no file and no heading.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 20 * 1024
WEIGHTS = "wdsr_cli/assets/weights"

SCANNED = ["wdsr_cli", "tests", "scripts", "configs", "docs", "pyproject.toml", "Makefile",
           "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".sh", ".toml", ".txt", ".cfg", ".ini"}

README_WORD = "READ" + "ME"  # spelt apart, so that this file does not trip its own check
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
PLAIN = re.compile(
    r"(?<![\w./-])((?:[\w.-]+/)*(?:" + README_WORD + r"|MODEL_CARD|TRAINING_LOG)\.md"
    r"|(?:[\w.-]+/)*docs/[\w-]+\.md)"
    r"(?:#([\w-]+)| \"([^\"\n]+)\")?")
BARE = re.compile(r"(?<!\$\()\b" + README_WORD + r"\b(?!\.md|=)")  # not make's README= / $(README)
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces
    to hyphens (``The rule for `auto``` -> ``the-rule-for-auto``)."""
    text = plain_heading(heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def plain_heading(heading: str) -> str:
    """A heading as it reads: link targets, backticks and emphasis stars dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[`*]", "", text).strip()


def headings(path: Path) -> tuple[set[str], set[str]]:
    """(anchors, heading texts) of a markdown file; '#' lines inside fenced code do not count."""
    anchors: set[str] = set()
    texts: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6} +(.+?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
        texts.add(plain_heading(m.group(1)))
    return anchors, texts


def scanned_files(root: Path = REPO) -> list[Path]:
    files = []
    for name in SCANNED:
        p = root / name
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [f for f in sorted(p.rglob("*")) if f.is_file()
                      and f.suffix in TEXT_SUFFIXES and "__pycache__" not in f.parts]
    return files


def _target_problem(where: str, target: Path, anchor: str | None, heading: str | None,
                    cache: dict) -> str | None:
    if not target.is_file():
        return f"{where}: no file {target}"
    if anchor is None and heading is None:
        return None
    if target.suffix != ".md":
        return f"{where}: {target.name} is not markdown, it has no headings"
    if target not in cache:
        cache[target] = headings(target)
    anchors, texts = cache[target]
    if anchor is not None and anchor not in anchors:
        return f"{where}: no heading with anchor #{anchor} in {target}"
    if heading is not None and plain_heading(heading) not in texts:
        return f'{where}: no heading "{heading}" in {target}'
    return None


def _plain_target(root: Path, name: str) -> Path:
    if "/" not in name and name in ("MODEL_CARD.md", "TRAINING_LOG.md"):
        return root / WEIGHTS / name
    return root / name


def problems_in(path: Path, root: Path = REPO, cache: dict | None = None) -> list[str]:
    """Every reference in ``path`` that names a missing file or heading."""
    cache = {} if cache is None else cache
    rel = path.relative_to(root)
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{rel}:{number}"
        if path.suffix == ".md":
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                file, _, anchor = target.partition("#")
                resolved = (path.parent / file).resolve() if file else path
                problem = _target_problem(where, resolved, anchor or None, None, cache)
                if problem:
                    out.append(problem)
            line = LINK.sub("", line)
        for m in PLAIN.finditer(line):
            problem = _target_problem(where, _plain_target(root, m.group(1)), m.group(2),
                                      m.group(3), cache)
            if problem:
                out.append(problem)
        if BARE.search(line):
            out.append(f"{where}: names the readme without a file; write README.md \"Heading\"")
    return out


def test_every_docs_reference_names_a_file_and_heading_that_exist():
    cache: dict = {}
    problems = [p for f in scanned_files() for p in problems_in(f, REPO, cache)]
    assert not problems, "\n".join(problems)


def test_the_checker_sees_references_in_every_scanned_place():
    # a check that finds nothing passes for the wrong reason: each place must hold references
    found = {name: 0 for name in SCANNED}
    for f in scanned_files():
        text = f.read_text(encoding="utf-8")
        n = len(PLAIN.findall(LINK.sub("", text))) + (len(LINK.findall(text))
                                                        if f.suffix == ".md" else 0)
        found[f.relative_to(REPO).parts[0]] += n
    assert all(found[name] > 0 for name in SCANNED), found


def test_readme_is_short_enough_to_finish():
    size = (REPO / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_model_card_and_training_log_ship_beside_the_weights():
    for name in ("MODEL_CARD.md", "TRAINING_LOG.md"):
        assert (REPO / WEIGHTS / name).is_file()
    assert list((REPO / WEIGHTS).glob("wdsr_x2.ckpt"))


# {d} stands for "docs/", so that these made-up pages are not references of this file
@pytest.mark.parametrize("text, expected", [
    ('see {d}guide.md "Speed"', None),
    ("see {d}guide.md#speed-of-light", None),
    ("see [guide]({d}guide.md#speed-of-light)", None),
    ("## Here\n\nsee [here](#here)", None),
    ("see [here](#intro)", "no heading with anchor #intro"),  # #intro is guide's, not page's
    ('see {d}guide.md "Sped"', 'no heading "Sped"'),
    ("see {d}guide.md#sped", "no heading with anchor #sped"),
    ("see [guide]({d}guide.md#nope)", "no heading with anchor #nope"),
    ("see [guide]({d}gone.md)", "no file"),
    ("see ![a picture](shot.png)", "no file"),
    ('see {d}gone.md "Speed"', "no file"),
    ("see MODEL_CARD.md", "no file"),
    ("see the " + README_WORD, "names the readme without a file"),
    ('see {d}guide.md "Code"', 'no heading "Code"'),  # a '#' line in a code block
])
def test_the_checker_finds_broken_references(tmp_path, text, expected):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\n## Intro\n\n## Speed of `light`\n\n## Speed\n\n```bash\n# Code\n```\n")
    page = tmp_path / "page.md"
    page.write_text(text.format(d="docs/") + "\n")
    problems = problems_in(page, tmp_path)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_slugs_follow_github():
    assert slug("The rule for `auto`") == "the-rule-for-auto"
    assert slug("`data.batch_size` is per device") == "databatch_size-is-per-device"
    assert slug("`--json` never lands on what a command reads or writes") == (
        "--json-never-lands-on-what-a-command-reads-or-writes")
    assert slug("No folder's mode is changed") == "no-folders-mode-is-changed"
    assert slug("Tiling: a fixed window grid") == "tiling-a-fixed-window-grid"
