"""The appendix docs/source_articles.md examines every numbered reference of both source articles,
gives each one of the three verdicts, and chapter 00 names both articles and links the appendix.
README and chapter 00 promise only chapters that exist, or say that the others are planned.

The articles themselves are not in the repository: they lie in ../shared/seeds beside it (present
in CI). Without them the tests that parse the reference lists are skipped with a message."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPENDIX = ROOT / "docs" / "source_articles.md"
CHAPTER_00 = ROOT / "notebooks" / "00_how_to_use.py"
README = ROOT / "README.md"

# The course's names for the two articles, by file-name prefix in seeds/.
ARTICLES = {"000_": "the talent article", "004_": "the employment article"}
VERDICTS = ("real and correct", "real but wrong", "not found")


def _seeds_dir() -> Path | None:
    for candidate in (ROOT.parent / "shared" / "seeds", ROOT / "shared" / "seeds"):
        if candidate.is_dir():
            return candidate
    return None


SEEDS = _seeds_dir()
needs_seeds = pytest.mark.skipif(
    SEEDS is None,
    reason="the source articles are not here (expected in ../shared/seeds beside the repository); "
    "the appendix cannot be compared with their reference lists",
)


def _article_file(prefix: str) -> Path:
    files = sorted(SEEDS.glob(f"{prefix}*.txt"))
    assert len(files) == 1, f"expected one seeds/{prefix}*.txt, found {[f.name for f in files]}"
    return files[0]


def seed_references(prefix: str) -> dict[int, str]:
    """Numbered entries ``[N] text`` after the article's reference heading (参考文献); {} if it has none."""
    text = _article_file(prefix).read_text(encoding="utf-8")
    start = text.find("参考文献")
    if start < 0:
        return {}
    refs = {int(n): body.strip() for n, body in re.findall(r"^\[(\d+)\]\s*(.*)$", text[start:], re.M)}
    assert sorted(refs) == list(range(1, len(refs) + 1)), "reference numbers are not 1..N"
    return refs


def appendix_section(prefix: str) -> str:
    """The appendix's section for one article: from its '## ' heading naming the file to the next '## '."""
    text = APPENDIX.read_text(encoding="utf-8")
    name = _article_file(prefix).name if SEEDS else prefix
    parts = re.split(r"^## ", text, flags=re.M)
    found = [p for p in parts if p.splitlines()[0].startswith(ARTICLES[prefix].capitalize()) and name in p.splitlines()[0]]
    assert len(found) == 1, f"docs/source_articles.md needs one section '## {ARTICLES[prefix].capitalize()} (`{name}`)'"
    return found[0]


def appendix_verdicts(section: str) -> dict[int, tuple[str, str]]:
    """{N: (verdict, how the entry is given)} from '### [N] …' blocks and '| [N] | … | verdict |' rows."""
    out: dict[int, tuple[str, str]] = {}
    for block in re.split(r"^(?=### )", section, flags=re.M):
        head = re.match(r"### \[(\d+)\] (.*)", block)
        if head:
            verdict = re.search(r"^\* \*\*Verdict:\*\* (.+)$", block, re.M)
            assert verdict, f"entry [{head.group(1)}] has no '* **Verdict:** …' line"
            assert int(head.group(1)) not in out, f"entry [{head.group(1)}] appears twice"
            out[int(head.group(1))] = (verdict.group(1), head.group(2))
    for n, given, verdict in re.findall(r"^\| \[(\d+)\] \| ([^|]*) \| ([^|]*) \|$", section, re.M):
        assert int(n) not in out, f"entry [{n}] appears twice"
        out[int(n)] = (verdict.strip(), given.strip())
    return out


def short(verdict: str) -> str:
    """The verdict without its explanation: 'real but wrong authors: …' -> 'real but wrong authors'."""
    return verdict.split(":", 1)[0].strip().rstrip(".")


def kind(verdict: str) -> str:
    found = [v for v in VERDICTS if verdict.startswith(v)]
    assert found, f"verdict {verdict!r} does not start with one of {VERDICTS}"
    return found[0]


@needs_seeds
@pytest.mark.parametrize("prefix", sorted(ARTICLES), ids=lambda p: ARTICLES[p])
def test_appendix_covers_every_numbered_reference(prefix: str):
    refs = seed_references(prefix)
    section = appendix_section(prefix)
    if not refs:
        assert "has no reference list" in section, f"{ARTICLES[prefix]} has no reference list: the appendix must say so"
        return
    verdicts = appendix_verdicts(section)
    missing, extra = sorted(set(refs) - set(verdicts)), sorted(set(verdicts) - set(refs))
    assert not missing and not extra, f"{ARTICLES[prefix]}: entries missing {missing}, not in the article {extra}"
    for n, (verdict, given) in verdicts.items():
        kind(verdict)
        same = re.fullmatch(r"\[(\d+)\]", given)
        if same:  # a repeat: the article's text must really be identical to the entry it points to
            assert refs[n] == refs[int(same.group(1))], f"[{n}] is said to repeat {given}, but the texts differ"
            assert short(verdict) == short(verdicts[int(same.group(1))][0]), f"[{n}] repeats {given} but has another verdict"
        elif "truncated" not in given:  # a distinct entry: the heading names the article's first author
            first_author = refs[n].split(",", 1)[0].strip()
            assert first_author in given, f"[{n}]: the heading should give the entry as printed ({first_author}, …)"


@needs_seeds
def test_summary_counts_match_the_verdicts():
    text = APPENDIX.read_text(encoding="utf-8")
    for prefix, name in ARTICLES.items():
        refs = seed_references(prefix)
        counts = Counter(kind(v) for v, _ in appendix_verdicts(appendix_section(prefix)).values()) if refs else Counter()
        row = re.search(rf"^\| {name} \| (\d+)[^|]*\| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
        assert row, f"the summary table needs a row for {name}"
        assert [int(x) for x in row.groups()] == [len(refs)] + [counts[v] for v in VERDICTS], (
            f"summary row for {name} disagrees with the entries: total {len(refs)}, {dict(counts)}"
        )


def test_chapter_00_names_both_articles_and_links_the_appendix():
    text = CHAPTER_00.read_text(encoding="utf-8")
    for name in ARTICLES.values():
        assert name in text, f"chapter 00 must name {name}"
    assert "](../docs/source_articles.md)" in text, "chapter 00 must link ../docs/source_articles.md"
    assert (CHAPTER_00.parent / "../docs/source_articles.md").resolve() == APPENDIX.resolve() and APPENDIX.exists()


def test_appendix_uses_the_course_names_and_copies_no_article_text():
    text = APPENDIX.read_text(encoding="utf-8")
    for name in ARTICLES.values():
        assert name in text
    han = re.findall(r"[\u4e00-\u9fff]+", text)
    assert not han, f"the appendix must describe the articles, not copy them: {han[:5]}"


@pytest.mark.parametrize("path", [README, CHAPTER_00], ids=lambda p: p.name)
def test_promises_are_honest(path: Path):
    """What exists is listed as existing, and nothing is promised that does not exist: every
    chapter in the README's table (or chapter 00's status table) is a notebook, every notebook is
    in it, and no row calls an existing chapter planned or coming."""
    text = path.read_text(encoding="utf-8")
    assert "to a working Transformer" not in text
    written = {int(p.name[:2]) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}
    assert set(range(18)) <= written, f"chapters 00-17 should exist, found {sorted(written)}"
    listed = set()
    for row in re.findall(r"^(?:# )?\| (\d\d)(?:–(\d\d))? \|(.*)$", text, re.M):
        first, last, rest = int(row[0]), int(row[1] or row[0]), row[2]
        chapters = set(range(first, last + 1))
        listed |= chapters
        assert chapters <= written, f"{path.name} lists chapters {sorted(chapters - written)} that do not exist"
        assert not re.search(r"\b(planned|coming)\b", rest), f"{path.name}: row {row[0]} calls existing chapters planned"
    assert listed == written, f"{path.name} lists {sorted(listed)}, the notebooks are {sorted(written)}"
