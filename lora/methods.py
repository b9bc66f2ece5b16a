"""Adaptation methods by name: one validated config class per method.

``make_method("lora", r=8, targets=["q", "v"]).apply(model)`` is how the harness
adapts a model; every method freezes the backbone itself and leaves the task head
trainable, so the trainer needs no method-specific code. Configs validate their
fields in ``__post_init__`` (as PEFT's ``LoraConfig`` does), so bad values fail with
a one-line ``ValueError`` before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from lora.arch import TARGET_NAMES, normalize_targets
from lora.inject import apply_lora
from lora.layers import INIT_SCHEMES
from lora.params import BIAS_MODES


@dataclass
class MethodConfig:
    """Base class of method configs.

    Attributes:
        modules_to_save: head modules trained fully under the method; ``None`` uses
            the architecture's head (:attr:`lora.arch.ArchSpec.head`).
    """

    name: ClassVar[str] = ""
    modules_to_save: list[str] | None = None

    def apply(self, model: nn.Module) -> nn.Module:
        """Adapt ``model`` in place and set ``requires_grad``; returns the model."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields plus ``method`` (the registry name)."""
        return {"method": self.name, **dataclasses.asdict(self)}


@dataclass
class FullFTConfig(MethodConfig):
    """Full fine-tuning (FT): every parameter is updated (paper §5.1)."""

    name: ClassVar[str] = "full_ft"

    def apply(self, model: nn.Module) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


@dataclass
class LoraConfig(MethodConfig):
    """LoRA (paper §4.1): rank-r updates on the chosen attention matrices.

    Attributes:
        r: rank r ≥ 1.
        lora_alpha: α > 0; the update is scaled by α/r.
        lora_dropout: dropout on the LoRA branch input, in [0, 1).
        targets: paper names among q, k, v, o, ffn_in, ffn_out.
        init: ``"kaiming"`` (loralib) or ``"gaussian"`` (paper text, N(0, 0.02²)).
        bias: ``"none"``, ``"all"`` or ``"lora_only"``.
        layers: block indices to adapt; ``None`` adapts all.
    """

    name: ClassVar[str] = "lora"
    r: int = 8
    lora_alpha: float = 8.0
    lora_dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q", "v"])
    init: str = "kaiming"
    bias: str = "none"
    layers: list[int] | None = None

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
        self.targets = list(normalize_targets(self.targets))

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
        )


METHODS: dict[str, type[MethodConfig]] = {
    FullFTConfig.name: FullFTConfig,
    LoraConfig.name: LoraConfig,
}


def register_method(cls: type[MethodConfig]) -> type[MethodConfig]:
    """Class decorator adding a :class:`MethodConfig` subclass to :data:`METHODS`."""
    METHODS[cls.name] = cls
    return cls


def make_method(name: str, **kwargs: Any) -> MethodConfig:
    """Build and validate the config of method ``name``.

    Raises:
        ValueError: unknown method (lists the known ones), unknown field for that
            method (lists its fields), or an invalid value (names the field).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(
            f"method {name!r} has no setting(s) {', '.join(unknown)}; "
            f"its settings: {', '.join(sorted(fields))}"
        )
    return cls(**kwargs)


# The baselines register themselves with @register_method; they subclass MethodConfig,
# so they are imported last.
import lora.adapters  # noqa: E402, F401
import lora.prefix  # noqa: E402, F401
import lora.selective  # noqa: E402, F401

__all__ = [
    "METHODS",
    "TARGET_NAMES",
    "FullFTConfig",
    "LoraConfig",
    "MethodConfig",
    "make_method",
    "register_method",
]
