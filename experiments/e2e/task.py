"""One E2E NLG run (paper Table 3): data -> causal LM + method -> Trainer -> beam search -> scores.

Training follows the LoRA code (``examples/NLG/src/gpt2_ft.py``; paper §D.3): each
(MR, reference) pair is ``context + <sep>`` followed by ``" " + reference + <eos>``,
and the loss (label-smoothed when ``train.label_smoothing`` > 0) covers only the
reference and its end token; context tokens get label -100. GPT-2's ``<sep>`` and
``<eos>`` are both ``<|endoftext|>``, as in ``gpt2_encode.py --add_bos --add_eos``;
a BERT decoder uses ``[CLS] context [SEP] reference [SEP]``.

Best epoch: the paper reports each run's best epoch without saying how it was chosen
(reference §7, item 4). Decoding every epoch on CPU is too slow, so we pick the epoch
with the lowest dev loss, keep its trainable weights in memory, and decode only that
checkpoint.

Test NLL: every reference of each scored test MR under teacher forcing, in nats per
token (:func:`experiments.core.generation.reference_nll`); cheap next to beam search and
paired per MR between methods.

Decoding: HF beam search (beam 10, length penalty 0.9, no repeated 4-grams, at most 64
new tokens by default; ``task.decode``) once per distinct test MR, batched over MRs
with left padding. Outputs go to ``e2e_pred.txt`` / ``e2e_ref.txt`` in the run folder
in the formats of ``gpt2_decode.py`` and are scored by :func:`compute_e2e_metrics`. The
record keeps, per MR, the decoded text, the references' NLL and token count, and the
MR's BLEU statistics (``predictions.test``), from which the tables' paired intervals
are computed.
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
from experiments.e2e.data import HUB_DATASET, accent_map, group_by_mr, load_e2e, pretokenize
from experiments.e2e.metrics import compute_e2e_metrics
from experiments.e2e.mteval import bleu_stats
from lora.methods import MethodConfig

#: ``e2e`` is the only task of the family; the value is unused (GLUE's is a spec).
TASKS: dict[str, str] = {"e2e": "E2E NLG Challenge"}
PRED_FILE, REF_FILE = "e2e_pred.txt", "e2e_ref.txt"
#: Seeds the test-MR sample (not the run's seed: every run scores the same MRs).
TEST_SAMPLE_SEED = 0


def select_mrs(n_mrs: int, n: int | None) -> list[int]:
    """Indices of the test MRs to score (``task.decode.max_mrs`` = ``n``), ascending.

    ``None`` (or ``n`` >= ``n_mrs``) keeps all. Otherwise a sample of ``n`` seeded with
    :data:`TEST_SAMPLE_SEED`: the test file lists MRs by restaurant name, so its first
    ``n`` would cover only the names early in the alphabet.
    """
    if n is None or n >= n_mrs:
        return list(range(n_mrs))
    return sorted(random.Random(TEST_SAMPLE_SEED).sample(range(n_mrs), n))


class OutputCleaner:
    """Decoded token ids -> one prediction line in the references' tokenization.

    ``gpt2_decode.py`` keeps the text before the first blank line; we do the same.
    With ``tokenize`` (``task.pretokenize``) the text is then put in the references'
    tokenization, which makes a WordPiece decoder's output (``it ' s``, ``pub.``)
    comparable and is a no-op on GPT-2 outputs already in that form.
    Accented words that the tokenizer cannot produce (BERT uncased writes ``cafe``)
    are respelled from the training text (:func:`experiments.e2e.data.accent_map`).
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, tokenize: bool, train_texts: list[str]
    ) -> None:
        self.tokenizer, self.tokenize = tokenizer, tokenize
        self.respell = {
            plain: word
            for plain, word in accent_map(train_texts).items()
            if word not in self._round_trip(word)
        }

    def _round_trip(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids, skip_special_tokens=True).lower()

    def __call__(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True).split("\n\n")[0]
        if self.tokenize:  # re-join WordPiece's "it ' s" to "it's", then split as the refs
            text = pretokenize(self.tokenizer.clean_up_tokenization(text))
        else:
            text = " ".join(text.split())
        if self.respell:
            text = " ".join(self.respell.get(word.lower(), word) for word in text.split())
        return text


def write_outputs(
    folder: Path, references: list[list[str]], predictions: list[str]
) -> dict[str, str]:
    """Write ``e2e_ref.txt`` (references one per line, a blank line between MRs) and
    ``e2e_pred.txt`` (one prediction per line), as ``gpt2_decode.py`` does.

    Returns:
        ``{"predictions": path, "references": path}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    refs = "\n\n".join("\n".join(group) for group in references) + "\n"
    (folder / REF_FILE).write_text(refs, encoding="utf-8")
    (folder / PRED_FILE).write_text("\n".join(predictions) + "\n", encoding="utf-8")
    return {"predictions": str(folder / PRED_FILE), "references": str(folder / REF_FILE)}


def run_e2e(cfg: DictConfig, method: MethodConfig, output_dir: Path) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` as a causal LM on E2E with ``method``, decode, and score.

    ``data.max_train_samples`` subsamples training pairs and ``data.max_eval_samples``
    dev pairs (seeded); ``task.decode.max_mrs`` scores a fixed sample of test MRs
    (:func:`select_mrs`).

    Returns:
        The record's run-specific part: metrics (main = BLEU on the official 0-1
        scale, all five scores and ``NLL`` (nats per reference token) under ``test``,
        best epoch and its dev loss), per-MR outputs (``predictions.test``), per-epoch
        losses, parameter counts, timing (train, dev loss, decode, scoring), memory,
        data sizes, and the decoding settings with the output file paths.

    Raises:
        FileNotFoundError: an E2E file is missing (:func:`experiments.e2e.data.load_e2e`).
        ValueError: the inputs do not fit the model's positions, or the outputs cannot be
            scored (the prediction file is still written; its path is in the message).
        RuntimeError: Java is missing or METEOR failed (:func:`compute_e2e_metrics`).
    """
    decode = cfg.task.decode
    data = load_e2e(cfg.data.dir, cfg.task.pretokenize)
    train_pairs = subsample(data["train"], cfg.data.max_train_samples, cfg.seed)
    dev_pairs = subsample(data["dev"], cfg.data.max_eval_samples, cfg.seed)
    groups = group_by_mr(data["test"])
    index = select_mrs(len(groups), decode.max_mrs)
    test = [groups[i] for i in index]

    run = train_and_decode(cfg, method, output_dir, train_pairs, dev_pairs, test)
    cleaner = OutputCleaner(
        run.tokenizer, cfg.task.pretokenize, [t for p in train_pairs for t in p]
    )
    predictions = [cleaner(ids) for ids in run.outputs]
    references = [refs for _, refs in test]
    files = write_outputs(output_dir, references, predictions)
    start = time.perf_counter()
    try:
        scores = compute_e2e_metrics(references, predictions)
    except ValueError as err:  # e.g. NIST is undefined when (nearly) every output is empty
        raise ValueError(f"cannot score {files['predictions']}: {err}") from err
    score_seconds = time.perf_counter() - start

    return {
        "metrics": {
            "main_metric": "BLEU",
            "main": scores["BLEU"],
            "test": {**scores, "NLL": run.test_nll},
            **run.selection(),
        },
        "predictions": {
            "test": run.per_input(index, predictions, bleu_stats(references, predictions))
        },
        "epochs": run.fit.epochs,
        "params": run.fit.params,
        "timing": run.timing("decode_ms_per_mr", len(test), score_seconds),
        "memory": peak_memory(),  # since fit's reset: training and beam search
        "data": {
            "source": str(resolve_data_dir(cfg.data.dir) or f"hub:{HUB_DATASET}"),
            "train_size": run.train_size,
            "train_available": len(data["train"]),
            "eval_sizes": {"dev": run.dev_size, "test_mrs": len(test)},
            "test_mrs_available": len(groups),
            "test_references": sum(map(len, references)),
            "train_truncated": run.train_truncated,
            "max_seq_length": run.max_seq_length,
            "virtual_tokens": run.virtual_tokens,
            "pretokenize": bool(cfg.task.pretokenize),
        },
        "decode": {
            **{k: decode[k] for k in decode},
            "files": files,
            "samples": [
                {"mr": c, "prediction": p}
                for (c, _), p in zip(test[:3], predictions[:3], strict=True)
            ],
        },
    }
