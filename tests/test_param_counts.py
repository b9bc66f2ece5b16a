"""Trainable-parameter counts on the paper's architectures, built on the meta device.

Expected values: |Θ| = 2 × L̂_LoRA × d_model × r (paper §4.2; reference §2.1).
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from lora import apply_lora, count_parameters


def _meta(cls, config):
    with torch.device("meta"):
        return cls(config)


ROBERTA_BASE = RobertaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072, num_labels=3)  # fmt: skip
ROBERTA_LARGE = RobertaConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096)  # fmt: skip
GPT2_MEDIUM = GPT2Config(n_embd=1024, n_layer=24, n_head=16)
DEBERTA_XXL = DebertaV2Config(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24,
                              intermediate_size=6144, vocab_size=128100)  # fmt: skip


@pytest.mark.parametrize(
    ("cls", "config", "r", "expected"),
    [
        (RobertaForSequenceClassification, ROBERTA_BASE, 8, 294_912),
        (RobertaForSequenceClassification, ROBERTA_LARGE, 8, 786_432),
        (GPT2LMHeadModel, GPT2_MEDIUM, 4, 393_216),
        (DebertaV2ForSequenceClassification, DEBERTA_XXL, 16, 4_718_592),
    ],
)
def test_lora_counts_match_paper(cls, config, r, expected):
    model = _meta(cls, config)
    apply_lora(model, ["q", "v"], r=r, lora_alpha=r)
    counts = count_parameters(model)
    assert counts.method == expected
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    d = getattr(config, "hidden_size", None) or config.n_embd
    assert counts.method == 2 * 2 * layers * d * r  # two matrices, A and B each d·r


def test_roberta_base_head_is_counted_separately():
    """MNLI head of RoBERTa-base: 592,899 parameters (reference §2.2)."""
    model = _meta(RobertaForSequenceClassification, ROBERTA_BASE)
    apply_lora(model, ["q", "v"], r=8)
    counts = count_parameters(model)
    assert counts.trainable - counts.method == 592_899
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_full_ft_counts_everything():
    from lora import make_method

    model = _meta(GPT2LMHeadModel, GPT2_MEDIUM)
    make_method("full_ft").apply(model)
    counts = count_parameters(model)
    assert counts.trainable == counts.total == counts.method == 354_823_168
