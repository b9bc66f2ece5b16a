"""The benchmarks' models: :func:`experiments.core.models.build_from_arch`, then weights.

``build_from_arch`` parses a model preset's ``arch`` block and picks the head class,
but builds on the meta device; the benchmarks time real kernels, so
:func:`build_model` re-creates the same class on the run's device with initialised
random weights (never left uninitialised: garbage values can hold denormals or NaNs
that change kernel speed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments.core.models import build_from_arch
from experiments.core.schema import ConfigError
from lora import ARCHITECTURES

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def model_names() -> list[str]:
    """Model presets, ``conf/model/<name>.yaml``."""
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def model_preset(name: str, setting: str = "models") -> DictConfig:
    """``conf/model/<name>.yaml`` as the ``model`` node a Hydra run composes.

    Raises:
        ConfigError: unknown preset, naming ``setting`` and the allowed names.
    """
    names = model_names()
    if name not in names:
        raise ConfigError(f"invalid setting {setting}: {name!r}; allowed: {', '.join(names)}")
    return OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")


def is_causal(model_type: str) -> bool:
    """True for decoder-only families (GPT-2, Llama ...: :attr:`lora.ArchSpec.causal`)."""
    spec = ARCHITECTURES.get(model_type)
    return bool(spec and spec.causal)


def meta_model(model_cfg: Any, overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """``build_from_arch`` of ``model_cfg`` (a ``model`` node or :class:`ModelCfg`) with
    ``overrides`` merged into its ``arch``: a causal LM for a decoder-only family, else a
    sequence classifier, on the meta device (no memory; its ``.config`` is the full config).

    ``overrides`` may use generic names (``hidden_size``, ``num_hidden_layers``) for
    GPT-2's ``n_embd`` / ``n_layer``: the config's ``attribute_map`` maps them (tests use
    tiny sizes).

    Raises:
        ConfigError: no ``arch`` block or no ``model_type`` in it (setting ``model``).
    """
    node = OmegaConf.merge(OmegaConf.structured(model_cfg), {"arch": dict(overrides or {})})
    model_type = node.arch.get("model_type")
    head = "causal_lm" if is_causal(str(model_type)) else "sequence_classification"
    try:
        return build_from_arch(node, head)
    except ValueError as err:
        raise ConfigError(f"invalid setting model: {err}") from None


def build_model(meta: nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    """The class and config of a :func:`meta_model`, built on ``device`` in ``dtype`` with
    the architecture's own random initialisation, seeded with ``seed``."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = type(meta)(meta.config)
    return model.to(dtype)
