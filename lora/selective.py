"""Selective fine-tuning baselines: FT^Top2 and BitFit (paper §5.1).

Neither adds parameters; each unfreezes a subset of the pretrained ones (plus the
task head, as every method does):

* FT^Top2 (Li & Liang 2021): the last two transformer blocks. On GPT-2 medium that
  is 2 × 12,596,224 = 25.19M parameters, the paper's Table 3 figure.
* BitFit (Zaken et al. 2021): every bias vector, LayerNorm biases included (BitFit's
  default ``bias`` selection).

Errors: one-line ``ValueError`` for bad settings or ``top_layers`` above the number
of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from lora.arch import find_blocks, module_name
from lora.params import mark_trainable
from lora.registry import MethodConfig, register_method


@register_method
@dataclass
class FTTop2Config(MethodConfig):
    """FT^Top2: fine-tune only the last ``top_layers`` transformer blocks (and the head).

    Attributes:
        top_layers: number of top blocks trained, ≥ 1 (2 in the paper).
    """

    name: ClassVar[str] = "ft_top2"
    top_layers: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.top_layers, int) or self.top_layers < 1:
            raise ValueError(f"top_layers must be an integer >= 1; got {self.top_layers!r}")

    def apply(self, model: nn.Module) -> nn.Module:
        blocks = find_blocks(model)
        n = len(blocks)
        if self.top_layers > n:
            raise ValueError(f"top_layers={self.top_layers} exceeds the model's {n} blocks")
        # Full dotted prefixes ("transformer.h.10.") so block 1 does not match block 10.
        path = module_name(model, blocks)
        top = tuple(f"{path}.{i}." for i in range(n - self.top_layers, n))
        mark_trainable(model, modules_to_save=self.modules_to_save, extra=top)
        return model


@register_method
@dataclass
class BitFitConfig(MethodConfig):
    """BitFit: train only the bias vectors (every parameter named ``*bias``) and the head."""

    name: ClassVar[str] = "bitfit"

    def apply(self, model: nn.Module) -> nn.Module:
        mark_trainable(model, bias="all", modules_to_save=self.modules_to_save, extra=())
        return model


__all__ = ["BitFitConfig", "FTTop2Config"]
