"""WebNLG 2017 challenge data (Gardent et al. 2017) in the form the LoRA code trains on.

Source: the challenge's XML release (``webnlg_challenge_2017/{train,dev}/<n>triples/*.xml``
and ``test/testdata_with_lex.xml``; 6,940 / 872 / 1,862 entries) under ``<data.dir>/webnlg/``,
either unpacked or as the ``webnlg_challenge_2017.tar.gz`` tarball (read without
unpacking), where the folder comes from ``data.dir=`` or ``LORA_DATA_DIR``; with neither
set, the Hub dataset ``web_nlg`` (config ``webnlg_challenge_2017``).

The LoRA repository (``examples/NLG/src/format_converting_webnlg.py``, on Li & Liang's
JSON conversion of the same XML) builds its training data as follows, and so do we:

* an entry's *modified* triple set becomes ``s1 : p1 : o1 | s2 : p2 : o2`` in file order,
  DBpedia spelling kept (``Aarhus_Airport : cityServed : Aarhus``) (:func:`linearize`);
* every lexicalisation whose ``comment`` is ``good`` is one training pair (all are, in
  this release);
* test references are grouped by identical linearised input (``gpt2_decode.py``), and a
  group is *seen* when its category occurs in the training data (the ten categories
  of :data:`SEEN_CATEGORIES`; 971 seen + 891 unseen test entries). Table 14 reports
  BLEU/METEOR/TER on the seen (S), unseen (U) and all (A) groups.
"""

from __future__ import annotations

import os
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from experiments.core.data import DataError, resolve_data_dir

HUB_DATASET = "web_nlg"
HUB_CONFIG = "webnlg_challenge_2017"
FOLDER = "webnlg_challenge_2017"
TARBALL = "webnlg_challenge_2017.tar.gz"
TEST_FILE = "testdata_with_lex.xml"
#: harness split -> Hub split
HUB_SPLITS = {"train": "train", "dev": "dev", "test": "test"}
#: the categories of the training data: ``seen`` in format_converting_webnlg.py
SEEN_CATEGORIES = frozenset(
    {"Airport", "Astronaut", "Building", "City", "ComicsCharacter", "Food", "Monument",
     "SportsTeam", "University", "WrittenWork"}
)  # fmt: skip
#: test subsets of Table 14, in its column order
TEST_SPLITS = ("unseen", "seen", "all")

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Entry:
    """One triple set and its human references.

    Attributes:
        eid: the entry id within its file (``Id12``), or the row number for DART.
        category: DBpedia category (WebNLG); ``""`` for DART.
        triples: (subject, predicate, object) in file order.
        references: the lexicalisations kept for training/scoring, in file order.
        lower_predicate: lowercase predicates when linearising (DART's converter does).
    """

    eid: str
    category: str
    triples: tuple[Triple, ...]
    references: tuple[str, ...]
    lower_predicate: bool = False

    @property
    def context(self) -> str:
        """The model input: :func:`linearize` of :attr:`triples`."""
        return linearize(self.triples, self.lower_predicate)


@dataclass(frozen=True)
class TestGroup:
    """The references of one distinct test input, as ``gpt2_decode.py`` groups them.

    Attributes:
        context: the linearised triple set (the decoding prompt).
        references: every reference of every entry with this input, in file order.
        seen: the category occurs in the training data (WebNLG; always True for DART).
    """

    context: str
    references: tuple[str, ...]
    seen: bool = True


def linearize(triples: Iterable[Triple], lower_predicate: bool = False) -> str:
    """``[("A", "p", "B"), ("B", "q", "C")]`` -> ``"A : p : B | B : q : C"``.

    Source: ``format_converting_webnlg.py`` / ``format_converting_dart.py`` of
    microsoft/LoRA (the latter lowercases predicates: ``lower_predicate``).
    """
    return " | ".join(f"{s} : {p.lower() if lower_predicate else p} : {o}" for s, p, o in triples)


def training_pairs(entries: Iterable[Entry]) -> list[tuple[str, str]]:
    """(context, reference) pairs, one per reference, in file order (the LoRA ``.jsonl``)."""
    return [(e.context, ref) for e in entries for ref in e.references]


def group_references(
    entries: Iterable[Entry], seen: frozenset[str] | None = None
) -> list[TestGroup]:
    """Test references grouped per identical context, in order of first appearance.

    Args:
        seen: categories counted as seen; ``None`` marks every group seen (DART).
    """
    groups: dict[str, tuple[list[str], bool]] = {}
    for e in entries:
        refs, _ = groups.setdefault(e.context, ([], seen is None or e.category in seen))
        refs.extend(e.references)
    return [TestGroup(c, tuple(refs), is_seen) for c, (refs, is_seen) in groups.items()]


def test_subsets(groups: list[TestGroup]) -> dict[str, list[int]]:
    """Indices of the ``unseen``, ``seen`` and ``all`` test groups (Table 14's U, S, A)."""
    return {
        "unseen": [i for i, g in enumerate(groups) if not g.seen],
        "seen": [i for i, g in enumerate(groups) if g.seen],
        "all": list(range(len(groups))),
    }


def parse_triple(text: str, where: str) -> Triple:
    """``"Aarhus_Airport | cityServed | Aarhus"`` -> ``("Aarhus_Airport", "cityServed", "Aarhus")``.

    Raises:
        DataError: not three ``" | "``-separated fields; the message starts with ``where``.
    """
    parts = [p.strip() for p in text.split(" | ")]
    if len(parts) != 3 or not all(parts):
        raise DataError(
            f"{where}: triple {text.strip()!r} is not 'subject | predicate | object'; "
            f"fix the line or re-download the release"
        )
    return parts[0], parts[1], parts[2]


def _entry_lines(raw: bytes) -> list[int]:
    """Line number of each ``<entry`` in the bytes (ElementTree keeps no line numbers)."""
    lines, at, line = [], raw.find(b"<entry"), 1
    last = 0
    while at >= 0:
        line += raw.count(b"\n", last, at)
        lines.append(line)
        last, at = at, raw.find(b"<entry", at + 1)
    return lines


def parse_xml(raw: bytes, name: str) -> list[Entry]:
    """Entries of one WebNLG XML file (``<benchmark><entries><entry ...>``).

    Keeps each entry's ``modifiedtripleset`` and its ``lex`` texts whose ``comment`` is
    ``good`` (the LoRA converter's filter); whitespace inside a text is collapsed.

    Args:
        raw: the file's bytes (UTF-8 XML).
        name: the file's path, for messages.

    Raises:
        DataError: one line naming ``name:line``: malformed XML, no ``entries``, an entry
            without a category or modified triple, or a malformed triple.
    """
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as err:
        line = err.position[0] if err.position else 1
        raise DataError(f"{name}:{line}: malformed XML ({err}); re-download the release") from None
    entries_el = root.find("entries")
    if entries_el is None:
        raise DataError(f"{name}:1: no <entries> element; expected a WebNLG <benchmark> file")
    out = []
    lines = _entry_lines(raw)
    for i, el in enumerate(entries_el.iter("entry")):
        where = f"{name}:{lines[i] if i < len(lines) else 1}"
        category = el.get("category")
        mtriples = el.findall("modifiedtripleset/mtriple")
        if not category or not mtriples:
            missing = "category attribute" if not category else "<modifiedtripleset><mtriple>"
            raise DataError(f"{where}: entry without {missing}; every entry needs both")
        triples = tuple(parse_triple(t.text or "", where) for t in mtriples)
        refs = tuple(
            " ".join("".join(lex.itertext()).split())
            for lex in el.findall("lex")
            if lex.get("comment", "good") == "good"
        )
        out.append(Entry(el.get("eid", str(i + 1)), category, triples, refs))
    return out


def _split_members(names: Iterable[str], split: str) -> list[str]:
    """The XML files of one split among release paths (sorted, so the order is stable)."""
    keep = []
    for name in names:
        parts = PurePosixPath(name).parts
        if not name.endswith(".xml") or FOLDER not in parts:
            continue
        rel = parts[parts.index(FOLDER) + 1 :]
        if split == "test" and rel == ("test", TEST_FILE) or split != "test" and rel[0] == split:
            keep.append(name)
    return sorted(keep)


def _release(root: Path) -> Path | None:
    """The unpacked release folder or the tarball under ``root``; None if neither."""
    for base in (root / "webnlg", root):
        if (base / FOLDER).is_dir():
            return base / FOLDER
        if (base / TARBALL).is_file():
            return base / TARBALL
    return None


def _missing(root: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"WebNLG 2017 not found under {root / 'webnlg'}: expected {FOLDER}/ or {TARBALL} there. "
        f"Point data.dir= (or LORA_DATA_DIR) at a folder holding webnlg/{TARBALL}, or unset "
        f"both to use the Hub dataset {HUB_DATASET} ({HUB_CONFIG})"
    )


def _read_files(release: Path, split: str) -> Iterator[tuple[str, bytes]]:
    """(path for messages, bytes) of a split's XML files, from a folder or the tarball."""
    if release.is_dir():
        paths = [str(p) for p in release.rglob("*.xml")]
        names = _split_members([p.replace(os.sep, "/") for p in paths], split)
        for name in names:
            yield name, Path(name).read_bytes()
        if not names:
            raise DataError(f"{release}: no {split} XML files; expected {FOLDER}/{split}/...")
        return
    try:
        with tarfile.open(release, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            names = _split_members(members, split)
            if not names:
                raise DataError(f"{release}: no {split} XML files inside; re-download the tarball")
            for name in names:
                f = tar.extractfile(members[name])
                assert f is not None  # a regular file
                yield f"{release}!{name}", f.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{release}: not a readable .tar.gz ({err}); re-download it") from None


def read_split(release: str | os.PathLike, split: str) -> list[Entry]:
    """Entries of ``train``, ``dev`` or ``test`` from the release folder or tarball.

    Raises:
        DataError: a malformed file (:func:`parse_xml`) or tarball, or no file for the split.
    """
    return [e for name, raw in _read_files(Path(release), split) for e in parse_xml(raw, name)]


def _hub_entries(split: str) -> list[Entry]:
    """Entries of one Hub split (``web_nlg``, ``webnlg_challenge_2017``); needs the Hub."""
    from datasets import load_dataset

    ds = load_dataset(HUB_DATASET, HUB_CONFIG, split=HUB_SPLITS[split])
    out = []
    for row in ds:
        triples = tuple(
            parse_triple(t, f"hub:{HUB_DATASET}/{split}/{row['eid']}")
            for t in row["modified_triple_sets"]["mtriple_set"][0]
        )
        lex = row["lex"]
        refs = tuple(
            " ".join(text.split())
            for text, comment in zip(lex["text"], lex["comment"], strict=True)
            if comment == "good"
        )
        out.append(Entry(row["eid"], row["category"], triples, refs))
    return out


def data_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The local files a WebNLG run reads (the tarball, or the release's XML files);
    ``[]`` when it reads the Hub.

    Raises:
        FileNotFoundError: a data folder is set but holds no WebNLG release.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    release = _release(root)
    if release is None:
        raise _missing(root)
    if release.is_file():
        return [release]
    names = [p.as_posix() for p in release.rglob("*.xml")]
    return [Path(n) for split in HUB_SPLITS for n in _split_members(names, split)]


def load_webnlg(data_dir: str | os.PathLike | None = None) -> dict[str, list[Entry]]:
    """Load train/dev/test entries in file order.

    Args:
        data_dir: folder with ``webnlg/`` (tarball or unpacked release); ``None`` falls
            back to ``LORA_DATA_DIR``, then the Hub.

    Returns:
        ``{"train"|"dev"|"test": [Entry, ...]}``; test is ``testdata_with_lex.xml``
        (seen and unseen categories).

    Raises:
        FileNotFoundError: a data folder is set but holds no release (names both options).
        DataError: a malformed local file; names the file and line.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return {split: _hub_entries(split) for split in HUB_SPLITS}
    release = _release(root)
    if release is None:
        raise _missing(root)
    return {split: read_split(release, split) for split in HUB_SPLITS}


def categories(entries: Iterable[Entry]) -> frozenset[str]:
    """The categories of ``entries``: on the training split, the seen categories."""
    return frozenset(e.category for e in entries)
