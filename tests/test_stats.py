"""experiments/report/stats.py: vectorised metrics, the paired bootstrap, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from experiments.report.stats import (
    _BATCHED,
    METRICS,
    SCHEME,
    Claim,
    Interval,
    _rank,
    paired_bootstrap,
    paired_bootstrap_average,
    verdict,
)


def _run(pred, label, index=None):
    return (np.asarray(pred), np.asarray(label), np.arange(len(label)) if index is None else index)


def _classes(rng, n, k=2):
    return rng.integers(0, k, n), rng.integers(0, k, n)


@pytest.mark.parametrize("k", [2, 3])
def test_classification_metrics_equal_sklearn(k):
    rng = np.random.default_rng(k)
    for n in (1, 7, 200):
        p, y = _classes(rng, n, k)
        assert METRICS["accuracy"](p, y) == pytest.approx(accuracy_score(y, p), abs=1e-12)
        assert METRICS["mcc"](p, y) == pytest.approx(matthews_corrcoef(y, p), abs=1e-12)
        assert METRICS["matthews_correlation"](p, y) == METRICS["mcc"](p, y)
        if k == 2:
            want = f1_score(y, p, zero_division=0)
            assert METRICS["f1"](p, y) == pytest.approx(want, abs=1e-12)
            pm, ym = 2 * p - 1, 2 * y - 1  # classes -1 / 1, and as booleans
            assert METRICS["mcc"](pm, ym) == pytest.approx(matthews_corrcoef(ym, pm), abs=1e-12)
            assert METRICS["f1"](pm, ym) == pytest.approx(f1_score(ym, pm, zero_division=0))
            pb, yb = p.astype(bool), y.astype(bool)
            assert METRICS["mcc"](pb, yb) == pytest.approx(matthews_corrcoef(yb, pb), abs=1e-12)


def test_degenerate_classification_matches_sklearn():
    y = np.array([0, 1, 1, 0, 1])
    for p in (np.zeros(5, int), np.ones(5, int)):  # constant predictions
        assert METRICS["mcc"](p, y) == matthews_corrcoef(y, p) == 0.0
        assert METRICS["f1"](p, y) == pytest.approx(f1_score(y, p, zero_division=0))
    assert METRICS["f1"](np.zeros(3, int), np.zeros(3, int)) == 0.0  # no positives at all


def test_correlations_equal_scipy():
    rng = np.random.default_rng(1)
    for n in (3, 50, 500):
        y = rng.normal(size=n)
        p = y + rng.normal(size=n)
        assert METRICS["pearson"](p, y) == pytest.approx(sps.pearsonr(p, y)[0], abs=1e-12)
        assert METRICS["spearman"](p, y) == pytest.approx(sps.spearmanr(p, y)[0], abs=1e-12)
        pt, yt = np.round(p), np.round(y * 2) / 2  # heavy ties
        assert METRICS["spearman"](pt, yt) == pytest.approx(sps.spearmanr(pt, yt)[0], abs=1e-12)
    assert np.isnan(METRICS["pearson"](np.full(4, 0.1), np.arange(4.0)))
    assert np.isnan(METRICS["spearman"](np.arange(4.0), np.full(4, 3.0)))


def test_batched_rows_equal_per_row():
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=(6, 30)), 1)
    np.testing.assert_array_equal(_rank(x), sps.rankdata(x, axis=1))
    p, y = _classes(rng, (6, 30))
    for name, fn in _BATCHED.items():
        if name in ("nll", "bleu"):  # per-segment statistics, checked below
            continue
        want = [METRICS[name](p[i], y[i]) for i in range(6)]
        np.testing.assert_allclose(fn(p, y), want, atol=1e-12, equal_nan=True)
    stats, tokens = rng.integers(1, 9, size=(6, 30, 9)), rng.integers(1, 9, size=(6, 30))
    for name, pred in (("nll", tokens * 1.5 + rng.random((6, 30))), ("bleu", stats)):
        want = [METRICS[name](pred[i], tokens[i]) for i in range(6)]
        np.testing.assert_allclose(_BATCHED[name](pred, tokens), want, rtol=1e-12)


def test_identical_predictions_give_exactly_zero():
    y = np.array([0, 1, 1, 0])
    a = {0: _run([0, 1, 0, 0], y)}
    for metric in ("accuracy", "f1", "mcc"):
        iv = paired_bootstrap(a, a, metric, n_resamples=500)
        assert (iv.diff, iv.low, iv.high, iv.n_seeds, iv.n_examples) == (0.0, 0.0, 0.0, 1, 4)
        assert verdict(iv, Claim("LoRA matches FT", "matches", 1.0)) == "agrees"
        assert iv.cell() == "+0.0 [+0.0, +0.0]"


def test_all_right_against_all_wrong():
    y = np.array([0, 1, 1, 0])
    iv = paired_bootstrap({3: _run(y, y)}, {3: _run(1 - y, y)}, "accuracy", n_resamples=500)
    assert (iv.diff, iv.low, iv.high) == (100.0, 100.0, 100.0)
    assert verdict(iv, Claim("LoRA matches FT", "matches", 1.0)) == "contradicts"
    assert verdict(iv, Claim("LoRA at least FT", "at_least", 1.0)) == "agrees"
    assert iv.cell(2) == "+100.00 [+100.00, +100.00]"
    assert paired_bootstrap({3: _run(y, y)}, {3: _run(1 - y, y)}, "accuracy", scale=1).high == 1


def test_hand_computed_point_estimate_over_seeds():
    y = np.array([0, 1, 1, 0])
    a = {0: _run([0, 1, 1, 0], y), 1: _run([0, 1, 1, 1], y)}  # accuracy 1.0 and 0.75
    b = {0: _run([0, 1, 0, 0], y), 1: _run([1, 0, 1, 1], y)}  # accuracy 0.75 and 0.25
    iv = paired_bootstrap(a, b, "accuracy", n_resamples=200)
    assert iv.diff == pytest.approx(100 * ((1 - 0.75) + (0.75 - 0.25)) / 2)
    assert iv.low <= iv.diff <= iv.high


def test_one_seed_accuracy_matches_scipy_bootstrap():
    rng = np.random.default_rng(4)
    n = 400
    y = rng.integers(0, 2, n)
    pa = np.where(rng.random(n) < 0.85, y, 1 - y)
    pb = pa.copy()
    pb[rng.choice(n, 40, replace=False)] ^= 1  # B agrees with A on 90%: pairing matters
    iv = paired_bootstrap({0: _run(pa, y)}, {0: _run(pb, y)}, "accuracy", n_resamples=20000)
    d = 100 * ((pa == y).astype(float) - (pb == y))
    ref = sps.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", random_state=0)
    assert iv.diff == pytest.approx(d.mean())
    assert iv.low == pytest.approx(ref.confidence_interval.low, abs=0.5)
    assert iv.high == pytest.approx(ref.confidence_interval.high, abs=0.5)
    assert 2 < iv.high - iv.low < 20  # a real, non-degenerate width


def _noisy_pair(rng, n=300):
    y = rng.integers(0, 2, n)
    return y, np.where(rng.random(n) < 0.8, y, 1 - y), np.where(rng.random(n) < 0.8, y, 1 - y)


def test_deterministic_and_seed_argument_matters():
    rng = np.random.default_rng(5)
    a, b = {}, {}
    for s in range(3):
        y, pa, pb = _noisy_pair(rng)
        a[s], b[s] = _run(pa, y), _run(pb, y)
    for metric in ("accuracy", "f1", "mcc"):
        first = paired_bootstrap(a, b, metric)
        assert first == paired_bootstrap(a, b, metric)
        assert first.cell() == paired_bootstrap(a, b, metric).cell()
        other = paired_bootstrap(a, b, metric, seed=1)
        assert other.diff == first.diff and (other.low, other.high) != (first.low, first.high)
    assert paired_bootstrap(a, b, METRICS["accuracy"]) == paired_bootstrap(a, b, "accuracy")
    assert paired_bootstrap(a, b, lambda p, y: float(np.mean(p == y)), n_resamples=50) == (
        paired_bootstrap(a, b, "accuracy", n_resamples=50)
    )


def test_seed_pairing_drops_unpaired_seeds():
    rng = np.random.default_rng(6)
    runs = {}
    for s in range(4):
        y, pa, pb = _noisy_pair(rng)
        runs[s] = (_run(pa, y), _run(pb, y))
    a = {s: runs[s][0] for s in (0, 1, 2)}
    b = {s: runs[s][1] for s in (1, 2, 3)}
    iv = paired_bootstrap(a, b, "accuracy")
    assert (iv.n_seeds, iv.n_examples) == (2, 300)
    want = np.mean([METRICS["accuracy"](*runs[s][0][:2]) - METRICS["accuracy"](*runs[s][1][:2])
                    for s in (1, 2)])  # fmt: skip
    assert iv.diff == pytest.approx(100 * want)
    assert iv == paired_bootstrap({s: a[s] for s in (1, 2)}, {s: b[s] for s in (1, 2)}, "accuracy")
    assert paired_bootstrap({0: a[0]}, {3: b[3]}, "accuracy") is None
    assert paired_bootstrap({}, {}, "accuracy") is None
    assert verdict(None, Claim("x", "matches", 1.0)) == ""


def test_index_alignment():
    rng = np.random.default_rng(7)
    y, pa, pb = _noisy_pair(rng, 200)
    base = paired_bootstrap({0: _run(pa, y)}, {0: _run(pb, y)}, "mcc")
    perm = rng.permutation(200)  # B stored in another order
    shuffled = paired_bootstrap({0: _run(pa, y)}, {0: _run(pb[perm], y[perm], perm)}, "mcc")
    assert shuffled == base
    # B also covers examples A lacks; A lacks the first 20: only the common 180 count
    extra = np.arange(200, 230)
    b = _run(np.r_[pb, pb[:30]], np.r_[y, y[:30]], np.r_[np.arange(200), extra])
    part = paired_bootstrap({0: _run(pa[20:], y[20:], np.arange(20, 200))}, {0: b}, "mcc")
    want = METRICS["mcc"](pa[20:], y[20:]) - METRICS["mcc"](pb[20:], y[20:])
    assert part.n_examples == 180 and part.diff == pytest.approx(100 * want)
    disjoint = paired_bootstrap({0: _run(pa, y)}, {0: _run(pb, y, np.arange(200) + 1000)}, "f1")
    assert disjoint is None


def test_label_mismatch_and_bad_input_raise():
    y = np.array([0, 1, 1, 0])
    a = {7: _run(y, y)}
    with pytest.raises(ValueError, match="seed 7"):
        paired_bootstrap(a, {7: _run(y, 1 - y)}, "accuracy")
    with pytest.raises(ValueError, match="seed 7"):
        paired_bootstrap(a, {7: _run(y, y, np.array([0, 0, 1, 2]))}, "accuracy")
    with pytest.raises(ValueError, match="seed 7"):
        paired_bootstrap(a, {7: _run(y[:3], y)}, "accuracy")
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(a, a, "rouge")
    with pytest.raises(ValueError):
        paired_bootstrap(a, a, "accuracy", confidence=1.5)


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(8)
    n, discordant = 400, 40
    y = rng.integers(0, 2, n)
    pb = np.where(rng.random(n) < 0.75, y, 1 - y)

    def runs(shifts):  # per seed, A differs from B on 40 examples, `shift` points net
        a = {}
        for s, shift in enumerate(shifts):
            k = shift * n // 100
            p = pb.copy()
            right, wrong = np.flatnonzero(pb == y), np.flatnonzero(pb != y)
            p[rng.choice(wrong, (discordant + k) // 2, replace=False)] ^= 1
            p[rng.choice(right, (discordant - k) // 2, replace=False)] ^= 1
            assert METRICS["accuracy"](p, y) - METRICS["accuracy"](pb, y) == pytest.approx(k / n)
            a[s] = _run(p, y)
        return a, {s: _run(pb, y) for s in range(len(shifts))}

    spread = paired_bootstrap(*runs([-5, 0, 5]), "accuracy")
    flat = paired_bootstrap(*runs([0, 0, 0]), "accuracy")
    assert spread.diff == pytest.approx(0.0) and flat.diff == pytest.approx(0.0)
    assert spread.high - spread.low > 1.5 * (flat.high - flat.low)


def test_nan_replicates_are_dropped_for_pearson():
    y = np.array([0.0, 0.0, 0.0, 1.0, 2.0])  # many resamples have a constant label
    a = {0: _run(y + np.array([0.1, -0.1, 0.0, 0.2, 0.0]), y)}
    b = {0: _run(y + np.array([0.3, 0.0, -0.2, -0.1, 0.4]), y)}
    iv = paired_bootstrap(a, b, "pearson", n_resamples=300)
    assert np.isfinite([iv.diff, iv.low, iv.high]).all() and iv.low <= iv.high
    const = {0: _run(np.zeros(5), y)}
    nan = paired_bootstrap(const, b, "pearson", n_resamples=50)
    assert np.isnan([nan.diff, nan.low, nan.high]).all() and nan.cell() == "n/a [n/a, n/a]"
    assert verdict(nan, Claim("x", "matches", 1.0)) == "inconclusive"


def test_average_over_tasks():
    rng = np.random.default_rng(9)
    tasks = []
    for metric in ("accuracy", "mcc", "pearson"):
        a, b = {}, {}
        for s in range(3):
            if metric == "pearson":
                y = rng.normal(size=100)
                pa, pb = y + rng.normal(size=100) * 0.5, y + rng.normal(size=100)
            else:
                y, pa, pb = _noisy_pair(rng, 150)
            a[s], b[s] = _run(pa, y), _run(pb, y)
        tasks.append((a, b, metric))
    single = [paired_bootstrap(*t) for t in tasks]
    avg = paired_bootstrap_average(tasks)
    assert avg.diff == pytest.approx(np.mean([iv.diff for iv in single]))
    assert (avg.n_seeds, avg.n_examples) == (3, 400)
    assert avg.low <= avg.diff <= avg.high
    assert avg == paired_bootstrap_average(tasks)
    assert paired_bootstrap_average(tasks[:1]) == single[0]
    assert paired_bootstrap_average([*tasks, ({}, {}, "f1")]) is None
    # averaging independent-ish tasks narrows the interval relative to the widest task
    assert avg.high - avg.low < max(iv.high - iv.low for iv in single)


def _iv(low, high):
    return Interval((low + high) / 2, low, high, 1, 10)


@pytest.mark.parametrize(
    ("low", "high", "kind", "want"),
    [
        (-0.5, 0.8, "matches", "agrees"),
        (-1.0, 1.0, "matches", "agrees"),  # bounds on the tolerance still agree
        (-2.0, 0.5, "matches", "inconclusive"),
        (0.5, 3.0, "matches", "inconclusive"),
        (-3.0, 3.0, "matches", "inconclusive"),
        (1.2, 3.0, "matches", "contradicts"),
        (-4.0, -1.1, "matches", "contradicts"),
        (-1.0, 5.0, "at_least", "agrees"),
        (2.0, 5.0, "at_least", "agrees"),
        (-1.5, 5.0, "at_least", "inconclusive"),
        (-3.0, -1.0, "at_least", "inconclusive"),  # high == -tol is not below it
        (-3.0, -1.01, "at_least", "contradicts"),
    ],
)
def test_verdict_branches(low, high, kind, want):
    assert verdict(_iv(low, high), Claim("LoRA vs FT", kind, 1.0)) == want


def test_claim_validation():
    assert Claim("x", "matches", 0).tolerance == 0
    assert Claim("x", "at_least", np.float64(0.5)).kind == "at_least"
    for kind, tol in (("equals", 1.0), ("matches", -0.1), ("matches", float("nan")),
                      ("at_least", float("inf")), ("matches", "1")):  # fmt: skip
        with pytest.raises(ValueError, match="Claim"):
            Claim("x", kind, tol)


def test_scheme_is_one_sentence():
    assert SCHEME.endswith(".") and SCHEME.count(". ") == 0 and "seed" in SCHEME


def test_bleu_metric_equals_mteval_on_stats_rows():
    from experiments.e2e import mteval

    refs = [["the cat sat on the mat", "a cat sat"], ["there is a pub"], ["x y z w v"]]
    hyps = ["the cat sat on a mat", "there is a pub near", "x y"]
    rows = np.array(mteval.bleu_stats(refs, hyps))
    assert rows.shape == (3, 9)
    zeros = np.zeros(3)
    assert METRICS["bleu"](rows, zeros) == pytest.approx(mteval.bleu(refs, hyps), rel=1e-12)
    assert mteval.bleu_from_stats(rows[:2].sum(0)) == pytest.approx(
        mteval.bleu(refs[:2], hyps[:2]), rel=1e-12
    )


def test_bleu_bootstrap_over_segments_by_hand():
    # A matches every reference exactly (BLEU 1), B shares no n-gram (BLEU ~1e-15): every
    # replicate's difference is 1 - ~0, so the interval collapses on +100 points.
    from experiments.e2e import mteval

    refs = [[f"w{i} a b c d e"] for i in range(20)]
    a = np.array(mteval.bleu_stats(refs, [r[0] for r in refs]))
    b = np.array(mteval.bleu_stats(refs, ["q r s t u v"] * 20))
    run = lambda s: {1: (s, np.zeros(20), np.arange(20))}  # noqa: E731
    iv = paired_bootstrap(run(a), run(b), "bleu", n_resamples=200)
    assert iv.diff == pytest.approx(100.0) and iv.low == pytest.approx(100.0)
    assert iv.n_examples == 20


def test_nll_is_a_ratio_of_sums_and_pairs_per_segment():
    tokens = np.array([10, 20, 30, 40])
    b = np.array([20.0, 40.0, 60.0, 80.0])  # 2 nats/token everywhere
    assert METRICS["nll"](b, tokens) == pytest.approx(2.0)
    a = b - 0.5 * tokens  # 1.5 nats/token everywhere: A - B is -0.5 in every resample
    iv = paired_bootstrap(
        {1: (a, tokens, np.arange(4))}, {1: (b, tokens, np.arange(4))}, "nll", scale=1.0
    )
    assert (iv.diff, iv.low, iv.high) == pytest.approx((-0.5, -0.5, -0.5))
    claim = Claim("no worse than FT in NLL", "at_most", 0.05)
    assert verdict(iv, claim) == "agrees"
    worse = Interval(0.2, 0.1, 0.3, 1, 4)
    assert verdict(worse, claim) == "contradicts"
    assert verdict(Interval(0.0, -0.1, 0.1, 1, 4), claim) == "inconclusive"


def test_two_dimensional_pred_needs_matching_length():
    rows = np.ones((3, 9))
    with pytest.raises(ValueError, match="must share n"):
        paired_bootstrap(
            {1: (rows, np.zeros(4), np.arange(4))}, {1: (rows, np.zeros(4), np.arange(4))}, "bleu"
        )
