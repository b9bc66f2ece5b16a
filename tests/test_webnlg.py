"""WebNLG 2017 (Table 14): XML reading, linearisation, seen/unseen split, and the
GenerationEval metrics, on hand-written fixtures in the challenge's XML format."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from experiments.core.data import DataError
from experiments.webnlg import data as wd
from experiments.webnlg import metrics as wm

FIXTURES = Path(__file__).parent / "fixtures" / "webnlg"
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")


@pytest.fixture(scope="module")
def webnlg() -> dict[str, list[wd.Entry]]:
    return wd.load_webnlg(FIXTURES)


def test_reads_splits_and_linearises_like_the_lora_converter(webnlg):
    assert [len(webnlg[s]) for s in ("train", "dev", "test")] == [3, 1, 4]
    first = webnlg["train"][0]
    assert first.category == "Airport" and first.eid == "Id1"
    assert first.context == "Quillbury_Field : cityServed : Quillbury"
    food = next(e for e in webnlg["train"] if e.category == "Food")
    assert food.context == (
        "Plumcake_Surprise : country : Norvania | Plumcake_Surprise : ingredient : Plum"
    )
    # a line break inside a lexicalisation is collapsed to one space
    assert food.references[1].startswith("Plums are an ingredient of plumcake surprise, which")


def test_training_pairs_keep_only_good_lexicalisations(webnlg):
    pairs = wd.training_pairs(webnlg["train"])
    assert len(pairs) == 5  # 2 + 1 (the "bad" one dropped) + 2
    assert ("Quillbury_Field : elevationAboveTheSeaLevel_(in_metres) : 12.5",
            "Quillbury Field lies 12.5 metres above sea level.") in pairs  # fmt: skip
    assert not any(ref == "Quillbury Field 12.5." for _, ref in pairs)


def test_test_groups_split_seen_unseen_all(webnlg):
    seen = wd.categories(webnlg["train"])
    assert seen == {"Airport", "Food"}
    groups = wd.group_references(webnlg["test"], seen)
    # the two Food entries share one input: grouped like gpt2_decode.py, refs in order
    assert len(groups) == 3
    plum = groups[2]
    assert plum.references == (
        "Plumcake surprise comes from Norvania.",
        "Norvania is where plumcake surprise is from.",
    )
    assert [g.seen for g in groups] == [True, False, True]
    assert wd.test_subsets(groups) == {"unseen": [1], "seen": [0, 2], "all": [0, 1, 2]}
    assert len(groups[1].references) == 7  # all kept; the scorer keeps the first 6


def test_official_seen_categories_are_the_2017_training_categories():
    assert len(wd.SEEN_CATEGORIES) == 10 and "Politician" not in wd.SEEN_CATEGORIES


def test_reads_the_tarball_the_same_as_the_folder(tmp_path, webnlg):
    folder = tmp_path / "data" / "webnlg"
    folder.mkdir(parents=True)
    with tarfile.open(folder / wd.TARBALL, "w:gz") as tar:
        tar.add(FIXTURES / wd.FOLDER, arcname=wd.FOLDER)
    assert wd.load_webnlg(tmp_path / "data") == webnlg
    assert wd.data_files(tmp_path / "data") == [folder / wd.TARBALL]


def test_data_files_lists_the_xml_of_every_split():
    files = wd.data_files(FIXTURES)
    assert len(files) == 4 and files[-1].name == wd.TEST_FILE
    assert all(f.is_file() for f in files)


def test_missing_release_names_folder_and_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"webnlg.*data.dir=.*web_nlg"):
        wd.load_webnlg(tmp_path)


def test_malformed_triple_names_file_and_line(tmp_path):
    release = tmp_path / "webnlg" / wd.FOLDER
    shutil.copytree(FIXTURES / wd.FOLDER, release)
    path = release / "dev" / "1triples" / "1triple_allSolutions_Food_dev_challenge.xml"
    path.write_text(
        path.read_text().replace("Mossberry_Tart | region | Eastmarch", "Mossberry_Tart | region")
    )
    with pytest.raises(DataError, match=r"1triple_allSolutions_Food_dev_challenge\.xml:3: triple"):
        wd.load_webnlg(tmp_path)


def test_broken_xml_names_file_and_line(tmp_path):
    release = tmp_path / "webnlg" / wd.FOLDER
    shutil.copytree(FIXTURES / wd.FOLDER, release)
    path = release / "test" / wd.TEST_FILE
    path.write_text(path.read_text().replace("</lex>", "</lexx>", 1))
    with pytest.raises(DataError, match=r"testdata_with_lex\.xml:\d+: malformed XML"):
        wd.load_webnlg(tmp_path)


def test_real_release_counts():
    root = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (root / "webnlg" / wd.TARBALL).is_file():
        pytest.skip("no offline WebNLG copy")
    data = wd.load_webnlg(root)
    assert [len(data[s]) for s in ("train", "dev", "test")] == [6940, 872, 1862]
    assert len(wd.training_pairs(data["train"])) == 18025  # Li & Liang's train.json size
    assert wd.categories(data["train"]) == wd.SEEN_CATEGORIES
    groups = wd.group_references(data["test"], wd.SEEN_CATEGORIES)
    sizes = {k: len(v) for k, v in wd.test_subsets(groups).items()}
    assert sizes == {"unseen": 891, "seen": 971, "all": 1862}


# ---- metrics -------------------------------------------------------------------------


def test_postprocess_is_gpt2_decode_lower_tokenize():
    assert wm.postprocess("Aarhus's airport (AAR) is 12.5km away.") == (
        "aarhus ' s airport ( aar ) is 12 . 5km away ."
    )
    assert wm.postprocess("  Brindle,_Osterland  ") == "brindle , _osterland"


def test_bleu_identical_is_100_and_matches_sacrebleu():
    import sacrebleu

    refs = [["the cat sat on the mat .", "a cat was on the mat ."], ["it is raining today ."]]
    assert wm.bleu(refs, ["a cat was on the mat .", "it is raining today ."]) == pytest.approx(100)
    hyps = ["the cat was sitting on the mat .", "it rains today ."]
    expected = sacrebleu.corpus_bleu(
        hyps, [[r[0] for r in refs], [refs[0][1], None]], smooth_method="none"
    ).score
    got = wm.bleu(refs, hyps)
    assert got == pytest.approx(expected) and 0 < got < 100


def test_bleu_hand_computed_single_segment():
    # 5 of 6 unigrams, 3/5 bigrams, 2/4 trigrams, 1/3 4-grams; hyp 6 words, ref 7: BP e^(1-7/6)
    import math

    got = wm.bleu([["a b c d e f g"]], ["a b c d x f"])
    want = 100 * math.exp(1 - 7 / 6) * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert got == pytest.approx(want)


def test_ter_min_over_references_averaged_over_outputs():
    refs = [["a b c d", "a b x d"], ["p q r s t"]]
    assert wm.ter(refs, ["a b c d", "p q r s t"]) == 0.0
    # output 1: 1 substitution / 4 against ref 2 (best); output 2: 2 deletions / 5
    assert wm.ter(refs, ["a b x y", "p q r"]) == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert wm.ter([["a b"]], [""]) == pytest.approx(1.0)


def test_ter_shift_counts_as_one_edit():
    assert wm.ter([["a b c d e f"]], ["d e f a b c"]) == pytest.approx(1 / 6)


def test_score_checks_inputs():
    with pytest.raises(ValueError, match="2 outputs but 1 reference"):
        wm.bleu([["a"]], ["a", "b"])
    with pytest.raises(ValueError, match="input 0 has no non-empty reference"):
        wm.ter([["", " "]], ["a"])
    with pytest.raises(TypeError):
        wm.bleu(["a b"], ["a b"])


@needs_java
def test_score_identical_outputs_and_subsets():
    refs = [
        ["Brindle Regional Airport serves Brindle, Osterland."],
        ["Tamsin Orrow is in the Lantern Party.", "Tamsin Orrow belongs to the Lantern Party."],
        ["Plumcake surprise comes from Norvania."],
    ]
    hyps = [
        "brindle regional airport serves brindle , osterland .",  # equal after postprocess
        "Tamsin Orrow belongs to the Lantern Party.",
        "Norvania has a cake.",
    ]
    out = wm.score_subsets(refs, hyps, {"unseen": [], "seen": [0, 1], "all": [0, 1, 2]})
    assert set(out) == {"seen", "all"}  # an empty subset is left out
    assert out["seen"]["BLEU"] == pytest.approx(100)
    assert out["seen"]["METEOR"] == pytest.approx(1.0)
    assert out["seen"]["TER"] == 0.0
    assert out["all"]["BLEU"] < 100 and out["all"]["METEOR"] < 1 and out["all"]["TER"] > 0


def test_score_keeps_the_first_six_references():
    refs = [[f"ref {i} words" for i in range(6)] + ["the seventh one matches"]]
    assert wm.ter(wm._ref_lists(refs, 6), ["the seventh one matches"]) > 0
    assert wm.ter(wm._ref_lists(refs, 7), ["the seventh one matches"]) == 0


# ---- end-to-end smoke run on the fixtures (tiny random GPT-2) ---------------------------

EOS = "<|endoftext|>"


def build_tiny_gpt2(folder: Path, texts: list[str]) -> Path:
    """A 2-layer random GPT-2 and a byte-level BPE tokenizer trained on ``texts``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4,
                        n_positions=128, bos_token_id=eos, eos_token_id=eos)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def smoke_overrides(task: str, model_dir: Path, data_dir: Path, results: Path) -> list[str]:
    return [
        f"task={task}", "model.name=tiny-gpt2", "model.source=hub",
        f"model.pretrained={model_dir}", f"data.dir={data_dir}",
        f"paths.results_dir={results}", f"paths.output_dir={results}/outputs",
        "experiment_name=fixture", "train.epochs=2", "train.batch_size=2", "train.lr=1e-3",
        "method=lora", "method.r=4", "task.decode.num_beams=2",
        "task.decode.max_new_tokens=8", "task.decode.batch_size=2",
    ]  # fmt: skip


@needs_java
def test_webnlg_runs_end_to_end_on_fixtures(tmp_path, webnlg):
    from experiments.train import run
    from tests.test_config import compose_cfg

    texts = [t for entries in webnlg.values() for e in entries for t in (e.context, *e.references)]
    model_dir = build_tiny_gpt2(tmp_path / "tiny", texts)
    record = run(compose_cfg(smoke_overrides("webnlg", model_dir, FIXTURES, tmp_path)))
    assert record["status"] == "ok" and record["task"] == "webnlg"
    test = record["metrics"]["test"]
    assert set(test) == {"unseen", "seen", "all"}
    assert all(set(s) == {"BLEU", "METEOR", "TER"} for s in test.values())
    assert record["metrics"]["main"] == test["all"]["BLEU"]
    assert record["data"]["train_size"] == 5 and record["data"]["eval_sizes"]["test_inputs"] == 3
    assert record["data"]["test_subset_sizes"] == {"unseen": 1, "seen": 2, "all": 3}
    files = record["decode"]["files"]
    hyps = Path(files["all"]).read_text().splitlines()
    assert len(hyps) == 3 and hyps == [wm.postprocess(h) for h in hyps]
    refs0 = (Path(files["all"]).parent / "references_all" / "reference0").read_text()
    assert refs0.splitlines()[0] == "brindle regional airport serves brindle , osterland ."
    # a one-reference input repeats its reference in the later files (gpt2_decode.py)
    refs5 = (Path(files["all"]).parent / "references_all" / "reference5").read_text()
    assert refs5.splitlines()[0] == refs0.splitlines()[0]
