"""Data pieces every task family shares: where the data lives, how its files are read
and checked, how it is subsampled, and the held-out split for model selection."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig

T = TypeVar("T")


class DataError(ValueError):
    """A local data file is malformed.

    The message is one line that names the file (and line) and what was expected; the
    entry point prints it as ``error: <message>``.
    """


def text_lines(path: str | os.PathLike) -> Iterator[str]:
    """The lines of a UTF-8 text file, line ends kept, a leading BOM dropped.

    Reads in binary and decodes line by line, so a bad byte is reported with its line
    (a UTF-8 multi-byte character never contains the ``\\n`` byte).

    Raises:
        DataError: ``<path>:<line>: not UTF-8 ...``.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); re-save the file as UTF-8"
                ) from None
            yield line.removeprefix("\ufeff") if number == 1 else line


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data.dir`` if set, else ``$LORA_DATA_DIR``, else ``None`` (use the Hub)."""
    value = data_dir or os.environ.get("LORA_DATA_DIR")
    return Path(value).expanduser() if value else None


def subsample_indices(size: int, n: int | None, seed: int) -> list[int] | None:
    """Sorted indices of a seeded sample of ``n`` out of ``size``; ``None`` keeps all.

    The same (size, n, seed) gives the same sample in every task family.
    """
    if n is None or n >= size:
        return None
    return sorted(random.Random(seed).sample(range(size), n))


def subsample(data: T, n: int | None, seed: int) -> T:
    """Seeded subsample of a list or a ``datasets.Dataset`` (kept in file order)."""
    idx = subsample_indices(len(data), n, seed)
    if idx is None:
        return data
    if hasattr(data, "select"):
        return data.select(idx)
    return [data[i] for i in idx]  # type: ignore[index]


def heldout_split(data: T, n: int | None, seed: int) -> tuple[T, T | None]:
    """Split a seeded held-out set of ``n`` examples off a training set.

    Model selection (epoch, learning rate) reads the held-out set, so that the dev set a
    table reports is never used to choose. The split comes before :func:`subsample`, so
    ``data.max_train_samples`` still gives the training size. Both parts keep file order.

    Args:
        data: a list or a ``datasets.Dataset``.
        n: held-out examples; ``None`` holds nothing out.
        seed: the run's seed: another seed holds out other examples.

    Returns:
        ``(train, heldout)``, disjoint by position; ``(data, None)`` when ``n`` is None.

    Raises:
        ValueError: ``n`` leaves no training example.
    """
    if n is None:
        return data, None
    if n >= len(data):
        raise ValueError(f"data.heldout={n} leaves no training example (the training set has "
                         f"{len(data)}); hold out fewer")  # fmt: skip
    held = set(random.Random(f"heldout-{seed}").sample(range(len(data)), n))
    rest = [i for i in range(len(data)) if i not in held]
    if hasattr(data, "select"):
        return data.select(rest), data.select(sorted(held))
    return [data[i] for i in rest], [data[i] for i in sorted(held)]  # type: ignore[return-value,index]


def usable_length(cfg: DictConfig, method: Any, model_max: int) -> tuple[int, int]:
    """(max tokens per input, virtual tokens) after prefix methods take their share.

    Raises:
        ValueError: the prefix leaves fewer than 8 tokens of input.
    """
    virtual = int(getattr(method, "num_virtual_tokens", 0) or 0)
    limit = min(cfg.train.max_seq_length, model_max - virtual)
    if limit < 8:
        raise ValueError(
            f"train.max_seq_length={cfg.train.max_seq_length} leaves {limit} tokens after "
            f"{virtual} virtual tokens; shorten the prefix or raise the length"
        )
    return limit, virtual
