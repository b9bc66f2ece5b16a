"""Corpus-level BLEU and NIST as scored by the E2E NLG Challenge evaluation.

The E2E NLG results in the LoRA paper (Hu et al. 2021, Sec. 5.5 and Table 3) are produced by
``measure_scores.py -p`` from ``tuetschek/e2e-metrics``, whose BLEU and NIST come from its
Python port of NIST ``mteval-v13a.pl`` (``metrics/pymteval.py``). This module is an independent
implementation of the same definitions:

* tokenization: the ``NormalizeText`` rules of mteval-v13a (basic, "western" tokenization);
* case-insensitive matching (tokens are lowercased before counting n-grams);
* multiple references per segment, which may differ in number between segments;
* corpus-level statistics (n-gram counts are summed over all segments before the ratios).

Where that port deviates from the Perl script, this module follows the port, because it is what
the published E2E numbers were computed with:

* a hypothesis with fewer than ``n`` tokens adds ``len - n + 1`` (a negative number) to the
  corpus count of candidate n-grams instead of 0;
* an empty string tokenizes to one empty token, so it has length 1;
* NIST information weights come from n-gram counts over *all* references of *all* segments,
  and the NIST brevity penalty uses the per-segment mean reference length, whatever the number
  of references per segment.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "BLEU_MAX_ORDER",
    "NIST_BETA",
    "NIST_MAX_ORDER",
    "bleu",
    "bleu_from_stats",
    "bleu_stats",
    "nist",
    "tokenize",
]

BLEU_MAX_ORDER = 4
NIST_MAX_ORDER = 5
# mteval-v13a: the NIST brevity penalty is 0.5 when the output is 2/3 of the reference length.
NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2

# Floors applied by the E2E scorer so that BLEU stays defined when a precision is 0/0 or 0/x.
_BLEU_MIN_MATCHES = 1e-15
_BLEU_MIN_CANDIDATES = 1e-9

# mteval-v13a NormalizeText, in order. The first class is the Perl one verbatim: the ASCII
# symbols {|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ and /, i.e. everything but ' - . , digits, letters.
_SGML_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))
_SPLIT_RULES = (
    (re.compile(r"([{-~\[-` -&(-+:-@/])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),  # period/comma not preceded by a digit
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),  # period/comma not followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
)
_WHITESPACE = re.compile(r"\s+")

Ngram = tuple[str, ...]


def tokenize(text: str) -> list[str]:
    """Split one segment into tokens with mteval-v13a's basic (western) normalization.

    Args:
        text: a raw sentence.

    Returns:
        The tokens, case preserved. Punctuation is split off except apostrophes, hyphens
        (unless after a digit), and periods/commas between digits (``"1,000.50"`` stays one
        token). An empty or blank string gives ``[""]`` (one empty token), as in the E2E port.

    Source: ``NormalizeText`` in NIST mteval-v13a.pl.
    """
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in _SGML_ENTITIES:
        text = text.replace(entity, char)
    text = f" {text} "
    for pattern, replacement in _SPLIT_RULES:
        text = pattern.sub(replacement, text)
    return _WHITESPACE.sub(" ", text).strip().split(" ")


def _lowercased(tokens: list[str]) -> list[str]:
    # After tokenizing, as the E2E port does: "&QUOT;" must not become a quote character.
    return [t.lower() for t in tokens]


def _ngrams(tokens: Sequence[str], n: int) -> Counter[Ngram]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _clipped(hyp: Counter[Ngram], refs: Sequence[Counter[Ngram]]) -> Counter[Ngram]:
    """Hypothesis n-gram counts clipped by their maximum count in any single reference."""
    return Counter({g: min(c, max(ref[g] for ref in refs)) for g, c in hyp.items()})


def _tokenized_corpus(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str]
) -> list[tuple[list[str], list[list[str]]]]:
    if isinstance(hypotheses, str):
        raise TypeError("hypotheses must be a sequence of strings, not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(references)} reference groups")
    if not hypotheses:
        raise ValueError("cannot score an empty corpus")
    corpus = []
    for i, (refs, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        if isinstance(refs, str):
            raise TypeError(f"references[{i}] must be a list of strings, not a string")
        if not refs:
            raise ValueError(f"segment {i} has no reference")
        corpus.append((_lowercased(tokenize(hyp)), [_lowercased(tokenize(r)) for r in refs]))
    return corpus


def bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> float:
    """Corpus BLEU-4 of ``hypotheses`` against multiple references, E2E-challenge style.

    BLEU = BP * exp(mean_n log(m_n / c_n)) for n = 1..4, where m_n sums over segments the
    hypothesis n-gram counts clipped by the n-gram's maximum count in a single reference, and
    c_n sums ``len(hyp) - n + 1``. m_n is floored at 1e-15 and c_n at 1e-9, so a corpus without
    any matching n-gram scores about 1e-15 instead of failing. BP = exp(1 - r/c) if c <= r else 1,
    with c the hypothesis token count and r the summed length of, per segment, the reference
    closest in length to the hypothesis (ties go to the shorter one).

    Args:
        references: one list of reference strings per segment (at least one each; the number
            may vary between segments).
        hypotheses: one system output string per segment.

    Returns:
        BLEU as a fraction (not x100), matching case-insensitively. It lies in [0, 1] unless
        hypotheses shorter than 4 tokens drive some c_n to 0 or below (see module docstring).

    Raises:
        ValueError: different numbers of segments, an empty corpus, or a segment without
            references.
        TypeError: a bare string where a list is expected.

    Source: Papineni et al. 2002; mteval-v13a.pl as ported in e2e-metrics ``metrics/pymteval.py``.
    """
    return bleu_from_stats(
        [sum(col) for col in zip(*bleu_stats(references, hypotheses), strict=True)]
    )


def bleu_stats(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> list[list[int]]:
    """Per-segment sufficient statistics of :func:`bleu`, for resampling segments.

    Summing the rows over any set of segments and passing the sums to
    :func:`bleu_from_stats` gives that set's corpus BLEU, so a bootstrap over segments
    (experiments.report.stats, metric ``"bleu"``) needs only these rows.

    Args and raises: as :func:`bleu`.

    Returns:
        One row of ``2 * BLEU_MAX_ORDER + 1`` ints per segment: the clipped n-gram matches
        m_1..m_4, the candidate counts c_1..c_4 (``len(hyp) - n + 1``, possibly negative),
        and the length of the reference closest to the hypothesis.
    """
    rows = []
    for hyp, refs in _tokenized_corpus(references, hypotheses):
        matches, candidates = [], []
        for n in range(1, BLEU_MAX_ORDER + 1):
            clipped = _clipped(_ngrams(hyp, n), [_ngrams(ref, n) for ref in refs])
            matches.append(sum(clipped.values()))
            candidates.append(len(hyp) - n + 1)
        closest = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        rows.append([*matches, *candidates, closest])
    return rows


def bleu_from_stats(stats: Sequence[float]) -> float:
    """Corpus BLEU (a fraction) from the column sums of :func:`bleu_stats` rows.

    Args:
        stats: ``2 * BLEU_MAX_ORDER + 1`` summed statistics, m_1..m_4, c_1..c_4, r.

    Raises:
        ValueError: ``stats`` has the wrong length.
    """
    if len(stats) != 2 * BLEU_MAX_ORDER + 1:
        raise ValueError(f"need {2 * BLEU_MAX_ORDER + 1} BLEU statistics, got {len(stats)}")
    matches, candidates = stats[:BLEU_MAX_ORDER], stats[BLEU_MAX_ORDER : 2 * BLEU_MAX_ORDER]
    log_precision = sum(
        math.log(max(m, _BLEU_MIN_MATCHES) / max(c, _BLEU_MIN_CANDIDATES))
        for m, c in zip(matches, candidates, strict=True)
    )
    hyp_len, closest_ref_len = candidates[0], stats[-1]
    brevity = math.exp(1.0 - closest_ref_len / hyp_len) if hyp_len <= closest_ref_len else 1.0
    return brevity * math.exp(log_precision / BLEU_MAX_ORDER)


def nist(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> float:
    """Corpus NIST-5 of ``hypotheses`` against multiple references, E2E-challenge style.

    NIST = BP * sum_n (sum of info(g) * k_g over matched hypothesis n-grams g) / c_n for
    n = 1..5, where k_g is the hypothesis count of g clipped by its maximum count in a single
    reference of that segment, c_n sums ``len(hyp) - n + 1`` over segments, and
    info(w_1..w_n) = log2(count(w_1..w_{n-1}) / count(w_1..w_n)) with counts taken over every
    reference of every segment (the empty prefix counts all reference tokens).
    BP = exp(-beta * ln(L_sys / L_ref)^2) when L_sys < L_ref, else 1, with beta = -ln(0.5) /
    ln(1.5)^2, L_sys the hypothesis token count and L_ref the sum over segments of the mean
    reference length.

    Args:
        references: one list of reference strings per segment (at least one each; the number
            may vary between segments).
        hypotheses: one system output string per segment.

    Returns:
        NIST in information units (bits per n-gram, summed over orders; not bounded by 1),
        matching is case-insensitive.

    Raises:
        ValueError: different numbers of segments, an empty corpus, a segment without
            references, or a corpus whose count of candidate n-grams c_n is 0 for some order
            (the E2E script fails with ZeroDivisionError there).
        TypeError: a bare string where a list is expected.

    Source: Doddington 2002; mteval-v13a.pl as ported in e2e-metrics ``metrics/pymteval.py``.
    """
    corpus = _tokenized_corpus(references, hypotheses)
    # ref_counts[n] counts n-grams over all references; order 0 holds the total token count.
    ref_counts: list[Counter[Ngram]] = [Counter() for _ in range(NIST_MAX_ORDER + 1)]
    matched: list[Counter[Ngram]] = [Counter() for _ in range(NIST_MAX_ORDER + 1)]
    candidates = [0] * (NIST_MAX_ORDER + 1)
    ref_len = 0.0
    for hyp, refs in corpus:
        for n in range(1, NIST_MAX_ORDER + 1):
            ref_ngrams = [_ngrams(ref, n) for ref in refs]
            matched[n] += _clipped(_ngrams(hyp, n), ref_ngrams)
            candidates[n] += len(hyp) - n + 1
            for counts in ref_ngrams:
                ref_counts[n].update(counts)
        ref_counts[0][()] += sum(len(r) for r in refs)
        ref_len += sum(len(r) for r in refs) / len(refs)

    score = 0.0
    for n in range(1, NIST_MAX_ORDER + 1):
        if candidates[n] == 0:
            raise ValueError(
                f"NIST is undefined: the corpus count of candidate {n}-grams, the sum of "
                f"(hypothesis length - {n - 1}), is 0"
            )
        info = sum(
            k * math.log2(ref_counts[n - 1][g[:-1]] / ref_counts[n][g])
            for g, k in matched[n].items()
        )
        score += info / candidates[n]
    ratio = candidates[1] / ref_len  # hypothesis token count over summed mean reference length
    brevity = math.exp(-NIST_BETA * math.log(ratio) ** 2) if ratio < 1 else 1.0
    return brevity * score
