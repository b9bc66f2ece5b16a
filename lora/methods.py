"""Adaptation methods by name: one validated config class per method.

``make_method("lora", r=8, targets=["q", "v"]).apply(model)`` is how the harness
adapts a model; every method freezes the backbone itself and leaves the task head
trainable, so the trainer needs no method-specific code. Configs validate their
fields in ``__post_init__`` (as PEFT's ``LoraConfig`` does), so bad values fail with
a one-line ``ValueError`` before any model is loaded.

The registry base (:class:`MethodConfig`, :data:`METHODS`, :func:`register_method`,
:func:`meta_skeleton`) lives in :mod:`lora.registry` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

# The baselines register themselves (lora.registry.register_method) on import, so
# importing them here puts every method in METHODS before make_method runs.
import lora.adapters  # noqa: F401
import lora.prefix  # noqa: F401
import lora.selective  # noqa: F401
import lora.vera  # noqa: F401
from lora.arch import TARGET_NAMES, canonical_targets
from lora.compose import compose_method
from lora.inject import apply_lora
from lora.layers import INIT_SCHEMES
from lora.params import BIAS_MODES
from lora.registry import METHODS, MethodConfig, build_method, meta_skeleton, register_method


@register_method
@dataclass
class FullFTConfig(MethodConfig):
    """Full fine-tuning (FT): every parameter is updated (paper §5.1)."""

    name: ClassVar[str] = "full_ft"

    def apply(self, model: nn.Module) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


@register_method
@dataclass
class LoraConfig(MethodConfig):
    """LoRA (paper §4.1): rank-r updates on the chosen attention matrices.

    Attributes:
        r: rank r ≥ 1.
        lora_alpha: α > 0; the update is scaled by α/r.
        lora_dropout: dropout on the LoRA branch input, in [0, 1).
        targets: paper names among q, k, v, o, ffn_in, ffn_out, gate, up, down, module
            names, a regex string or ``"all-linear"`` (see :func:`lora.apply_lora`).
        init: ``"kaiming"`` (loralib), ``"gaussian"`` (paper text, N(0, 0.02²)) or
            ``"pissa"`` (A, B from the top-r SVD of W0, residual in the base; PiSSA §3).
        bias: ``"none"``, ``"all"`` or ``"lora_only"``.
        layers: block indices to adapt; ``None`` adapts all.
        use_rslora: scale by α/√r instead of α/r (rsLoRA, Kalajdzievski 2023).
        use_dora: DoRA magnitude/direction decomposition (Liu et al. 2024); not on
            GPT-2's fused ``c_attn`` slices.
        loraplus_lr_ratio: LoRA+ (Hayou et al. 2024): B's learning rate is this times
            A's; ``None`` = plain LoRA. Read by the trainer through
            :func:`lora.loraplus.loraplus_param_groups`; it does not change the model.
    """

    name: ClassVar[str] = "lora"
    r: int = 8
    lora_alpha: float = 8.0
    lora_dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q", "v"])
    init: str = "kaiming"
    bias: str = "none"
    layers: list[int] | None = None
    use_rslora: bool = False
    use_dora: bool = False
    loraplus_lr_ratio: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be an integer >= 1; got {self.r!r}")
        if self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be > 0; got {self.lora_alpha!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1); got {self.lora_dropout!r}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}; got {self.init!r}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"bias must be one of {', '.join(BIAS_MODES)}; got {self.bias!r}")
        if self.loraplus_lr_ratio is not None and not self.loraplus_lr_ratio > 0:
            raise ValueError(
                f"loraplus_lr_ratio must be > 0 or None; got {self.loraplus_lr_ratio!r}"
            )
        self.targets = canonical_targets(self.targets)  # names, regex or all-linear

    def apply(self, model: nn.Module) -> nn.Module:
        return apply_lora(
            model,
            targets=self.targets,
            r=self.r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            init=self.init,
            bias=self.bias,
            modules_to_save=self.modules_to_save,
            layers=self.layers,
            use_rslora=self.use_rslora,
            use_dora=self.use_dora,
            autocast_adapter_dtype=self.autocast_adapter_dtype,
        )


def make_method(name: str, **kwargs: Any) -> MethodConfig:
    """Build and validate the config of method ``name``.

    ``"a+b"`` composes methods (paper Table 15's LoRA+PE): each part's settings are a
    mapping under its name, ``make_method("lora+prefix_embed", lora={"r": 8},
    prefix_embed={"l_p": 8, "l_i": 4})``; see :mod:`lora.compose`.

    Raises:
        ValueError: unknown method (lists the known ones), unknown field for that
            method (lists its fields), an invalid value (names the field), or an
            invalid composition.
    """
    if isinstance(name, str) and "+" in name:
        return compose_method(name, **kwargs)
    return build_method(name, **kwargs)


__all__ = [
    "METHODS",
    "TARGET_NAMES",
    "FullFTConfig",
    "LoraConfig",
    "MethodConfig",
    "make_method",
    "meta_skeleton",
    "register_method",
]
