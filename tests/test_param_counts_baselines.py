"""Exact parameter counts of the baselines on the paper's shapes, built on the meta device.

Oracles: AdapterHub's roberta-base counts (anchors §2.4), the paper's adapter formula
|Θ| = L̂_Adpt·(2·d_model·r + r + d_model) + 2·L̂_LN·d_model and prefix formulas
d_model·(l_p + l_i), L·d_model·(l_p + l_i) (paper §5.1; reference §2.1), and the paper's
Tables 2, 3, 4 and 15.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from lora import count_parameters, make_method


def _meta(cls, config):
    with torch.device("meta"):
        return cls(config)


def _adapted(cls, config, method: str, **kwargs):
    model = _meta(cls, config)
    make_method(method, **kwargs).apply(model)
    return count_parameters(model)


def _adapter_formula(n_adapters: int, d: int, r: int, n_ln: int = 0) -> int:
    return n_adapters * (2 * d * r + r + d) + 2 * n_ln * d


ROBERTA_BASE = RobertaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072, num_labels=3)  # fmt: skip
ROBERTA_LARGE = RobertaConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096)  # fmt: skip
GPT2_MEDIUM = GPT2Config(n_embd=1024, n_layer=24, n_head=16)
GPT2_LARGE = GPT2Config(n_embd=1280, n_layer=36, n_head=20)
GPT3 = GPT2Config(n_layer=96, n_embd=12288, n_head=96)
ROBERTA = RobertaForSequenceClassification


@pytest.mark.parametrize(
    ("config", "method", "r", "expected"),
    [
        (ROBERTA_BASE, "adapter_p", 48, 894_528),  # AdapterHub seq_bn / pfeiffer
        (ROBERTA_BASE, "adapter_h", 48, 1_789_056),  # AdapterHub double_seq_bn / houlsby
        (ROBERTA_LARGE, "adapter_p", 16, 811_392),  # Table 2 RoB-large AdptP 0.8M
        (ROBERTA_LARGE, "adapter_h", 8, 835_968),  # Table 2 RoB-large AdptH 0.8M
    ],
)
def test_roberta_adapter_counts_match_adapterhub(config, method, r, expected):
    counts = _adapted(ROBERTA, config, method, r=r)
    assert counts.method == expected
    per_block = 2 if method == "adapter_h" else 1
    assert expected == _adapter_formula(per_block * config.num_hidden_layers, config.hidden_size, r)


@pytest.mark.parametrize(
    ("r", "expected", "millions", "table15"),
    [
        (1, 7_078_080, 7.08, 7.1),
        (4, 21_234_432, 21.23, 21.2),
        (8, 40_109_568, 40.11, 40.1),
        (16, 77_859_840, 77.86, 77.9),
        (64, 304_361_472, 304.36, 304.4),
    ],
)
def test_gpt3_adapter_h_counts_match_table15(r, expected, millions, table15):
    counts = _adapted(GPT2LMHeadModel, GPT3, "adapter_h", r=r)
    assert counts.method == expected == _adapter_formula(2 * 96, 12288, r)
    assert round(counts.method / 1e6, 2) == millions
    assert round(counts.method / 1e6, 1) == table15


def test_gpt3_prefix_embed_count_matches_table15():
    counts = _adapted(GPT2LMHeadModel, GPT3, "prefix_embed", l_p=256, l_i=8)
    assert counts.method == 3_244_032 == 12288 * (256 + 8)
    assert round(counts.method / 1e6, 1) == 3.2  # Tables 4 and 15


def test_gpt3_prefix_layer_count_is_the_formula():
    """L·d·(l_p + l_i) = 18,874,368; the paper reports 20.2M, which the formula misses."""
    counts = _adapted(GPT2LMHeadModel, GPT3, "prefix_layer", l_p=8, l_i=8)
    assert counts.method == 18_874_368 == 96 * 12288 * 16


@pytest.mark.parametrize(
    ("config", "r", "expected", "millions"),
    [
        (GPT2_MEDIUM, 6, 368_784, 0.37),
        (GPT2_MEDIUM, 224, 11_089_152, 11.09),
        (GPT2_LARGE, 8, 875_808, 0.88),
        (GPT2_LARGE, 248, 23_002_848, 23.00),
    ],
)
def test_gpt2_adapter_l_counts_match_table3(config, r, expected, millions):
    """AdapterL has one adapter and one trainable LayerNorm per block (L̂_LN = L)."""
    counts = _adapted(GPT2LMHeadModel, config, "adapter_l", r=r)
    assert (
        counts.method
        == expected
        == _adapter_formula(config.n_layer, config.n_embd, r, config.n_layer)
    )
    assert round(counts.method / 1e6, 2) == millions


def test_gpt2_medium_ft_top2_matches_table3():
    counts = _adapted(GPT2LMHeadModel, GPT2_MEDIUM, "ft_top2")
    assert counts.method == 25_192_448  # 2 × 12,596,224
    assert round(counts.method / 1e6, 2) == 25.19


def test_roberta_base_bitfit_is_0_1m():
    """Every bias, LayerNorm ones included: 12·(7·768 + 3072) + 768 (embedding LN)."""
    counts = _adapted(ROBERTA, ROBERTA_BASE, "bitfit")
    assert counts.method == 102_144 == 12 * (7 * 768 + 3072) + 768
    assert round(counts.method / 1e6, 1) == 0.1  # Table 2 RoB-base BitFit


def test_roberta_base_adapter_d_drops_first_blocks():
    counts = _adapted(ROBERTA, ROBERTA_BASE, "adapter_d", r=48, drop_first=5)
    assert counts.method == _adapter_formula(12 - 5, 768, 48) == 521_808


def test_head_is_not_counted_for_baselines():
    """RoBERTa-base MNLI head: 592,899 trainable parameters outside ``method``."""
    for method in ("adapter_h", "bitfit", "prefix_embed"):
        counts = _adapted(ROBERTA, ROBERTA_BASE, method)
        assert counts.trainable - counts.method == 592_899
