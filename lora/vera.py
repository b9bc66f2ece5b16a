"""VeRA: vector-based random matrix adaptation (Kopiczko et al. 2024, arXiv 2310.11454).

One pair of frozen random matrices A (r, k) and B (d, r) is shared by every adapted
layer; each layer trains only two scaling vectors d (r,) and b (out,) (VeRA §3, Eq. 1):

    h = W0·x + Λ_b·B·Λ_d·A·dropout(x)

As in peft, the shared pair is sized for the largest adapted (out, in) and each layer
uses its top-left slice, so layers of different shapes share one pair. A and B are
Kaiming-uniform from ``torch.Generator().manual_seed(projection_prng_key)`` (A drawn
first), the same draw as peft's ``VeraConfig``; d = ``d_initial`` and b = 0 at init,
so the adapted model starts equal to the base (VeRA §3.1). Trainable parameters per
adapted matrix: r + d_out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora.arch import canonical_targets, set_submodule
from lora.inject import freeze_base, plan_injection
from lora.layers import LoRALayer, _features, adapter_dtype
from lora.params import BIAS_MODES
from lora.registry import MethodConfig, register_method

VERA_PARAM_KEY = "vera_lambda_"


def kaiming_uniform(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """fp32 tensor of ``shape`` ~ U(-√(6/fan_in), √(6/fan_in)), fan_in = ``shape[1]``.

    Kaiming-uniform with gain √2 drawn from ``generator`` (VeRA §3.1; peft's
    ``_kaiming_init``), on the CPU so the draw does not depend on the device.
    """
    bound = math.sqrt(6.0 / shape[1])
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


class VeraLinear(LoRALayer):
    """VeRA on a whole projection (``nn.Linear`` or ``Conv1D``).

    Args:
        base_layer: frozen projection, weight (out, in) or (in, out) if ``fan_in_fan_out``.
        vera_A: shared frozen (r, ≥in) tensor; registered as a buffer, not copied.
        vera_B: shared frozen (≥out, r) tensor.
        r: rank, equal to ``vera_A.shape[0]``.
        vera_dropout: dropout on the branch input, in [0, 1).
        d_initial: initial value of every entry of d.
        fan_in_fan_out: True for GPT-2 ``Conv1D``.
        autocast_adapter_dtype: fp32 vectors and branch on an fp16/bf16 base.

    Parameters: ``vera_lambda_d`` (r,), ``vera_lambda_b`` (out,), in the adapter dtype.
    Merge/unmerge, ``train()`` and ``state_dict`` behave as in :class:`LoRALayer`.

    Raises:
        ValueError: ``vera_A``/``vera_B`` too small for this layer or of another rank,
            or as :meth:`LoRALayer.check` (``r``, ``vera_dropout``). Raised before
            ``base_layer`` is frozen.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        vera_A: torch.Tensor,
        vera_B: torch.Tensor,
        r: int,
        vera_dropout: float = 0.0,
        d_initial: float = 0.1,
        fan_in_fan_out: bool = False,
        autocast_adapter_dtype: bool = True,
    ) -> None:
        self.check(base_layer, r, lora_dropout=vera_dropout)
        d_in, d_out = _features(base_layer, fan_in_fan_out)
        if vera_A.shape[0] != r or vera_B.shape[1] != r:
            raise ValueError(f"vera_A/vera_B rank must equal r={r}")
        if vera_A.shape[1] < d_in or vera_B.shape[0] < d_out:
            raise ValueError(
                f"vera_A {tuple(vera_A.shape)} / vera_B {tuple(vera_B.shape)} too small for "
                f"a layer of in={d_in}, out={d_out}"
            )
        super().__init__(
            base_layer, r, lora_alpha=r, lora_dropout=vera_dropout, fan_in_fan_out=fan_in_fan_out,
            autocast_adapter_dtype=autocast_adapter_dtype,
        )  # fmt: skip
        self.scaling = 1.0  # VeRA has no α: the vectors carry the scale
        self.register_buffer("vera_A", vera_A)
        self.register_buffer("vera_B", vera_B)
        factory = self._factory()
        self.vera_lambda_d = nn.Parameter(torch.full((self.r,), float(d_initial), **factory))
        self.vera_lambda_b = nn.Parameter(torch.zeros(self.out_features, **factory))

    def _delta(self) -> torch.Tensor:
        a = self.vera_A[:, : self.in_features].float() * self.vera_lambda_d.float()[:, None]
        b = self.vera_B[: self.out_features].float() * self.vera_lambda_b.float()[:, None]
        return b @ a

    def lora_forward(
        self, x: torch.Tensor, base_result: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.lora_dropout(x.to(self.vera_lambda_d.dtype))
        a = self.vera_A[:, : self.in_features].to(x.dtype)
        b = self.vera_B[: self.out_features].to(x.dtype)
        return self.vera_lambda_b * F.linear(self.vera_lambda_d * F.linear(x, a), b)


def apply_vera(
    model: nn.Module,
    targets: Iterable[str] | str = ("q", "v"),
    r: int = 256,
    vera_dropout: float = 0.0,
    d_initial: float = 0.1,
    projection_prng_key: int = 0,
    bias: str = "none",
    modules_to_save: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
    autocast_adapter_dtype: bool = True,
) -> nn.Module:
    """Wrap the chosen matrices with VeRA and freeze everything else, in place.

    Args:
        model: a supported Hugging Face model (see :data:`lora.arch.ARCHITECTURES`).
        targets: as :func:`lora.inject.apply_lora` (paper names, module names, regex,
            ``"all-linear"``), whole projections only.
        r: rank of the shared random matrices (VeRA uses large r, e.g. 256).
        vera_dropout: dropout on the branch input.
        d_initial: initial value of d (VeRA §3.1: small, 0.1).
        projection_prng_key: seed of the shared A, B.
        bias, modules_to_save, layers: as in :func:`lora.inject.apply_lora`.
        autocast_adapter_dtype: fp32 adapter tensors on an fp16/bf16 base.

    Returns:
        The same model; shared A (r, max_in), B (max_out, r) in the adapter dtype.

    Raises:
        ValueError: unknown target or bias (see :func:`lora.inject.resolve_targets`),
            layer index out of range, a target that is a slice of a fused projection
            (GPT-2 q, k, v), or a model that already has LoRA/VeRA layers. Raised
            before any module is replaced.
    """
    plan = plan_injection(model, targets, layers, bias)
    fused = [n for n, enable in plan.items() if enable is not None]
    if fused:
        raise ValueError(
            f"VeRA targets must be whole projections; {fused[0]} would be adapted on output "
            "slices only (GPT-2 c_attn q/k/v); target o, ffn_in, ffn_out or module names"
        )
    LoRALayer.check(None, r, lora_dropout=vera_dropout)
    bases = {n: model.get_submodule(n) for n in plan}
    shapes = [_features(b, isinstance(b, Conv1D)) for b in bases.values()]
    max_in, max_out = (max(s[j] for s in shapes) for j in (0, 1))
    g = torch.Generator(device="cpu").manual_seed(int(projection_prng_key))
    vera_A, vera_B = kaiming_uniform((r, max_in), g), kaiming_uniform((max_out, r), g)
    w = next(iter(bases.values())).weight
    dtype = adapter_dtype(w.dtype, autocast_adapter_dtype)
    vera_A, vera_B = vera_A.to(w.device, dtype), vera_B.to(w.device, dtype)
    for name, base in bases.items():
        new = VeraLinear(
            base, vera_A, vera_B, r, vera_dropout=vera_dropout, d_initial=d_initial,
            fan_in_fan_out=isinstance(base, Conv1D), autocast_adapter_dtype=autocast_adapter_dtype,
        )  # fmt: skip
        set_submodule(model, name, new)
    return freeze_base(model, bias, modules_to_save, trainable=(VERA_PARAM_KEY,))


@register_method
@dataclass
class VeraConfig(MethodConfig):
    """VeRA (Kopiczko et al. 2024): frozen shared random A, B; trainable d, b.

    Attributes:
        r: rank of the shared random matrices, ≥ 1 (paper: 256 and up).
        targets: paper names of whole projections to adapt.
        vera_dropout: dropout on the branch input, in [0, 1).
        d_initial: initial value of d, > 0 (paper §3.1: 0.1).
        projection_prng_key: seed of the shared A and B.
        bias: ``"none"``, ``"all"`` or ``"lora_only"``.
        layers: block indices to adapt; ``None`` adapts all.
    """

    name: ClassVar[str] = "vera"
    r: int = 256
    targets: list[str] | str = field(default_factory=lambda: ["q", "v"])
    vera_dropout: float = 0.0
    d_initial: float = 0.1
    projection_prng_key: int = 0
    bias: str = "none"
    layers: list[int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be an integer >= 1; got {self.r!r}")
        if not 0.0 <= self.vera_dropout < 1.0:
            raise ValueError(f"vera_dropout must be in [0, 1); got {self.vera_dropout!r}")
        if not self.d_initial > 0:
            raise ValueError(f"d_initial must be > 0; got {self.d_initial!r}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"bias must be one of {', '.join(BIAS_MODES)}; got {self.bias!r}")
        self.targets = canonical_targets(self.targets)  # names, regex or all-linear

    def apply(self, model: nn.Module) -> nn.Module:
        return apply_vera(
            model,
            targets=self.targets,
            r=self.r,
            vera_dropout=self.vera_dropout,
            d_initial=self.d_initial,
            projection_prng_key=self.projection_prng_key,
            bias=self.bias,
            modules_to_save=self.modules_to_save,
            layers=self.layers,
            autocast_adapter_dtype=self.autocast_adapter_dtype,
        )
