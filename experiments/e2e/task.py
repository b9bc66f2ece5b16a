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

Decoding: HF beam search (beam 10, length penalty 0.9, no repeated 4-grams, at most 64
new tokens by default; ``task.decode``) once per distinct test MR, batched over MRs
with left padding. Outputs go to ``e2e_pred.txt`` / ``e2e_ref.txt`` in the run folder
in the formats of ``gpt2_decode.py`` and are scored by :func:`compute_e2e_metrics`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from omegaconf import DictConfig
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    set_seed,
)

from experiments.core.data import resolve_data_dir, subsample, usable_length
from experiments.core.models import load_model, load_tokenizer, resolve_pretrained
from experiments.core.training import (
    epoch_history,
    peak_memory,
    reset_peak_memory,
    training_arguments,
)
from experiments.e2e.data import HUB_DATASET, accent_map, group_by_mr, load_e2e, pretokenize
from experiments.e2e.metrics import compute_e2e_metrics
from lora.methods import MethodConfig
from lora.params import count_parameters

#: ``e2e`` is the only task of the family; the value is unused (GLUE's is a spec).
TASKS: dict[str, str] = {"e2e": "E2E NLG Challenge"}
PRED_FILE, REF_FILE = "e2e_pred.txt", "e2e_ref.txt"


@dataclass(frozen=True)
class SequenceFormat:
    """Special tokens around the context and the reference.

    Attributes:
        prefix: ids before the context (``[CLS]`` for BERT, none for GPT-2).
        eos: id that ends the context and the reference (GPT-2 ``<|endoftext|>``,
            BERT ``[SEP]``); generation stops on it.
        pad: padding id (never trained on: labels are -100, attention mask 0).
    """

    prefix: tuple[int, ...]
    eos: int
    pad: int

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> SequenceFormat:
        """GPT-2 style when the tokenizer has an EOS token, else BERT style.

        Raises:
            ValueError: the tokenizer has neither an EOS nor a SEP token.
        """
        eos = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        )
        if eos is None:
            raise ValueError(f"{type(tokenizer).__name__} has no eos or sep token to end outputs")
        cls_id = tokenizer.cls_token_id if tokenizer.eos_token_id is None else None
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        return cls(prefix=() if cls_id is None else (cls_id,), eos=eos, pad=pad)

    def context_ids(self, tokenizer: PreTrainedTokenizerBase, context: str) -> list[int]:
        """``prefix + tokens(context) + [eos]``: the prompt of training and decoding."""
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        return [*self.prefix, *ids, self.eos]


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    fmt: SequenceFormat,
    context: str,
    reference: str,
    max_length: int,
) -> dict[str, list[int]]:
    """Token ids and labels of one training pair; labels are -100 over the context.

    The reference is cut (losing its end token) when the pair exceeds ``max_length``.

    Raises:
        ValueError: the context alone leaves no room for the reference.
    """
    context_ids = fmt.context_ids(tokenizer, context)
    room = max_length - len(context_ids)
    if room < 1:
        raise ValueError(
            f"context of {len(context_ids)} tokens leaves no room in train.max_seq_length="
            f"{max_length}: {context!r}"
        )
    target = [*tokenizer(" " + reference, add_special_tokens=False)["input_ids"], fmt.eos]
    target = target[:room]
    return {"input_ids": context_ids + target, "labels": [-100] * len(context_ids) + target}


@dataclass
class CompletionCollator:
    """Right-pad a batch of :func:`encode_pair` features into tensors.

    Attributes:
        pad_id: id written into padded ``input_ids`` (labels get -100, the mask 0).
        prompt_lengths: also pass ``prompt_lengths`` (context length per example), which
            the prefix methods need to put their infix after the context when the
            Trainer's label smoother hides the labels from the model.
    """

    pad_id: int
    prompt_lengths: bool = False

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``, ``labels``: (B, T) long, T = the longest
        example; ``prompt_lengths``: (B,) when asked for."""
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            labels[row, :n] = torch.tensor(f["labels"])
            mask[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.prompt_lengths:
            batch["prompt_lengths"] = (labels != -100).long().argmax(1)
        return batch


class KeepBestEpoch(TrainerCallback):
    """Snapshot, in memory, the trainable weights at the evaluation with the lowest loss.

    Only parameters with ``requires_grad`` change during training, so copying those
    (1.6 MB for GPT-2 M LoRA; the whole model under full fine-tuning) is enough.

    Args:
        model: the model being trained (the snapshot is taken from and restored to it).
        key: the metric to minimise, e.g. ``"eval_dev_loss"``.
    """

    def __init__(self, model: torch.nn.Module, key: str) -> None:
        self.model, self.key = model, key
        self.best_loss = math.inf
        self.best_epoch: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get(self.key)
        if loss is not None and loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, round(float(state.epoch), 2)
            self.weights = {
                name: p.detach().clone()
                for name, p in self.model.named_parameters()
                if p.requires_grad
            }

    def restore(self) -> None:
        """Load the best snapshot back into the model (no-op before any evaluation)."""
        if self.weights is None:
            return
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.weights:
                    p.copy_(self.weights[name])


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


def beam_decode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    fmt: SequenceFormat,
    contexts: list[str],
    decode: DictConfig,
    max_positions: int,
) -> list[list[int]]:
    """Beam-search each context once; returns the new token ids per context, in order.

    Each returned list holds the generated ids (end token and any padding after it
    included; the tokenizer's ``skip_special_tokens`` drops them).

    Contexts are sorted by length and decoded ``decode.batch_size`` at a time with
    left padding (position ids follow the attention mask), so the output matches
    decoding them one by one up to float rounding.

    Args:
        max_positions: positions the model can attend to (after virtual tokens).

    Raises:
        ValueError: the longest context plus ``decode.max_new_tokens`` exceeds
            ``max_positions``.
    """
    prompts = [fmt.context_ids(tokenizer, c) for c in contexts]
    longest = max(map(len, prompts))
    if longest + decode.max_new_tokens > max_positions:
        raise ValueError(
            f"a {longest}-token context + task.decode.max_new_tokens={decode.max_new_tokens} "
            f"exceeds the model's {max_positions} usable positions"
        )
    gen = GenerationConfig(
        num_beams=decode.num_beams,
        length_penalty=decode.length_penalty,
        no_repeat_ngram_size=decode.no_repeat_ngram_size,
        max_new_tokens=decode.max_new_tokens,
        do_sample=False,
        eos_token_id=fmt.eos,
        pad_token_id=fmt.pad,
    )
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    model.eval()
    with torch.no_grad(), tqdm(total=len(prompts), desc="decode", unit="MR") as bar:
        for start in range(0, len(order), decode.batch_size):
            rows = order[start : start + decode.batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.full((len(rows), width), fmt.pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]) :] = 1
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                generation_config=gen,
            )
            for r, i in enumerate(rows):
                outputs[i] = out[r, width:].tolist()
            bar.update(len(rows))
    return outputs


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
    dev pairs (seeded); ``task.decode.max_mrs`` keeps the first test MRs.

    Returns:
        The record's run-specific part: metrics (main = BLEU on the official 0-1
        scale, all five scores under ``test``, best epoch and its dev loss), per-epoch
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
    test = group_by_mr(data["test"])[: decode.max_mrs]

    tokenizer = load_tokenizer(cfg.model)
    fmt = SequenceFormat.for_tokenizer(tokenizer)
    set_seed(cfg.seed)
    # Encoder configs (BERT) have is_decoder: True gives BertLMHeadModel causal attention.
    config = AutoConfig.from_pretrained(resolve_pretrained(cfg.model))
    model = load_model(
        cfg.model, "causal_lm", **({"is_decoder": True} if hasattr(config, "is_decoder") else {})
    )
    method.apply(model)
    max_positions = model.config.max_position_embeddings
    max_len, virtual = usable_length(cfg, method, max_positions)

    def encode(pairs: list[tuple[str, str]]) -> Dataset:
        rows = [encode_pair(tokenizer, fmt, c, r, max_len) for c, r in pairs]
        return Dataset.from_list(rows)

    train_ds, dev_ds = encode(train_pairs), encode(dev_pairs)
    truncated = sum(row[-1] != fmt.eos for row in train_ds["labels"])

    keeper = KeepBestEpoch(model, "eval_dev_loss")
    args = training_arguments(
        cfg, output_dir, train_sampling_strategy="group_by_length", prediction_loss_only=True
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset={"dev": dev_ds},
        data_collator=CompletionCollator(fmt.pad, prompt_lengths=virtual > 0),
        callbacks=[keeper],
    )
    reset_peak_memory()
    start = time.perf_counter()
    train_out = trainer.train()
    train_seconds = time.perf_counter() - start
    epochs = epoch_history(trainer.state.log_history)
    keeper.restore()
    best = next(
        (e for e in epochs if e["epoch"] == keeper.best_epoch), epochs[-1] if epochs else {}
    )

    cleaner = OutputCleaner(tokenizer, cfg.task.pretokenize, [t for p in train_pairs for t in p])
    start = time.perf_counter()
    new_ids = beam_decode(
        model, tokenizer, fmt, [c for c, _ in test], decode, max_positions - virtual
    )
    decode_seconds = time.perf_counter() - start
    predictions = [cleaner(ids) for ids in new_ids]
    references = [refs for _, refs in test]
    files = write_outputs(output_dir, references, predictions)
    start = time.perf_counter()
    try:
        scores = compute_e2e_metrics(references, predictions)
    except ValueError as err:  # e.g. NIST is undefined when (nearly) every output is empty
        raise ValueError(f"cannot score {files['predictions']}: {err}") from err
    score_seconds = time.perf_counter() - start

    eval_seconds = best.get("eval_dev_runtime")
    return {
        "metrics": {
            "main_metric": "BLEU",
            "main": scores["BLEU"],
            "best_epoch": best.get("epoch"),
            "best": {k.removeprefix("eval_"): v for k, v in best.items() if k.startswith("eval_")},
            "test": scores,
            "selection": "lowest dev loss; only that epoch's weights are decoded",
        },
        "epochs": epochs,
        "params": count_parameters(model, method.modules_to_save).as_dict(),
        "timing": {
            "train_seconds": round(train_seconds, 2),
            "train_samples_per_second": train_out.metrics.get("train_samples_per_second"),
            "seconds_per_step": round(train_seconds / max(trainer.state.global_step, 1), 4),
            "eval_seconds": eval_seconds,
            "decode_seconds": round(decode_seconds, 2),
            "decode_ms_per_mr": round(1000 * decode_seconds / len(test), 1),
            "score_seconds": round(score_seconds, 2),
        },
        "memory": peak_memory(),
        "data": {
            "source": str(resolve_data_dir(cfg.data.dir) or f"hub:{HUB_DATASET}"),
            "train_size": len(train_ds),
            "train_available": len(data["train"]),
            "eval_sizes": {"dev": len(dev_ds), "test_mrs": len(test)},
            "test_references": sum(map(len, references)),
            "train_truncated": truncated,
            "max_seq_length": max_len,
            "virtual_tokens": virtual,
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
