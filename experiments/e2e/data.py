"""E2E NLG Challenge data (Novikova et al. 2017) in the form the LoRA code trains on.

Source: the official CSVs (``trainset.csv``, ``devset.csv``, ``testset_w_refs.csv``,
header ``mr,ref``, 42,061 / 4,672 / 4,693 rows) in ``<data.dir>/e2e/`` (or directly in
``<data.dir>/``), where the folder comes from ``data.dir=`` or ``LORA_DATA_DIR``; with
neither set, the Hub dataset ``tuetschek/e2e_nlg`` (the canonical id of ``e2e_nlg``).

The LoRA repository (``examples/NLG/data/e2e/*.txt``, from Li & Liang 2021) feeds GPT-2
re-serialised data, and its Table 3 scores are computed against it:

* the MR ``name[Alimentum], area[city centre], familyFriendly[no]`` becomes
  ``name : Alimentum | area : city centre | family friendly : no`` (:func:`linearize_mr`;
  slots keep the file's order, which is the canonical one in all three files);
* MR values and references are pre-tokenized (:func:`pretokenize`): ``family-friendly.``
  becomes ``family - friendly .``, ``£20-25`` becomes ``£ 20 - 25``, ``isn't`` becomes
  ``is n't``;
* the test references are grouped by identical MR in file order (630 test MRs).
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

from experiments.core.data import DataError, resolve_data_dir, text_lines

HUB_DATASET = "tuetschek/e2e_nlg"
#: harness split -> (official CSV file, Hub split)
SPLITS = {
    "train": ("trainset.csv", "train"),
    "dev": ("devset.csv", "validation"),
    "test": ("testset_w_refs.csv", "test"),
}
#: CSV slot name -> the LoRA code's MR key
MR_KEYS = {
    "name": "name",
    "eatType": "Type",
    "food": "food",
    "priceRange": "price",
    "customer rating": "customer rating",
    "area": "area",
    "familyFriendly": "family friendly",
    "near": "near",
}

_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")

# Pre-tokenization rules, inferred from the released files (they behave like spaCy's
# English tokenizer on the characters E2E contains): per whitespace-separated chunk,
# strip prefixes and suffixes, split clitics, then split at infixes.
_QUOTES = "'\"`‘’“”"
_LOWER, _UPPER = "a-zß-öø-ÿ", "A-ZÀ-ÖØ-Þ"
_ALPHA = _LOWER + _UPPER
_PREFIX = re.compile(rf"^(?:\.\.+|…|[£$€¥#&*_<>(\[{{,:;!?¿¡§%=+{_QUOTES}])")
_SUFFIX = re.compile(
    rf"(?:\.\.+|…|'s|'S|’s|’S|[,:;!?)\]}}<>_#*&—–{_QUOTES}]|(?<=[0-9])[+£$€¥]"
    rf"|(?<=[0-9{_LOWER}%²+\-)\]}}{_QUOTES}])\.|(?<=[{_UPPER}][{_UPPER}])\.)$"
)
_INFIX = re.compile(
    r"\.\.+|…"
    r"|(?<=[0-9])[+\-*^](?=[0-9-])"  # 20-25
    rf"|(?<=[{_LOWER}])\.(?=[{_UPPER}])"  # food.The
    rf"|(?<=[{_ALPHA}]),(?=[{_ALPHA}])"  # pub,near
    rf"|(?<=[{_ALPHA}0-9])(?:---|--|-|–|—|~)(?=[{_ALPHA}])"  # family-friendly, 5-star
    rf"|(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])"  # and/or
)
_CLITIC = re.compile(r"^(.+?)(n't|N'T|'(?:re|ve|ll|m|d)|'(?:RE|VE|LL|M|D))$")
_SPECIAL = {"'s", "n't", "'re", "'ve", "'ll", "'m", "'d"}


def _split_chunk(chunk: str) -> list[str]:
    """Tokens of one whitespace-free chunk, e.g. ``"(isn't)"`` -> ``( is n't )``."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    core = chunk
    while core and core.lower() not in _SPECIAL:
        pre = _PREFIX.match(core)
        if pre:
            prefixes.append(pre.group())
            core = core[pre.end() :]
            continue
        suf = _SUFFIX.search(core)
        if not suf or suf.start() == 0:
            break
        suffixes.insert(0, suf.group())
        core = core[: suf.start()]
    if not core:
        return prefixes + suffixes
    clitic = _CLITIC.match(core)
    if clitic:
        middle = [clitic.group(1), clitic.group(2)]
    else:
        middle, start = [], 0
        for m in _INFIX.finditer(core):
            middle += [core[start : m.start()], m.group()]
            start = m.end()
        middle.append(core[start:])
    return prefixes + [t for t in middle if t] + suffixes


def pretokenize(text: str) -> str:
    """Tokenize like the references of the LoRA repository's E2E files.

    Spaces go around punctuation, currency signs, hyphens inside words and numbers, and
    clitics; runs of whitespace (line breaks included) collapse. Idempotent.

    >>> pretokenize("It isn't family-friendly; it's £20-25.")
    "It is n't family - friendly ; it 's £ 20 - 25 ."

    Source: rules inferred from ``examples/NLG/data/e2e/test.txt`` of microsoft/LoRA
    against ``testset_w_refs.csv`` (e.g. ``£20-£25`` stays ``£ 20-£25``, ``.Blue``
    stays whole, ``can't`` becomes ``ca n't``).
    """
    return " ".join(tok for chunk in text.split() for tok in _split_chunk(chunk))


def parse_mr(mr: str) -> list[tuple[str, str]]:
    """``"name[X], eatType[pub]"`` -> ``[("name", "X"), ("eatType", "pub")]``.

    Raises:
        ValueError: the MR is not a comma-separated list of ``slot[value]`` with known
            slots; the message quotes the MR and lists the slots.
    """
    slots, end = [], 0
    for m in _SLOT.finditer(mr):
        if m.start() != end:
            break
        slots.append((m.group(1), m.group(2).strip()))
        end = m.end()
    if not slots or end != len(mr) or any(key not in MR_KEYS for key, _ in slots):
        raise ValueError(
            f"cannot parse E2E meaning representation {mr!r}: expected 'slot[value], ...' "
            f"with slots {', '.join(MR_KEYS)}"
        )
    return slots


def linearize_mr(mr: str, tokenize: bool = True) -> str:
    """The LoRA code's MR string, e.g. ``name : Alimentum | area : city centre``.

    Args:
        mr: an MR as in the CSVs, ``name[Alimentum], area[city centre]``.
        tokenize: pre-tokenize the values (``£20-25`` -> ``£ 20 - 25``), as the LoRA files do.
    """
    return " | ".join(
        f"{MR_KEYS[key]} : {pretokenize(value) if tokenize else value}"
        for key, value in parse_mr(mr)
    )


def _csv_path(root: Path, filename: str) -> Path:
    for candidate in (root / "e2e" / filename, root / filename):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"E2E file not found: {root / 'e2e' / filename}. Point data.dir= (or LORA_DATA_DIR) "
        f"at a folder holding e2e/{{trainset,devset,testset_w_refs}}.csv, or unset both to "
        f"use the Hub dataset {HUB_DATASET}"
    )


def read_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(MR, reference) rows of an official E2E CSV, in file order, raw text.

    Raises:
        DataError: see :func:`read_csv_rows`.
    """
    return [(mr, ref) for _, mr, ref in read_csv_rows(path)]


def read_csv_rows(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """(line, MR, reference) rows of an official E2E CSV; ``line`` is where the row starts.

    Checks as it reads: UTF-8, a header with ``mr`` and ``ref``, every row with as many
    fields as the header and a non-empty MR and reference, quotes closed.

    Raises:
        DataError: one line, ``<path>:<line>: <problem>; <what was expected>``.
    """
    # strict: an unclosed quote (a file cut inside a reference) is an error, not a row.
    reader = csv.reader(text_lines(path), strict=True)  # BOM dropped, quoted line breaks kept
    start = 1  # the line the current row starts at
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file, expected a header with columns mr,ref")
        if not {"mr", "ref"} <= set(header):
            raise DataError(
                f"{path}:1: header lacks column {'mr' if 'mr' not in header else 'ref'!r} "
                f"(expected mr,ref); header found: {','.join(header)}"
            )
        mr_at, ref_at = header.index("mr"), header.index("ref")
        rows = []
        start = reader.line_num + 1
        for row in reader:
            if row:  # csv gives [] for a blank line
                if len(row) != len(header):
                    raise DataError(
                        f"{path}:{start}: {len(row)} comma-separated fields, expected the "
                        f"header's {len(header)}; the row is cut short or unquoted"
                    )
                empty = [c for c, i in (("mr", mr_at), ("ref", ref_at)) if not row[i].strip()]
                if empty:
                    raise DataError(f"{path}:{start}: empty {empty[0]}; every row needs mr and ref")
                rows.append((start, row[mr_at], row[ref_at]))
            start = reader.line_num + 1
    except csv.Error as err:  # e.g. "unexpected end of data" inside a quoted field
        raise DataError(f"{path}:{start}: {err}; the row is cut short (quote not closed)") from None
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return rows


def _read_hub(split: str) -> list[tuple[str, str]]:
    from datasets import load_dataset

    ds = load_dataset(HUB_DATASET, split=split)
    return list(zip(ds["meaning_representation"], ds["human_reference"], strict=True))


def data_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The local files an E2E run reads; ``[]`` when it reads the Hub.

    Raises:
        FileNotFoundError: a local file is missing.
    """
    root = resolve_data_dir(data_dir)
    return [_csv_path(root, f) for f, _ in SPLITS.values()] if root else []


def load_e2e(
    data_dir: str | os.PathLike | None = None, tokenize: bool = True
) -> dict[str, list[tuple[str, str]]]:
    """Load train/dev/test as (context, reference) pairs in file order.

    Args:
        data_dir: folder with ``e2e/*.csv``; ``None`` falls back to ``LORA_DATA_DIR``,
            then the Hub.
        tokenize: pre-tokenize MR values and references (:func:`pretokenize`), as the LoRA
            files are; otherwise only whitespace is normalised.

    Returns:
        ``{"train"|"dev"|"test": [(linearised MR, reference), ...]}``.

    Raises:
        FileNotFoundError: a local file is missing (the message names it and both options).
        DataError: a malformed local file (:func:`read_csv_rows`) or MR; names file:line.
        ValueError: a malformed MR in the Hub data.
    """
    root = resolve_data_dir(data_dir)
    out = {}
    for split, (filename, hub_split) in SPLITS.items():
        path = _csv_path(root, filename) if root else None
        if path is None:
            rows = [(0, mr, ref) for mr, ref in _read_hub(hub_split)]
        else:
            rows = read_csv_rows(path)
        contexts: dict[str, str] = {}  # each MR repeats: linearise it once
        pairs = []
        for line, mr, ref in rows:
            if mr not in contexts:
                try:
                    contexts[mr] = linearize_mr(mr, tokenize)
                except ValueError as err:
                    if path is None:
                        raise
                    raise DataError(f"{path}:{line}: {err}") from None
            pairs.append((contexts[mr], pretokenize(ref) if tokenize else " ".join(ref.split())))
        out[split] = pairs
    return out


def group_by_mr(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """References grouped per identical context, MRs in order of first appearance.

    This is ``gpt2_decode.py``'s grouping (an insertion-ordered dict keyed by context);
    on the test set it gives the 630 MRs of ``e2e_ref.txt``.
    """
    groups: dict[str, list[str]] = {}
    for context, ref in pairs:
        groups.setdefault(context, []).append(ref)
    return list(groups.items())


def strip_accents(text: str) -> str:
    """``"Café"`` -> ``"Cafe"`` (Unicode NFD, combining marks dropped)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def accent_map(texts: list[str]) -> dict[str, str]:
    """Lower-cased unaccented word -> its most frequent accented lower-cased spelling.

    Built from training text; lets the outputs of an accent-stripping tokenizer (BERT
    uncased turns ``Café`` into ``cafe``) be spelled like the references again.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for text in texts:
        for word in text.lower().split():
            plain = strip_accents(word)
            if plain != word:
                counts[(plain, word)] += 1
    best: dict[str, str] = {}
    for (plain, word), _ in counts.most_common():
        best.setdefault(plain, word)
    return best
