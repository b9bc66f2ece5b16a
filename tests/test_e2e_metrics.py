"""Tests for the E2E NLG scorer (experiments.mteval, experiments.e2e.metrics, evaluate module).

Expected values are either derived by hand from the mteval-v13a definitions (derivations in the
comments) or were printed by the official ``measure_scores.py -p`` of tuetschek/e2e-metrics on
the fixture files in tests/fixtures/e2e/.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.e2e import mteval
from experiments.e2e.metrics import (
    METRIC_NAMES,
    compute_e2e_metrics,
    main,
    read_predictions,
    read_references,
)

FIXTURES = Path(__file__).parent / "fixtures" / "e2e"
REFS = FIXTURES / "refs.txt"  # 5 instances with 1, 3, 2, 4 and 2 references
PREDS = FIXTURES / "preds.txt"

# Printed by the official `measure_scores.py -p refs.txt preds.txt` (pymteval + pycocoevalcap).
OFFICIAL_FIXTURE_OUTPUT = """\
SCORES:
==============
BLEU: 0.4941
NIST: 5.3443
METEOR: 0.4608
ROUGE_L: 0.7587
CIDEr: 3.9597

"""
OFFICIAL_FIXTURE_SCORES = {
    line.split(": ")[0]: line.split(": ")[1]
    for line in OFFICIAL_FIXTURE_OUTPUT.splitlines()
    if ": " in line
}


@pytest.fixture(scope="module")
def fixture_scores() -> dict[str, float]:
    return compute_e2e_metrics(read_references(REFS), read_predictions(PREDS))


# --- mteval tokenization ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The price is £20-25.", ["The", "price", "is", "£20", "-", "25", "."]),
        ("1,000.50 dollars, ok.", ["1,000.50", "dollars", ",", "ok", "."]),
        ("It's family-friendly!", ["It's", "family-friendly", "!"]),
        ("&quot;Hi&quot; (x)/y", ['"', "Hi", '"', "(", "x", ")", "/", "y"]),
        ("a 3-star café; 5 out of 5", ["a", "3", "-", "star", "café", ";", "5", "out", "of", "5"]),
        ("  spaced\tout  ", ["spaced", "out"]),
        ("", [""]),  # the E2E port gives an empty output length 1
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert mteval.tokenize(text) == tokens


def test_matching_is_case_insensitive_and_punctuation_split() -> None:
    refs = [["THE CAT SAT ON THE MAT ."]]
    assert mteval.bleu(refs, ["The cat sat on the mat."]) == pytest.approx(1.0)
    assert mteval.nist(refs, ["The cat sat on the mat."]) == pytest.approx(
        mteval.nist(refs, ["the cat sat on the mat ."])
    )


# --- BLEU / NIST values ----------------------------------------------------------------------


def test_identical_gives_bleu_one() -> None:
    sents = ["Blue Spice is a coffee shop in the city centre.", "The Wren is a pub near a river."]
    assert mteval.bleu([[s] for s in sents], sents) == pytest.approx(1.0, abs=1e-12)


def test_disjoint_gives_bleu_zero_up_to_forced_smoothing() -> None:
    # No n-gram matches: every precision is 1e-15 / c_n, so BLEU is about 1e-15 / 4, not 0.
    score = mteval.bleu([["one two three four five"]], ["six seven eight nine ten"])
    assert 0 < score < 1e-14


def test_ragged_reference_counts_bleu_by_hand() -> None:
    references = [
        ["red apples are really very sweet"],
        ["green pears are sour", "pears are sour", "the green pears taste sour today"],
        ["bananas yellow", "ripe bananas are yellow"],
    ]
    hypotheses = ["red apples are sweet", "green pears are sour", "bananas are yellow"]
    # matches / candidate n-grams per segment, n = 1..4:
    #   1 ref : 4/4, 2/3 ("are sweet" missing), 1/2, 0/1; only ref has 6 tokens
    #   3 refs: exact copy of ref 1 -> 4/4, 3/3, 2/2, 1/1; closest ref length 4
    #   2 refs: 3/3, 2/2, 1/1, 0/0; refs of 2 and 4 tokens are equally close to 3 -> shorter, 2
    # p = 11/11, 7/8, 4/5, 1/2; c = 11 <= r = 6 + 4 + 2 = 12 -> BP = exp(1 - 12/11)
    expected = math.exp(1 - 12 / 11) * (1 * 7 / 8 * 4 / 5 * 1 / 2) ** (1 / 4)
    assert mteval.bleu(references, hypotheses) == pytest.approx(expected, rel=1e-12)
    assert mteval.nist(references, hypotheses) > 0


def test_multi_reference_bleu_and_nist_by_hand() -> None:
    filler = "dogs bark loudly at night while birds sing in tall green trees"  # 12 new words
    references = [["the cat is on a mat", "a cat sat on the mat", filler]]
    hypotheses = ["the cat sat on the mat"]
    # BLEU. Clipping uses the max count in ONE reference: "the" x2 in the hypothesis, x1 in each
    # reference -> 1 match, so p1 = 5/6. Bigrams the-cat (ref 1), cat-sat, sat-on, on-the,
    # the-mat (ref 2): p2 = 5/5. Trigrams: all but "the cat sat": p3 = 3/4. 4-grams:
    # "cat sat on the", "sat on the mat" match, "the cat sat on" not: p4 = 2/3.
    # Closest reference length 6 = c -> BP = 1.
    expected_bleu = (5 / 6 * 1 * 3 / 4 * 2 / 3) ** (1 / 4)
    assert mteval.bleu(references, hypotheses) == pytest.approx(expected_bleu, rel=1e-12)

    # NIST. Counts over all 24 reference tokens: the 2, cat 2, on 2, mat 2, sat 1;
    # info(w) = log2(24 / count(w)); matched unigrams the, cat, on, mat (log2 12 each) and
    # sat (log2 24), over c1 = 6 candidate unigrams.
    # Bigrams: info(w1 w2) = log2(count(w1) / count(w1 w2)), every reference bigram occurs once:
    # the-cat 1, cat-sat 1, sat-on 0, on-the 1, the-mat 1 -> 4 bits over c2 = 5.
    # Every matched 3-, 4- and 5-gram has a prefix seen once, as often as itself -> 0 bits.
    # BP: 6 hypothesis tokens vs mean reference length (6 + 6 + 12) / 3 = 8 -> ratio 3/4,
    # BP = exp(-beta ln(3/4)^2) with beta = -ln(1/2) / ln(3/2)^2 (0.5 at ratio 2/3).
    info = (4 * math.log2(12) + math.log2(24)) / 6 + 4 / 5
    beta = -math.log(0.5) / math.log(1.5) ** 2
    expected_nist = math.exp(-beta * math.log(0.75) ** 2) * info
    assert mteval.nist(references, hypotheses) == pytest.approx(expected_nist, rel=1e-12)


def test_short_hypotheses_follow_the_e2e_port() -> None:
    # A 2-token output adds 2 - 4 + 1 = -1 to c4 (mteval-v13a.pl would add 0), so c4 = 1 - 1 = 0,
    # floored to 1e-9, and the one matched 4-gram makes p4 = 1e9: BLEU > 1, as pymteval gives.
    assert mteval.bleu([["a b c d"], ["x y"]], ["a b c d", "x y"]) == pytest.approx(1e9**0.25)
    # c5 = (5 - 4) + (3 - 4) = 0: pymteval raises ZeroDivisionError, we raise ValueError.
    with pytest.raises(ValueError, match="candidate 5-grams"):
        mteval.nist([["a b c d e"], ["x y z"]], ["a b c d e", "x y z"])


@pytest.mark.parametrize(
    ("references", "hypotheses", "error"),
    [
        ([["a"]], ["a", "b"], ValueError),
        ([], [], ValueError),
        ([["a"], []], ["a", "b"], ValueError),
        (["a"], ["a"], TypeError),
    ],
)
def test_invalid_inputs(references: list, hypotheses: list, error: type[Exception]) -> None:
    with pytest.raises(error):
        mteval.bleu(references, hypotheses)
    with pytest.raises(error):
        mteval.nist(references, hypotheses)


# --- file readers ----------------------------------------------------------------------------


def test_read_references_groups_on_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "refs.txt"
    path.write_text("a 1\n  a 2 \n\nb 1\n\nc 1\nc 2\nc 3\n\n\n", encoding="utf-8")
    assert read_references(path) == [["a 1", "a 2"], ["b 1"], ["c 1", "c 2", "c 3"]]
    assert [len(g) for g in read_references(REFS)] == [1, 3, 2, 4, 2]


def test_read_references_without_blank_lines_is_single_reference() -> None:
    groups = read_references(FIXTURES / "refs_single.txt")
    assert groups == [[g[0]] for g in read_references(REFS)]


def test_read_references_rejects_empty_groups(tmp_path: Path) -> None:
    path = tmp_path / "refs.txt"
    path.write_text("a\n\n\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_references(path)


def test_read_predictions_keeps_empty_outputs(tmp_path: Path) -> None:
    path = tmp_path / "preds.txt"
    path.write_text("first\n\n third \n", encoding="utf-8")
    assert read_predictions(path) == ["first", "", "third"]
    assert len(read_predictions(PREDS)) == 5


# --- full metric set (Java) ------------------------------------------------------------------


def test_scores_match_official_script(fixture_scores: dict[str, float]) -> None:
    assert list(fixture_scores) == list(METRIC_NAMES)
    assert {k: f"{v:.4f}" for k, v in fixture_scores.items()} == OFFICIAL_FIXTURE_SCORES


def test_compute_rejects_mismatched_counts() -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference groups"):
        compute_e2e_metrics([["a b"]], ["a b", "c d"])


def test_compute_requires_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="java not found"):
        compute_e2e_metrics([["a b c d e"]], ["a b c d e"])


def test_cli_prints_official_format() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "experiments.e2e.metrics", str(REFS), str(PREDS)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.stdout == OFFICIAL_FIXTURE_OUTPUT


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    three_lines = tmp_path / "preds.txt"
    three_lines.write_text("a\nb\nc\n", encoding="utf-8")
    for args, message in [
        ([str(REFS), str(tmp_path / "missing.txt")], "No such file"),
        ([str(REFS), str(three_lines)], "has 3 outputs but"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        text = str(exc.value.code)
        assert message in text and "\n" not in text


def test_evaluate_module_loads_offline(tmp_path: Path, fixture_scores: dict[str, float]) -> None:
    # A fresh interpreter and cache directory, so the module really is copied and imported
    # offline rather than reused from this process.
    script = (
        "import json; from experiments.e2e.metrics import load_metric, read_predictions, "
        "read_references as rr; m = load_metric(); "
        f"print(json.dumps(m.compute(predictions=read_predictions({str(PREDS)!r}), "
        f"references=rr({str(REFS)!r}))))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == pytest.approx(fixture_scores)
