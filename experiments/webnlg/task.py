"""One WebNLG (Table 14) or DART (Table 13) run: triples -> causal LM + method -> Trainer ->
beam search -> BLEU/METEOR/TER.

Training is E2E's (:mod:`experiments.core.generation`; paper §D.3): ``context <sep>``
then ``" " + reference <eos>``, loss on the reference only, one pair per reference.
Best epoch: the lowest dev loss, whose trainable weights are kept in memory and decoded
(the paper does not say how it picked its best epoch; decoding every epoch is too slow).

Decoding: beam search (``task.decode``: beam 10, length penalty 0.8 as in the official
README for both datasets, no repeated 4-grams, 64 new tokens) once per distinct test
input; the output is cut at the first blank line (``gpt2_decode.py``). Scores:
:func:`experiments.webnlg.metrics.score_subsets` (GenerationEval settings), on the
unseen/seen/all test inputs for WebNLG and on all inputs for DART. The run folder gets
the files GenerationEval reads, already lowercased and tokenized like
``gpt2_decode.py --tokenize --lower --ref_num 6``: ``hypothesis_<subset>`` and
``references_<subset>/reference0..5``.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from transformers import PreTrainedTokenizerBase

from experiments.core.data import resolve_data_dir, subsample
from experiments.core.generation import train_and_decode
from experiments.core.training import peak_memory
from experiments.webnlg import dart as dart_data
from experiments.webnlg import data as webnlg_data
from experiments.webnlg.data import (
    Entry,
    TestGroup,
    categories,
    group_references,
    test_subsets,
    training_pairs,
)
from experiments.webnlg.metrics import REF_NUM, postprocess, score_subsets
from lora.methods import MethodConfig

#: task name -> description; both tasks share this runner
TASKS: dict[str, str] = {"webnlg": "WebNLG 2017 challenge", "dart": "DART v1.1.1"}


def load_task(name: str, data_dir: str | None) -> tuple[dict[str, list[Entry]], list[TestGroup]]:
    """Entries per split and the grouped test inputs of ``webnlg`` or ``dart``.

    WebNLG groups are marked seen when their category occurs in the training split.

    Raises:
        FileNotFoundError, DataError: see :func:`experiments.webnlg.data.load_webnlg` and
            :func:`experiments.webnlg.dart.load_dart`.
        KeyError: an unknown task name.
    """
    if name == "webnlg":
        data = webnlg_data.load_webnlg(data_dir)
        return data, group_references(data["test"], categories(data["train"]))
    if name == "dart":
        data = dart_data.load_dart(data_dir)
        return data, group_references(data["test"])
    raise KeyError(f"unknown data-to-text task {name!r}; known: {', '.join(TASKS)}")


#: the test sample's seed: every training seed decodes the same test inputs
TEST_SAMPLE_SEED = 42


def select_test(groups: list[TestGroup], n: int | None) -> list[TestGroup]:
    """The test inputs to decode (``task.decode.max_mrs`` = ``n``), in test-file order.

    ``None`` (or ``n`` ≥ the count) keeps all. Otherwise a sample of ``n``, seeded with
    :data:`TEST_SAMPLE_SEED` (not the run's seed: seeds differ only in training), that keeps
    the unseen/seen proportions of the test set, with at least one of each when both
    exist and ``n`` ≥ 2, so Table 14's U, S and A are all scored (the test file lists
    categories in blocks: its first ``n`` inputs would all be seen).
    """
    if n is None or n >= len(groups):
        return groups
    unseen = [i for i, g in enumerate(groups) if not g.seen]
    seen = [i for i, g in enumerate(groups) if g.seen]
    k = round(n * len(unseen) / len(groups))
    if unseen and seen and n >= 2:
        k = min(max(k, 1), n - 1)
    rng = random.Random(TEST_SAMPLE_SEED)
    pick = rng.sample(unseen, k) + rng.sample(seen, n - k)
    return [groups[i] for i in sorted(pick)]


def clean_output(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """Decoded new tokens -> one output line: text before the first blank line, special
    tokens dropped, whitespace collapsed (WordPiece's ``it ' s`` is re-joined)."""
    text = tokenizer.decode(ids, skip_special_tokens=True).split("\n\n")[0]
    return " ".join(tokenizer.clean_up_tokenization(text).split())


def write_generationeval_files(
    folder: Path, groups: list[TestGroup], predictions: list[str], subsets: dict[str, list[int]]
) -> dict[str, str]:
    """Write ``hypothesis_<subset>`` and ``references_<subset>/reference<k>`` (k < 6) as
    ``gpt2_decode.py --tokenize --lower --ref_num 6`` does (missing references repeat the
    first), for ``eval.py -R references_<subset>/reference -H hypothesis_<subset> -nr 6``.

    Returns:
        subset -> the hypothesis file's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, idx in subsets.items():
        if not idx:
            continue
        hyp = folder / f"hypothesis_{name}"
        hyp.write_text("".join(postprocess(predictions[i]) + "\n" for i in idx), encoding="utf-8")
        ref_dir = folder / f"references_{name}"
        ref_dir.mkdir(exist_ok=True)
        for k in range(REF_NUM):
            lines = []
            for i in idx:
                refs = groups[i].references
                lines.append(postprocess(refs[k] if k < len(refs) else refs[0]) + "\n")
            (ref_dir / f"reference{k}").write_text("".join(lines), encoding="utf-8")
        out[name] = str(hyp)
    return out


def run_webnlg(cfg: DictConfig, method: MethodConfig, output_dir: Path) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` as a causal LM on WebNLG or DART (``cfg.task.name``), decode
    the test inputs, and score them.

    ``data.max_train_samples`` / ``data.max_eval_samples`` subsample training and dev pairs
    (seeded); ``task.decode.max_mrs`` decodes a seeded sample of the test inputs with
    seen and unseen ones in proportion (:func:`select_test`).

    Returns:
        The record's run-specific part: metrics (main = BLEU x100 on all test inputs;
        ``test`` holds BLEU/METEOR/TER per subset: ``unseen``, ``seen``, ``all`` for
        WebNLG, ``all`` for DART), per-epoch losses, parameter counts, timing, memory,
        data sizes, decoding settings and output files.

    Raises:
        FileNotFoundError, DataError: missing or malformed data (:func:`load_task`).
        ValueError: the inputs do not fit the model's positions, or the outputs cannot be
            scored (the files are written first; the message names them).
        RuntimeError: Java is missing or METEOR failed.
    """
    decode = cfg.task.decode
    data, groups = load_task(cfg.task.name, cfg.data.dir)
    train_pairs = subsample(training_pairs(data["train"]), cfg.data.max_train_samples, cfg.seed)
    dev_pairs = subsample(training_pairs(data["dev"]), cfg.data.max_eval_samples, cfg.seed)
    test = select_test(groups, decode.max_mrs)
    position = {id(g): i for i, g in enumerate(groups)}
    index = [position[id(g)] for g in test]

    run = train_and_decode(cfg, method, output_dir, train_pairs, dev_pairs,
                           [(g.context, g.references) for g in test])  # fmt: skip
    predictions = [clean_output(run.tokenizer, ids) for ids in run.outputs]
    references = [list(g.references) for g in test]
    subsets = test_subsets(test)
    if cfg.task.name != "webnlg":  # DART has no categories: Table 13 scores all inputs
        subsets = {"all": subsets["all"]}
    files = write_generationeval_files(output_dir, test, predictions, subsets)
    start = time.perf_counter()
    try:
        scores = score_subsets(references, predictions, subsets)
    except ValueError as err:
        raise ValueError(f"cannot score {files.get('all')}: {err}") from err
    score_seconds = time.perf_counter() - start

    data_dir = resolve_data_dir(cfg.data.dir)
    hub = webnlg_data.HUB_DATASET if cfg.task.name == "webnlg" else dart_data.HUB_DATASET
    local = bool(webnlg_data.data_files(data_dir) if cfg.task.name == "webnlg"
                 else dart_data.data_files(data_dir))  # fmt: skip
    return {
        "metrics": {
            "main_metric": "BLEU",
            "main": scores["all"]["BLEU"],
            "test": scores,
            "scale": "BLEU x100; METEOR and TER fractions (GenerationEval, paper Tables 13/14)",
            "test_nll": run.test_nll,
            **run.selection(),
        },
        "predictions": {"test": run.per_input(index, predictions)},
        "epochs": run.fit.epochs,
        "params": run.fit.params,
        "timing": run.timing("decode_ms_per_input", len(test), score_seconds),
        "memory": peak_memory(),
        "data": {
            "source": str(data_dir) if local else f"hub:{hub}",
            "train_size": run.train_size,
            "train_available": len(training_pairs(data["train"])),
            "eval_sizes": {"dev": run.dev_size, "test_inputs": len(test)},
            "test_subset_sizes": {k: len(v) for k, v in subsets.items()},
            "test_references": sum(map(len, references)),
            "train_truncated": run.train_truncated,
            "max_seq_length": run.max_seq_length,
            "virtual_tokens": run.virtual_tokens,
        },
        "decode": {
            **{k: decode[k] for k in decode},
            "files": files,
            "samples": [
                {"input": g.context, "prediction": p}
                for g, p in zip(test[:3], predictions[:3], strict=True)
            ],
        },
    }
