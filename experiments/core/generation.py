"""Causal-LM pieces every generation task shares (E2E, WebNLG, DART): the prompt format,
training pairs with the loss on the completion only, the padding collator, the in-memory
best-epoch snapshot, the test references' NLL, batched beam search, and
:func:`train_and_decode`, which chains them (load, adapt, fit with best-epoch selection on
the dev loss, score the test references under teacher forcing, decode the test contexts).

Training follows the LoRA code (``examples/NLG/src/gpt2_ft.py``; paper §D.3): each
(context, reference) pair is ``context + <sep>`` followed by ``" " + reference + <eos>``,
and the loss covers only the reference and its end token (context labels are -100).
GPT-2's ``<sep>`` and ``<eos>`` are both ``<|endoftext|>``; a BERT decoder uses
``[CLS] context [SEP] reference [SEP]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from omegaconf import DictConfig
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    set_seed,
)

from experiments.core.data import usable_length
from experiments.core.fit import FitResult, fit
from experiments.core.models import load_model, load_tokenizer, resolve_pretrained
from experiments.core.training import training_arguments
from lora.methods import MethodConfig

__all__ = [
    "CompletionCollator",
    "GenerationRun",
    "KeepBestEpoch",
    "SequenceFormat",
    "beam_decode",
    "encode_pair",
    "reference_nll",
    "train_and_decode",
]


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


def reference_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    fmt: SequenceFormat,
    test: Sequence[tuple[str, Sequence[str]]],
    max_length: int,
    batch_size: int,
    prompt_lengths: bool = False,
) -> tuple[list[float], list[int]]:
    """Summed token NLL of each test input's references under teacher forcing.

    Each (context, reference) is encoded as in training (:func:`encode_pair`, cut at
    ``max_length``) and scored without label smoothing: the NLL in nats of every reference
    token and its end token, given the context and the reference tokens before it. The
    mean per-token test NLL of a set of inputs is ``sum(nll) / sum(tokens)`` over them,
    which is what the paired bootstrap resamples (``experiments.report.stats``, "nll").

    Args:
        test: (context, references) per test input.
        max_length: the training pairs' length limit (after virtual tokens).
        batch_size: pairs per forward pass (they are sorted by length to pad least).
        prompt_lengths: pass each pair's context length to the model (prefix methods).

    Returns:
        ``(nll, tokens)``: per test input, in order, the summed NLL (float, nats) and the
        number of scored tokens (int).
    """
    pairs = [
        (owner, encode_pair(tokenizer, fmt, context, ref, max_length))
        for owner, (context, refs) in enumerate(test)
        for ref in refs
    ]
    pairs.sort(key=lambda p: len(p[1]["input_ids"]))
    collate = CompletionCollator(fmt.pad, prompt_lengths=prompt_lengths)
    nll, tokens = [0.0] * len(test), [0] * len(test)
    model.eval()
    with torch.no_grad(), tqdm(total=len(pairs), desc="test NLL", unit="ref") as bar:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = {k: v.to(model.device) for k, v in collate([f for _, f in chunk]).items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = F.cross_entropy(
                logits.transpose(1, 2), target, ignore_index=-100, reduction="none"
            )
            for (owner, _), row_loss, row_n in zip(
                chunk, loss.sum(1).tolist(), (target != -100).sum(1).tolist(), strict=True
            ):
                nll[owner] += row_loss
                tokens[owner] += row_n
            bar.update(len(chunk))
    return nll, tokens


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


@dataclass
class GenerationRun:
    """A fine-tuned causal LM's decoded test outputs (:func:`train_and_decode`).

    Attributes:
        tokenizer: the model's tokenizer (to turn ``outputs`` into text).
        fit: the training result; ``fit.best`` is the lowest-dev-loss epoch, decoded.
        outputs: new token ids per test context, in input order (:func:`beam_decode`).
        nll, nll_tokens: per test input, its references' summed NLL (nats) and token
            count (:func:`reference_nll`).
        decode_seconds: wall time of the beam search, s.
        nll_seconds: wall time of the test NLL, s.
        train_size, dev_size: encoded training and dev pairs.
        train_truncated: training pairs cut at ``max_seq_length`` (no end token left).
        max_seq_length: the length pairs were cut to, after virtual tokens.
        virtual_tokens: prefix/infix positions the method adds (0 for the others).
    """

    tokenizer: PreTrainedTokenizerBase
    fit: FitResult
    outputs: list[list[int]]
    nll: list[float]
    nll_tokens: list[int]
    decode_seconds: float
    nll_seconds: float
    train_size: int
    dev_size: int
    train_truncated: int
    max_seq_length: int
    virtual_tokens: int

    def selection(self) -> dict[str, Any]:
        """The record's best-epoch fields: ``best_epoch``, ``best`` (dev scores without the
        ``eval_`` prefix) and ``selection`` (how the epoch was chosen)."""
        best = self.fit.best
        return {
            "best_epoch": best.get("epoch"),
            "best": {k.removeprefix("eval_"): v for k, v in best.items() if k.startswith("eval_")},
            "selection": "lowest dev loss; only that epoch's weights are decoded",
        }

    @property
    def test_nll(self) -> float:
        """Mean per-token NLL (nats) of all scored test references."""
        return sum(self.nll) / max(sum(self.nll_tokens), 1)

    def per_input(
        self,
        index: Sequence[int],
        texts: Sequence[str],
        bleu_stats: Sequence[Sequence[int]] | None = None,
    ) -> dict[str, Any]:
        """The record's ``predictions.test``: per test input, in decoding order, its
        ``index`` in the test set, decoded ``text``, references' ``nll_sum`` (nats, 7
        significant digits) and ``tokens``, and its BLEU ``bleu_stats`` row when given; the
        paired statistics of ``experiments.report.stats`` read these and nothing else."""
        out = {
            "split": "test",
            "epoch": self.fit.best.get("epoch"),
            "index": list(index),
            "text": list(texts),
            "nll_sum": [float(f"{v:.7g}") for v in self.nll],
            "tokens": list(self.nll_tokens),
        }
        if bleu_stats is not None:
            out["bleu_stats"] = [list(row) for row in bleu_stats]
        return out

    def timing(self, per_input_key: str, n_inputs: int, score_seconds: float) -> dict[str, Any]:
        """The record's ``timing``: seconds for training, dev loss, decoding and scoring,
        plus ``per_input_key`` = decoding ms per test input."""
        r = self.fit
        return {
            "train_seconds": round(r.train_seconds, 2),
            "train_samples_per_second": r.train_samples_per_second,
            "seconds_per_step": round(r.train_seconds / max(r.steps, 1), 4),
            "eval_seconds": r.best.get("eval_dev_runtime"),
            "decode_seconds": round(self.decode_seconds, 2),
            per_input_key: round(1000 * self.decode_seconds / max(n_inputs, 1), 1),
            "test_nll_seconds": round(self.nll_seconds, 2),
            "score_seconds": round(score_seconds, 2),
        }


def train_and_decode(
    cfg: DictConfig,
    method: MethodConfig,
    output_dir: Path,
    train_pairs: list[tuple[str, str]],
    dev_pairs: list[tuple[str, str]],
    test: Sequence[tuple[str, Sequence[str]]],
) -> GenerationRun:
    """Load ``cfg.model`` as a causal LM, apply ``method``, fit on (context, reference)
    pairs keeping the lowest-dev-loss epoch's weights, then score ``test``'s references
    (:func:`reference_nll`) and beam-search its contexts.

    Encoder configs (BERT) get ``is_decoder=True``, i.e. ``BertLMHeadModel`` with causal
    attention. Training batches are grouped by length; ``task.decode`` sets the search.

    Raises:
        ValueError: the inputs do not fit the model's positions (:func:`beam_decode`,
            :func:`experiments.core.data.usable_length`).
        NonFiniteError: training diverged (:func:`experiments.core.fit.fit`).
    """
    tokenizer = load_tokenizer(cfg.model)
    fmt = SequenceFormat.for_tokenizer(tokenizer)
    set_seed(cfg.seed)
    config = AutoConfig.from_pretrained(resolve_pretrained(cfg.model))
    model = load_model(
        cfg.model, "causal_lm", **({"is_decoder": True} if hasattr(config, "is_decoder") else {})
    )
    method.apply(model)
    max_positions = model.config.max_position_embeddings
    max_len, virtual = usable_length(cfg, method, max_positions)

    def encode(pairs: list[tuple[str, str]]) -> Dataset:
        return Dataset.from_list([encode_pair(tokenizer, fmt, c, r, max_len) for c, r in pairs])

    train_ds, dev_ds = encode(train_pairs), encode(dev_pairs)
    keeper = KeepBestEpoch(model, "eval_dev_loss")
    result = fit(
        model,
        training_arguments(
            cfg, output_dir, train_sampling_strategy="group_by_length", prediction_loss_only=True
        ),
        train_dataset=train_ds,
        eval_dataset={"dev": dev_ds},
        data_collator=CompletionCollator(fmt.pad, prompt_lengths=virtual > 0),
        best_key="eval_dev_loss",
        maximize=False,  # the same epoch as keeper's: the first lowest dev loss
        modules_to_save=method.modules_to_save,
        loraplus_lr_ratio=getattr(method, "loraplus_lr_ratio", None),
        callbacks=[keeper],
    )
    keeper.restore()
    start = time.perf_counter()
    nll, nll_tokens = reference_nll(
        model, tokenizer, fmt, test, max_len, cfg.train.eval_batch_size, virtual > 0
    )
    nll_seconds = time.perf_counter() - start
    start = time.perf_counter()
    contexts = [context for context, _ in test]
    outputs = beam_decode(model, tokenizer, fmt, contexts, cfg.task.decode, max_positions - virtual)
    return GenerationRun(
        tokenizer=tokenizer,
        fit=result,
        outputs=outputs,
        nll=nll,
        nll_tokens=nll_tokens,
        decode_seconds=time.perf_counter() - start,
        nll_seconds=nll_seconds,
        train_size=len(train_ds),
        dev_size=len(dev_ds),
        train_truncated=sum(row[-1] != fmt.eos for row in train_ds["labels"]),
        max_seq_length=max_len,
        virtual_tokens=virtual,
    )
