"""E2E NLG Challenge scores (BLEU, NIST, METEOR, ROUGE-L, CIDEr) on the official script's scale.

Reproduces ``measure_scores.py -p`` from ``tuetschek/e2e-metrics``, the scorer behind the E2E
NLG numbers of the LoRA paper (Hu et al. 2021, Sec. 5.5, Table 3):

* BLEU and NIST: mteval-v13a tokenization, case-insensitive, corpus level
  (:mod:`experiments.mteval`);
* METEOR 1.5, ROUGE-L and CIDEr: the MS-COCO caption scorers of ``pycocoevalcap`` (METEOR's
  bundled jar run with ``-l en -norm``; ROUGE-L as an LCS F-measure with beta 1.2; CIDEr-D with
  n=4 and sigma=6, x10, document frequencies from the references), applied after the Stanford
  PTBTokenizer (lowercased, punctuation removed).

Usage: ``python -m experiments.e2e.metrics REFS PREDS`` prints the same ``SCORES:`` block as the
official script. ``REFS`` holds one reference per line with instances separated by an empty
line (or exactly one reference per line and no empty line); ``PREDS`` one output per line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.core.nlg_metrics import meteor_score, require_java
from experiments.e2e import mteval

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "METRIC_MODULE_DIR",
    "METRIC_NAMES",
    "compute_e2e_metrics",
    "format_scores",
    "load_metric",
    "read_predictions",
    "read_references",
]

METRIC_NAMES = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")
METRIC_MODULE_DIR = Path(__file__).resolve().parent / "e2e_nlg"


def _read_lines(path: str | Path) -> list[str]:
    # Like the official reader (codecs.open + strip): UTF-8, no BOM removal, str.splitlines
    # boundaries, surrounding whitespace stripped.
    return [line.strip() for line in Path(path).read_bytes().decode("utf-8").splitlines()]


def read_references(path: str | Path) -> list[list[str]]:
    """Read an E2E reference file into one list of references per instance.

    Args:
        path: UTF-8 text file with one reference per line and instances separated by one empty
            line (trailing empty lines are ignored). A file without any empty line is read as
            single-reference data: one instance per line.

    Returns:
        ``groups[i]`` is the list of references of instance ``i`` (in file order).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an instance without references (the file starts with, or contains two
            consecutive, empty lines), an empty file, or invalid UTF-8.

    Source: ``read_lines(..., multi_ref=True)`` and ``load_data`` in e2e-metrics'
    ``measure_scores.py``.
    """
    groups: list[tuple[int, list[str]]] = [(1, [])]  # (first line number, references)
    for line_no, line in enumerate(_read_lines(path), start=1):
        if line:
            groups[-1][1].append(line)
        else:
            groups.append((line_no + 1, []))
    while len(groups) > 1 and not groups[-1][1]:
        groups.pop()
    if len(groups) == 1:
        if not groups[0][1]:
            raise ValueError(f"{path}: no references")
        return [[ref] for ref in groups[0][1]]
    for line_no, refs in groups:
        if not refs:
            raise ValueError(f"{path}: instance without references at line {line_no}")
    return [refs for _, refs in groups]


def read_predictions(path: str | Path) -> list[str]:
    """Read system outputs, one per line (an empty line is an empty output).

    Args:
        path: UTF-8 text file.

    Returns:
        The outputs with surrounding whitespace stripped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: invalid UTF-8.

    Source: ``read_lines`` in e2e-metrics' ``measure_scores.py``.
    """
    return _read_lines(path)


def _ptb_tokenize(captions: dict[tuple[str, int], list[str]]) -> dict[tuple[str, int], list[str]]:
    """Stanford PTBTokenizer via pycocoevalcap: lowercased tokens joined by spaces, no punctuation.

    The jar tokenizes one line per caption, so line breaks inside a caption (which the official
    file readers never produce) become spaces instead of shifting every later caption.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    flat = {
        key: [{"caption": " ".join(c.splitlines())} for c in caps] for key, caps in captions.items()
    }
    tokenized = PTBTokenizer().tokenize(flat)
    if {k: len(v) for k, v in tokenized.items()} != {k: len(v) for k, v in captions.items()}:
        raise RuntimeError("the PTB tokenizer (java) returned the wrong number of lines")
    return tokenized


def _coco_scores(
    references: Sequence[Sequence[str]], predictions: Sequence[str]
) -> dict[str, float]:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    # One tokenizer run for both sides (the official script makes two; lines are tokenized
    # independently, so the result is the same) saves a JVM start.
    captions = {("ref", i): list(refs) for i, refs in enumerate(references)}
    captions.update({("hyp", i): [p] for i, p in enumerate(predictions)})
    tokenized = _ptb_tokenize(captions)
    gts = {i: tokenized[("ref", i)] for i in range(len(predictions))}
    res = {i: tokenized[("hyp", i)] for i in range(len(predictions))}

    meteor = meteor_score(gts, res)
    rouge_score, _ = Rouge().compute_score(gts, res)
    cider_score, _ = Cider().compute_score(gts, res)
    return {"METEOR": meteor, "ROUGE_L": rouge_score, "CIDEr": cider_score}


def compute_e2e_metrics(
    references: Sequence[Sequence[str]], predictions: Sequence[str]
) -> dict[str, float]:
    """Score system outputs with the five E2E NLG Challenge metrics.

    Args:
        references: one list of reference strings per instance (at least one each; the number
            may vary between instances), raw text.
        predictions: one system output string per instance, raw text.

    Returns:
        ``{"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}`` as Python floats on the official
        script's scale: BLEU, METEOR and ROUGE_L are fractions in [0, 1] (the paper's tables
        show them x100), NIST and CIDEr are raw.

    Raises:
        ValueError: different numbers of instances, no instance, or an instance without
            references.
        TypeError: a bare string where a list is expected.
        RuntimeError: Java is not installed, or the METEOR jar failed.

    Source: e2e-metrics ``measure_scores.py -p``; METEOR/ROUGE-L/CIDEr via ``pycocoevalcap``.
    """
    scores = {
        "BLEU": mteval.bleu(references, predictions),  # also validates the inputs
        "NIST": mteval.nist(references, predictions),
    }
    require_java("METEOR and the PTB tokenizer (pycocoevalcap) need a Java runtime (8 or newer)")
    scores.update(_coco_scores(references, predictions))
    return {name: float(scores[name]) for name in METRIC_NAMES}


def format_scores(scores: dict[str, float]) -> str:
    """Render scores exactly as ``measure_scores.py`` prints them (without ``-t``).

    Args:
        scores: a mapping with at least the keys of :data:`METRIC_NAMES`.

    Returns:
        ``"SCORES:\\n==============\\nBLEU: 0.xxxx\\n...CIDEr: x.xxxx\\n\\n"`` (``%.4f`` each).
    """
    lines = ["SCORES:", "=============="]
    lines += [f"{name}: {scores[name]:.4f}" for name in METRIC_NAMES]
    return "\n".join(lines) + "\n\n"


def load_metric(**kwargs: Any) -> evaluate.EvaluationModule:
    """Load the E2E metrics as a Hugging Face ``evaluate`` module, offline.

    Args:
        **kwargs: forwarded to ``evaluate.load`` (e.g. ``experiment_id``, ``keep_in_memory``).

    Returns:
        The module at :data:`METRIC_MODULE_DIR`; ``compute(predictions=[str],
        references=[[str]] or [str])`` returns the dict of :func:`compute_e2e_metrics`.
    """
    import evaluate  # deferred: importing evaluate/datasets costs seconds the CLI does not need

    return evaluate.load(str(METRIC_MODULE_DIR), **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m experiments.e2e.metrics REFS PREDS``; errors exit 1 with one line."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.e2e.metrics",
        description="E2E NLG Challenge scores, as printed by e2e-metrics' measure_scores.py -p.",
    )
    parser.add_argument("refs", help="references: one per line, instances separated by a blank")
    parser.add_argument("preds", help="system outputs: one per line")
    args = parser.parse_args(argv)
    try:
        references = read_references(args.refs)
        predictions = read_predictions(args.preds)
        if len(references) != len(predictions):
            raise ValueError(
                f"{args.preds} has {len(predictions)} outputs but {args.refs} has "
                f"{len(references)} reference groups"
            )
        scores = compute_e2e_metrics(references, predictions)
    except (OSError, ValueError, RuntimeError) as err:
        sys.exit(f"{parser.prog}: error: {err}")
    sys.stdout.write(format_scores(scores))


if __name__ == "__main__":
    main()
