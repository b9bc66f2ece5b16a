"""Paired-bootstrap confidence intervals on a difference between two methods, and verdicts.

Scheme (hierarchical paired bootstrap). Method A (e.g. LoRA) and reference B (e.g. FT) are
paired by seed (same seed = same training-data subsample) and, within a seed, by dev example
(aligned on the example's index in the dev file). Each replicate draws the paired seeds with
replacement, then, within each drawn seed, draws the examples with replacement -- the same
draw for A and B -- computes ``metric(A) - metric(B)`` per drawn seed and averages over the
drawn seeds. The interval is the percentile interval of the replicates; the point estimate is
the mean over seeds of the difference on all examples. With one seed this is the ordinary
paired bootstrap over examples. Sources: the bootstrap and its percentile interval, Efron &
Tibshirani (1993); pairing over examples as in Koehn (2004) for BLEU-style metrics; seeds
resampled first as in a hierarchical (two-stage) bootstrap.

Degenerate resamples: F1 with no predicted and no true positive is 0, and MCC of a constant
prediction (or label) is 0, as in sklearn; Pearson/Spearman of a constant sample is undefined
(NaN) and such replicates are dropped before taking percentiles (all dropped: NaN bounds).

Inside the loop the metrics are vectorised numpy over a (replicates, examples) array; each
equals sklearn/scipy on the full data (tests/test_stats.py). Everything is drawn from
``numpy.random.default_rng(seed)`` in a fixed order, so the same inputs give identical floats.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SCHEME = (
    "95% percentile intervals from a paired hierarchical bootstrap: each replicate resamples "
    "seeds, then examples within each seed (the same examples for both methods), and averages "
    "the per-seed differences."
)
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # (pred, label, index), each shape (n,)
_CHUNK = 1 << 21  # index elements per vectorised block, to bound memory


def _accuracy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (p == y).mean(axis=-1)


def _f1(p: np.ndarray, y: np.ndarray) -> np.ndarray:  # F1 of the positive class 1
    tp = ((p == 1) & (y == 1)).sum(axis=-1)
    den = 2 * tp + ((p == 1) & (y != 1)).sum(axis=-1) + ((p != 1) & (y == 1)).sum(axis=-1)
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def _mcc(p: np.ndarray, y: np.ndarray) -> np.ndarray:  # sklearn's multiclass formula
    s = float(p.shape[-1])
    c = (p == y).sum(axis=-1).astype(float)
    lo, hi = min(p.min(), y.min()), max(p.max(), y.max())  # absent classes count 0: harmless
    small = p.dtype.kind in "iu" and y.dtype.kind in "iu" and hi - lo < 64
    classes = np.arange(lo, hi + 1) if small else np.unique(np.concatenate([p.ravel(), y.ravel()]))
    pk = np.stack([(p == k).sum(axis=-1) for k in classes], -1).astype(float)
    tk = np.stack([(y == k).sum(axis=-1) for k in classes], -1).astype(float)
    cov_pp, cov_tt = s * s - (pk * pk).sum(-1), s * s - (tk * tk).sum(-1)
    den = np.sqrt(cov_pp * cov_tt)
    return np.where(den > 0, (c * s - (pk * tk).sum(-1)) / np.where(den > 0, den, 1.0), 0.0)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x.astype(float), y.astype(float)
    xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    const = (x.max(-1) == x.min(-1)) | (y.max(-1) == y.min(-1))
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    r = (xc * yc).sum(-1) / np.where(const, 1.0, den)
    return np.where(const, np.nan, np.clip(r, -1.0, 1.0))


def _rank(x: np.ndarray) -> np.ndarray:
    """Average (1-based) ranks along the last axis of a 2-D array, as scipy.stats.rankdata."""
    order = np.argsort(x, axis=-1, kind="stable")
    xs = np.take_along_axis(x, order, -1)
    new = np.ones(xs.shape, dtype=bool)
    new[:, 1:] = xs[:, 1:] != xs[:, :-1]  # a tie group starts here (always at a row start)
    group = np.cumsum(new.ravel()) - 1
    pos = np.tile(np.arange(1, xs.shape[1] + 1, dtype=float), xs.shape[0])
    avg = (np.bincount(group, pos) / np.bincount(group))[group].reshape(xs.shape)
    ranks = np.empty(xs.shape)
    np.put_along_axis(ranks, order, avg, -1)
    return ranks


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _pearson(_rank(x), _rank(y))


def _nll(nll_sum: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Mean per-token NLL (nats) of the drawn segments: summed NLL over summed tokens."""
    return nll_sum.sum(-1) / tokens.sum(-1)


def _bleu(stats: np.ndarray, _: np.ndarray) -> np.ndarray:
    """Corpus BLEU (fraction) from per-segment rows m_1..m_4, c_1..c_4, r, shape (..., n, 9),
    as ``experiments.e2e.mteval.bleu_from_stats`` on the summed rows (same floors)."""
    s = stats.sum(-2).astype(float)
    logp = np.log(np.maximum(s[..., :4], 1e-15) / np.maximum(s[..., 4:8], 1e-9)).sum(-1)
    c, r = s[..., 4], s[..., 8]
    brevity = np.where(c <= r, np.exp(1.0 - r / np.where(c > 0, c, 1.0)), 1.0)
    return brevity * np.exp(logp / 4)


_BATCHED = {"accuracy": _accuracy, "f1": _f1, "matthews_correlation": _mcc,
            "mcc": _mcc, "pearson": _pearson, "spearman": _spearman,
            "nll": _nll, "bleu": _bleu}  # fmt: skip


def _scalar(batched: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(pred: np.ndarray, label: np.ndarray) -> float:
        return float(batched(np.asarray(pred)[None], np.asarray(label)[None])[0])

    metric.__name__ = batched.__name__.lstrip("_")
    return metric


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    name: _scalar(fn) for name, fn in _BATCHED.items()
}  # metric(pred, label) -> float in natural units (not x100)
# Per example, "nll" takes pred = summed reference NLL (nats) and label = token count, and
# gives nats per token (use scale=1); "bleu" takes pred = the (n, 9) rows of
# experiments.e2e.mteval.bleu_stats and any label (e.g. zeros), and gives BLEU (scale=100).
_BY_FN = {METRICS[name]: _BATCHED[name] for name in _BATCHED}


@dataclass(frozen=True)
class Interval:
    """A difference A - B in units of ``scale`` (points for 100) with its bootstrap bounds."""

    diff: float
    low: float
    high: float
    n_seeds: int  # paired seeds used
    n_examples: int  # aligned examples per seed (fewest over seeds); summed over tasks

    def cell(self, digits: int = 1) -> str:
        """Table cell, e.g. ``+1.2 [-0.3, +2.6]``; an undefined bound prints as ``n/a``."""
        f = lambda v: "n/a" if np.isnan(v) else f"{v:+.{digits}f}"  # noqa: E731
        return f"{f(self.diff)} [{f(self.low)}, {f(self.high)}]"


def _align(a: Mapping[int, Arrays], b: Mapping[int, Arrays]) -> list[tuple[np.ndarray, ...]]:
    """Per common seed (ascending) ``(pred_a, pred_b, label)`` on the common indices, sorted."""
    out = []
    for seed in sorted(set(a) & set(b)):
        (pa, ya, ia), (pb, yb, ib) = ([np.asarray(v) for v in x[seed]] for x in (a, b))
        for p, y, i in ((pa, ya, ia), (pb, yb, ib)):
            if not (p.ndim in (1, 2) and y.ndim == i.ndim == 1 and len(p) == len(y) == len(i)):
                raise ValueError(
                    f"seed {seed}: pred (n,) or (n, k), label and index (n,) must share n"
                )
            if len(np.unique(i)) != len(i):
                raise ValueError(f"seed {seed}: duplicate example indices")
        _, ja, jb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
        if len(ja) == 0:
            continue  # no common example: the seed is left out
        if not np.array_equal(ya[ja], yb[jb]):
            raise ValueError(f"seed {seed}: labels of A and B disagree on a common index")
        out.append((pa[ja], pb[jb], ya[ja]))
    return out


def _resolve(metric: str | Callable) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The batched form (rows = resamples) of a METRICS name or callable."""
    if isinstance(metric, str):
        if metric not in _BATCHED:
            raise ValueError(f"unknown metric {metric!r}; known: {sorted(_BATCHED)}")
        return _BATCHED[metric]
    return _BY_FN.get(metric) or (
        lambda p, y: np.array([metric(p[i], y[i]) for i in range(len(p))], float)
    )


def _replicates(seeds, fn, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per replicate, the mean over drawn seeds of the per-seed difference on drawn examples."""
    pos = np.minimum((u[:, : len(seeds)] * len(seeds)).astype(int), len(seeds) - 1)
    d = np.empty(pos.shape)
    for j, (pa, pb, y) in enumerate(seeds):
        n, rows = len(y), np.flatnonzero(pos == j)  # (replicate, slot) pairs that drew seed j
        step = max(1, _CHUNK // (n * max(1, pa[0].size)))  # elements of pa[idx] per block
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            idx = rng.integers(0, n, size=(len(block), n))
            d.flat[block] = fn(pa[idx], y[idx]) - fn(pb[idx], y[idx])
    return d.mean(axis=1)


def paired_bootstrap_average(
    tasks: Sequence[tuple[Mapping[int, Arrays], Mapping[int, Arrays], str | Callable]],
    *, scale: float = 100.0, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
) -> Interval | None:  # fmt: skip
    """Interval on the average over tasks of A - B (see :func:`paired_bootstrap`).

    Each replicate is the per-task replicate averaged over tasks; the seed draw is shared
    across tasks (seeds are paired across tasks too: slot j of every task draws the same
    uniform, so tasks with the same seeds draw the same seeds). The point estimate is the
    mean of the per-task estimates; ``n_seeds`` is the fewest over tasks, ``n_examples`` the
    total. None if any task has no common seed or example. Raises ValueError as
    :func:`paired_bootstrap` does, or for an unknown metric name or a bad setting.
    """
    if not (0 < confidence < 1 and n_resamples >= 1):
        raise ValueError("need 0 < confidence < 1 and n_resamples >= 1")
    fns = [_resolve(metric) for *_, metric in tasks]
    aligned = [_align(a, b) for a, b, _ in tasks]
    if not tasks or not all(aligned):
        return None
    rng = np.random.default_rng(seed)
    u = rng.random((n_resamples, max(map(len, aligned))))
    reps, diffs = np.zeros(n_resamples), []
    for seeds, fn in zip(aligned, fns, strict=True):
        reps += _replicates(seeds, fn, u, rng) * scale / len(tasks)
        diffs.append(np.mean([fn(pa[None], y[None])[0] - fn(pb[None], y[None])[0]
                              for pa, pb, y in seeds]))  # fmt: skip
    reps = reps[~np.isnan(reps)]
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(reps, [alpha, 100 - alpha]) if len(reps) else (np.nan, np.nan)
    n_examples = sum(min(len(y) for *_, y in seeds) for seeds in aligned)
    return Interval(float(np.mean(diffs) * scale), float(low), float(high),
                    min(map(len, aligned)), n_examples)  # fmt: skip


def paired_bootstrap(
    a: Mapping[int, Arrays], b: Mapping[int, Arrays], metric: str | Callable,
    *, scale: float = 100.0, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
) -> Interval | None:  # fmt: skip
    """Interval on ``metric(A) - metric(B)`` by the hierarchical paired bootstrap (module doc).

    ``a`` and ``b`` map seed -> ``(pred, label, index)``: arrays of one length n (ints for
    classes, floats for regression; pred may be (n, k) per-example statistics, as for
    ``"bleu"``), ``index`` the example's (unique) position in the dev file.
    Only common seeds and, per seed, common indices are used (a seed sharing none is dropped). ``metric`` is a METRICS name or a
    callable ``metric(pred, label) -> float`` (a non-METRICS callable runs once per resample,
    slowly). Results are in ``scale`` units (100: points). None without a common seed or
    example. Raises ValueError naming the seed if A's and B's labels disagree on a common
    index, or if a seed's arrays are malformed (lengths, duplicate indices).
    """
    return paired_bootstrap_average([(a, b, metric)], scale=scale, n_resamples=n_resamples,
                                    confidence=confidence, seed=seed)  # fmt: skip


CLAIM_KINDS = ("matches", "at_least", "at_most")


@dataclass(frozen=True)
class Claim:
    """A paper claim about A - B: ``matches`` (|A-B| <= tolerance), ``at_least`` (A >= B-tol)
    or ``at_most`` (A <= B+tol, for lower-is-better metrics such as NLL).

    ``tolerance`` is in the table's units (e.g. 1.0 point). Raises ValueError otherwise.
    """

    text: str
    kind: str
    tolerance: float

    def __post_init__(self) -> None:
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"Claim.kind must be one of {CLAIM_KINDS}, not {self.kind!r}")
        if not (isinstance(self.tolerance, numbers.Real) and 0 <= self.tolerance < np.inf):
            raise ValueError(f"Claim.tolerance must be finite and >= 0, not {self.tolerance!r}")


def verdict(interval: Interval | None, claim: Claim) -> str:
    """``agrees`` / ``contradicts`` / ``inconclusive`` for the claim; ``""`` without interval.

    matches: agrees if [low, high] lies in [-tol, +tol], contradicts if it lies entirely
    outside it. at_least: agrees if low >= -tol, contradicts if high < -tol. at_most: agrees
    if high <= tol, contradicts if low > tol. NaN bounds give ``inconclusive``.
    """
    if interval is None:
        return ""
    lo, hi, tol = interval.low, interval.high, claim.tolerance
    if claim.kind == "matches":
        agrees, contradicts = -tol <= lo and hi <= tol, hi < -tol or lo > tol
    elif claim.kind == "at_least":
        agrees, contradicts = lo >= -tol, hi < -tol
    else:
        agrees, contradicts = hi <= tol, lo > tol
    return "agrees" if agrees else "contradicts" if contradicts else "inconclusive"
