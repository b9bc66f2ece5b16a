"""BLEU, METEOR and TER for WebNLG and DART on the scale of the paper's Tables 13 and 14.

The LoRA repository scores both datasets with the WebNLG challenge's ``GenerationEval``
(``eval.py -nr 6 -m bleu,meteor,ter``) on files written by ``gpt2_decode.py --tokenize
--lower --ref_num 6`` (reference §3.7 item 4). We reproduce that pipeline:

1. :func:`postprocess` (``--lower --tokenize``): lowercase, then split off every non-word
   character (``re.split(r"(\\W)")``), on outputs and references alike;
2. at most :data:`REF_NUM` (6) references per input, the first ones in file order
   (``gpt2_decode.py`` pads shorter lists with the first reference, which changes none
   of the three scores);
3. **BLEU** (x100, corpus level): ``multi-bleu-detok.perl``, matched by sacrebleu's
   ``corpus_bleu`` with the ``13a`` tokenizer, no smoothing, case kept (the text is already
   lowercased), closest reference length;
4. **METEOR** (fraction): METEOR 1.5 ``-l en -norm`` over all references, the system-level
   score, via ``pycocoevalcap``'s bundled jar (the same jar and flags as GenerationEval);
5. **TER** (fraction): GenerationEval's ``ter_score``: per output, the lowest TER against
   each reference on its own (edits / reference words), averaged over outputs. The edit
   distance is sacrebleu's Tercom port rather than ``pyter``; both count shifts as one
   edit, and agree on ordinary sentences.

Not reproduced: GenerationEval's extra NLTK ``word_tokenize`` pass before METEOR and TER
(after step 1 it only rewrites double quotes as ```` `` ''``), and the empty last line its
reader takes from the files' final newline, which adds one segment scored TER 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from experiments.core.nlg_metrics import meteor_score, require_java

REF_NUM = 6
METRIC_NAMES = ("BLEU", "METEOR", "TER")
_NON_WORD = re.compile(r"(\W)")


def postprocess(text: str) -> str:
    """``gpt2_decode.py --lower --tokenize``: ``"Aarhus's airport."`` -> ``"aarhus ' s airport ."``.

    Source: ``post_process`` / ``stardard_tokenize`` in microsoft/LoRA
    ``examples/NLG/src/gpt2_decode.py``.
    """
    return " ".join(" ".join(_NON_WORD.split(text.lower())).split())


def _check(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> None:
    if isinstance(predictions, str) or any(isinstance(r, str) for r in references):
        raise TypeError("expected a list of outputs and a list of reference lists")
    if len(references) != len(predictions):
        raise ValueError(
            f"{len(predictions)} outputs but {len(references)} reference lists; need one each"
        )
    if not predictions:
        raise ValueError("no outputs to score")
    for i, refs in enumerate(references):
        if not any(r.strip() for r in refs):
            raise ValueError(f"input {i} has no non-empty reference")


def _ref_lists(references: Sequence[Sequence[str]], ref_num: int) -> list[list[str]]:
    return [[r for r in refs if r.strip()][:ref_num] for refs in references]


def bleu(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of ``multi-bleu-detok.perl``: 13a tokenization, case-sensitive,
    no smoothing, brevity penalty against the closest reference length.

    Args:
        references: one list of references per output (the number may vary).
        predictions: one output per input.

    Raises:
        ValueError, TypeError: see :func:`score`.
    """
    import sacrebleu

    _check(references, predictions)
    width = max(map(len, references))
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    return float(
        sacrebleu.corpus_bleu(
            list(predictions), streams, tokenize="13a", smooth_method="none", lowercase=False
        ).score
    )


def ter(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """GenerationEval's TER (a fraction, lower is better): the mean over outputs of the
    lowest per-reference TER (shift-aware edits / reference words). An output against an
    empty reference scores 1; an empty output scores 1 against any reference.

    Tokens are whitespace-separated (the text is already :func:`postprocess`-ed).

    Raises:
        ValueError, TypeError: see :func:`score`.
    """
    from sacrebleu.metrics import TER

    _check(references, predictions)
    metric = TER(case_sensitive=True)
    total = 0.0
    for hyp, refs in zip(predictions, references, strict=True):
        total += min(
            metric.sentence_score(hyp, [ref]).score / 100 if ref.strip() else 1.0 for ref in refs
        )
    return total / len(predictions)


def meteor(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """System-level METEOR 1.5 (a fraction) with ``-l en -norm``, all references per output:
    the final score of ``java -jar meteor-1.5.jar hyp ref -l en -norm -r N``.

    Raises:
        ValueError, TypeError: see :func:`score`.
        RuntimeError: Java is missing or the jar failed.
    """
    _check(references, predictions)
    # the stdio protocol is line- and '|||'-based: keep every text on one line
    gts = {i: [" ".join(r.split()) for r in refs if r.strip()] for i, refs in enumerate(references)}
    res = {i: [" ".join(p.split())] for i, p in enumerate(predictions)}
    require_java("METEOR 1.5 (pycocoevalcap) needs Java 8+")
    return meteor_score(gts, res)


def score(
    references: Sequence[Sequence[str]],
    predictions: Sequence[str],
    *,
    ref_num: int = REF_NUM,
    process: bool = True,
) -> dict[str, float]:
    """BLEU (0-100), METEOR and TER (fractions) as GenerationEval prints them.

    Args:
        references: one list of raw references per input (empty strings are ignored).
        predictions: one raw output per input.
        ref_num: keep the first ``ref_num`` references of each input (``--ref_num 6``).
        process: apply :func:`postprocess` to both sides first (``--tokenize --lower``).

    Returns:
        ``{"BLEU", "METEOR", "TER"}``; the paper's Tables 13/14 show BLEU x100 and METEOR/TER
        as fractions, as here.

    Raises:
        ValueError: a different number of outputs and reference lists, no output, or an
            input without a non-empty reference.
        TypeError: a bare string where a list is expected.
        RuntimeError: Java is missing or METEOR failed.

    Source: ``eval.py`` of the WebNLG challenge's GenerationEval, as run by microsoft/LoRA.
    """
    _check(references, predictions)
    refs = _ref_lists(references, ref_num)
    hyps = list(predictions)
    if process:
        refs = [[postprocess(r) for r in group] for group in refs]
        hyps = [postprocess(p) for p in hyps]
    return {"BLEU": bleu(refs, hyps), "METEOR": meteor(refs, hyps), "TER": ter(refs, hyps)}


def score_subsets(
    references: Sequence[Sequence[str]],
    predictions: Sequence[str],
    subsets: Mapping[str, Sequence[int]],
    **kwargs,
) -> dict[str, dict[str, float]]:
    """:func:`score` on each named subset of inputs, e.g. Table 14's unseen/seen/all.

    Args:
        subsets: name -> indices into ``references``/``predictions``
            (:func:`experiments.webnlg.data.test_subsets`); an empty subset is left out.
        **kwargs: forwarded to :func:`score`.

    Raises:
        see :func:`score`.
    """
    return {
        name: score([references[i] for i in idx], [predictions[i] for i in idx], **kwargs)
        for name, idx in subsets.items()
        if idx
    }
