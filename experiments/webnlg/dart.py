"""DART (Nan et al. 2021) in the form the LoRA code trains on (paper Table 13).

Source: the v1.1.1 JSON release (``dart-v1.1.1-full-{train,dev,test}.json``, Yale-LILY/dart
``data/v1.1.1/``) under ``<data.dir>/dart/`` (or ``<data.dir>/dart/data/v1.1.1/``). When no
data folder is set, or the folder has no ``dart/`` subfolder (the offline copy in
``../shared/data`` has none: the train split could not be obtained), the Hub dataset
``dart`` is read instead.

Each JSON row is ``{"tripleset": [[s, p, o], ...], "subtree_was_extended": ...,
"annotations": [{"source": ..., "text": ...}, ...]}``. As in the LoRA repository's
``format_converting_dart.py``: the input is ``s : p : o | ...`` with the **predicate
lowercased**, every annotation is one training pair, and test references are grouped
per identical input (``gpt2_decode.py``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from experiments.core.data import DataError, resolve_data_dir, text_lines
from experiments.webnlg.data import Entry

log = logging.getLogger(__name__)

HUB_DATASET = "dart"
#: harness split -> (release file, Hub split)
SPLITS = {
    "train": ("dart-v1.1.1-full-train.json", "train"),
    "dev": ("dart-v1.1.1-full-dev.json", "validation"),
    "test": ("dart-v1.1.1-full-test.json", "test"),
}


def _folder(root: Path) -> Path | None:
    """The folder holding the release's JSON files, or None when ``root`` has no ``dart/``."""
    for base in (root / "dart" / "data" / "v1.1.1", root / "dart"):
        if base.is_dir() and any((base / f).is_file() for f, _ in SPLITS.values()):
            return base
    if (root / "dart").is_dir():
        raise FileNotFoundError(
            f"{root / 'dart'} holds none of {', '.join(f for f, _ in SPLITS.values())}; "
            f"put the v1.1.1 JSON files there or remove the folder to use the Hub ({HUB_DATASET})"
        )
    return None


def _path(folder: Path, filename: str) -> Path:
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"DART file not found: {path}. Put dart-v1.1.1-full-{{train,dev,test}}.json in "
            f"{folder}, or remove {folder} to use the Hub dataset {HUB_DATASET}"
        )
    return path


def _entry(row: Any, where: str, eid: int) -> Entry:
    """One release row -> :class:`Entry`; ``where`` prefixes error messages."""
    if not isinstance(row, dict) or "tripleset" not in row or "annotations" not in row:
        raise DataError(f"{where}: row is not an object with 'tripleset' and 'annotations'")
    triples = []
    for t in row["tripleset"]:
        if not (isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t)):
            raise DataError(f"{where}: triple {t!r} is not [subject, predicate, object] strings")
        triples.append((t[0].strip(), t[1].strip(), t[2].strip()))
    refs = []
    for a in row["annotations"]:
        text = a.get("text") if isinstance(a, dict) else None
        if not isinstance(text, str):
            raise DataError(f"{where}: annotation {a!r} has no 'text' string")
        refs.append(" ".join(text.split()))
    if not triples or not refs:
        raise DataError(f"{where}: empty {'tripleset' if not triples else 'annotations'}")
    return Entry(str(eid), "", tuple(triples), tuple(refs), lower_predicate=True)


def read_json(path: str | os.PathLike) -> list[Entry]:
    """Entries of one DART release file (a JSON list of rows), in file order.

    Raises:
        DataError: one line naming ``path`` (and the line for JSON syntax errors, the row
            index otherwise): not JSON, not a list, or a malformed row.
    """
    text = "".join(text_lines(path))  # UTF-8 checked per line
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg}); re-download it"
        ) from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of rows, found {type(rows).__name__}")
    return [_entry(row, f"{path}: row {i}", i) for i, row in enumerate(rows)]


def _hub_entries(split: str) -> list[Entry]:
    """Entries of one Hub split of ``dart``; needs the Hub."""
    from datasets import load_dataset

    ds = load_dataset(HUB_DATASET, split=SPLITS[split][1])
    out = []
    for i, row in enumerate(ds):
        # the Hub stores annotations as {"source": [...], "text": [...]}
        annotations = [{"text": t} for t in row["annotations"]["text"]]
        out.append(_entry({"tripleset": row["tripleset"], "annotations": annotations},
                          f"hub:{HUB_DATASET}/{split}: row {i}", i))  # fmt: skip
    return out


def data_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The local files a DART run reads; ``[]`` when it reads the Hub.

    Raises:
        FileNotFoundError: ``<data.dir>/dart/`` exists but lacks a split's file.
    """
    root = resolve_data_dir(data_dir)
    folder = _folder(root) if root else None
    return [_path(folder, f) for f, _ in SPLITS.values()] if folder else []


def load_dart(data_dir: str | os.PathLike | None = None) -> dict[str, list[Entry]]:
    """Load train/dev/test entries in file order, locally or from the Hub.

    Args:
        data_dir: folder with ``dart/``; ``None`` falls back to ``LORA_DATA_DIR``, and a
            folder without ``dart/`` (or no folder) to the Hub.

    Returns:
        ``{"train"|"dev"|"test": [Entry, ...]}`` with ``lower_predicate`` set.

    Raises:
        FileNotFoundError: ``dart/`` exists but lacks a file (the message names it).
        DataError: a malformed local file (:func:`read_json`).
    """
    root = resolve_data_dir(data_dir)
    folder = _folder(root) if root else None
    if folder is None:
        log.info("no dart/ folder under %s: reading the Hub dataset %s", root, HUB_DATASET)
        return {split: _hub_entries(split) for split in SPLITS}
    return {split: read_json(_path(folder, f)) for split, (f, _) in SPLITS.items()}
