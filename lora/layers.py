"""LoRA layers (Hu et al. 2021, §4.1): one small class per layer type.

Each class wraps a frozen pretrained projection ``base_layer`` (``nn.Linear`` or
transformers' GPT-2 ``Conv1D``) and adds the low-rank update

    h = W0·x + (lora_alpha / r) · B·A·dropout(x)          (paper Eq. 3, §4.1)

with A ∈ R^{r×k}, B ∈ R^{d×r}, B = 0 at init so the wrapped layer starts equal to
the base layer. ``merge()`` folds the update into W0 (W = W0 + BA·α/r), after which
``forward`` is exactly the base layer: merged inference adds zero latency (§4.1,
"No Additional Inference Latency").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INIT_SCHEMES = ("kaiming", "gaussian")


def _features(base: nn.Module, fan_in_fan_out: bool) -> tuple[int, int]:
    """(in_features, out_features) of a Linear (out, in) or Conv1D (in, out) weight."""
    w = base.weight
    return (w.shape[0], w.shape[1]) if fan_in_fan_out else (w.shape[1], w.shape[0])


class LoRALayer(nn.Module):
    """Shared state and merge logic of the LoRA layers.

    Args:
        base_layer: frozen projection with a 2-D ``weight``; its parameters are set to
            ``requires_grad=False``.
        r: rank r ≥ 1.
        lora_alpha: scaling numerator α; the update is scaled by α/r (§4.1).
        lora_dropout: dropout probability on the LoRA input branch only.
        init: ``"kaiming"`` (A ~ Kaiming-uniform(a=√5), loralib's default) or
            ``"gaussian"`` (A ~ N(0, 0.02²), as the original GPT-2 and DeBERTa code).
            B is zero in both.
        fan_in_fan_out: True when ``base_layer.weight`` is stored (in, out), as GPT-2's
            ``Conv1D`` does.

    Raises:
        ValueError: ``r < 1``, ``lora_dropout`` outside [0, 1) or an unknown ``init``.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        init: str = "kaiming",
        fan_in_fan_out: bool = False,
    ) -> None:
        super().__init__()
        if int(r) < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        if not 0.0 <= lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {lora_dropout}")
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {init!r}")
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.r = int(r)
        self.lora_alpha = lora_alpha
        self.scaling = lora_alpha / self.r
        self.fan_in_fan_out = fan_in_fan_out
        self.init = init
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.in_features, self.out_features = _features(base_layer, fan_in_fan_out)
        self.merged = False
        self._w0: torch.Tensor | None = None

    def _init_lora(self) -> None:
        """Initialise A (per ``init``) and set B = 0 (§4.1)."""
        with torch.no_grad():
            if self.init == "kaiming":
                nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            else:
                nn.init.normal_(self.lora_A, std=0.02)
            nn.init.zeros_(self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α/r)·B·A in the base weight's layout and dtype.

        Computed in fp32 and cast back, so bf16/fp16 merges do not lose the update.
        Shape: (out, in), or (in, out) when ``fan_in_fan_out``.
        """
        raise NotImplementedError

    def merge(self, keep_base: bool = True) -> None:
        """Fold ΔW into the base weight; idempotent.

        Args:
            keep_base: keep a copy of W0 so that :meth:`unmerge` restores it bit for
                bit. ``False`` saves that memory and unmerges by subtraction instead.
        """
        if self.merged:
            return
        w = self.base_layer.weight
        self._w0 = w.detach().clone() if keep_base else None
        with torch.no_grad():
            w.copy_((w.float() + self.delta_weight().float()).to(w.dtype))
        self.merged = True

    def unmerge(self) -> None:
        """Remove ΔW from the base weight; idempotent. Exact when merged with ``keep_base``."""
        if not self.merged:
            return
        w = self.base_layer.weight
        with torch.no_grad():
            if self._w0 is not None:
                w.copy_(self._w0)
            else:
                w.copy_((w.float() - self.delta_weight().float()).to(w.dtype))
        self._w0 = None
        self.merged = False

    def lora_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The update (α/r)·B·A·dropout(x); shape (..., out_features)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features)."""
        result = self.base_layer(x)
        if self.merged:
            return result
        return result + self.lora_forward(x).to(result.dtype)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, r={self.r}, "
            f"lora_alpha={self.lora_alpha}, merged={self.merged}"
        )


class Linear(LoRALayer):
    """LoRA on a whole projection (``nn.Linear`` or ``Conv1D``).

    Parameters: ``lora_A`` (r, in_features), ``lora_B`` (out_features, r).
    """

    def __init__(self, base_layer: nn.Module, r: int, lora_alpha: float, **kwargs) -> None:
        super().__init__(base_layer, r, lora_alpha, **kwargs)
        w = base_layer.weight
        factory = {"device": w.device, "dtype": w.dtype}
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, self.r, **factory))
        if not w.is_meta:
            self._init_lora()

    def delta_weight(self) -> torch.Tensor:
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling
        return (delta.T if self.fan_in_fan_out else delta).to(self.base_layer.weight.dtype)

    def lora_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lora_dropout(x.to(self.lora_A.dtype))
        # scale the r-wide intermediate, not the d-wide output: less work, same result
        return F.linear(F.linear(x, self.lora_A) * self.scaling, self.lora_B)


class FusedLinear(LoRALayer):
    """LoRA on chosen output slices of a fused projection (GPT-2 ``c_attn`` = [q|k|v]).

    Equivalent to loralib's ``MergedLinear(enable_lora=[True, False, True])``: each
    enabled slice i has its own A_i (r, in) and B_i (out/n, r); disabled slices
    (e.g. W_k) are untouched.

    Args:
        enable: one bool per equal output slice, e.g. ``(True, False, True)`` for q, v.

    Parameters: ``lora_A`` (r·n_enabled, in), ``lora_B`` (n_enabled·out/n, r).

    Raises:
        ValueError: out_features not divisible by ``len(enable)``, or no slice enabled.
    """

    def __init__(
        self, base_layer: nn.Module, r: int, lora_alpha: float, enable: tuple[bool, ...], **kwargs
    ) -> None:
        super().__init__(base_layer, r, lora_alpha, **kwargs)
        if self.out_features % len(enable) or not any(enable):
            raise ValueError(
                f"enable={tuple(enable)} must contain a True and divide out_features="
                f"{self.out_features} into equal slices"
            )
        self.enable = tuple(bool(e) for e in enable)
        self.slice_size = self.out_features // len(enable)
        n = sum(self.enable)
        w = base_layer.weight
        factory = {"device": w.device, "dtype": w.dtype}
        self.lora_A = nn.Parameter(torch.empty(self.r * n, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(n * self.slice_size, self.r, **factory))
        self.register_buffer(
            "slice_ids",
            torch.tensor([i for i, e in enumerate(self.enable) if e], device=w.device),
            persistent=False,
        )
        if not w.is_meta:
            self._init_lora()

    def _slice_deltas(self, a: torch.Tensor) -> torch.Tensor:
        """a: (..., n_enabled·r) -> per-slice B_i·a_i, shape (..., n_enabled, slice_size)."""
        n = len(self.slice_ids)
        b = self.lora_B.view(n, self.slice_size, self.r)
        return torch.einsum("...er,eor->...eo", a.unflatten(-1, (n, self.r)), b.to(a.dtype))

    def _scatter(self, deltas: torch.Tensor) -> torch.Tensor:
        """(..., n_enabled, slice_size) -> (..., out_features) with zeros in disabled slices."""
        full = deltas.new_zeros(*deltas.shape[:-2], len(self.enable), self.slice_size)
        full[..., self.slice_ids, :] = deltas
        return full.flatten(-2)

    def delta_weight(self) -> torch.Tensor:
        # Column j of ΔW (out, in) is the update for unit input e_j: reuse the slice maps.
        a = self.lora_A.float().T  # (in, n·r)
        n = len(self.slice_ids)
        b = self.lora_B.float().view(n, self.slice_size, self.r)
        deltas = torch.einsum("ier,eor->ieo", a.unflatten(-1, (n, self.r)), b)
        delta = self._scatter(deltas) * self.scaling  # (in, out)
        return (delta if self.fan_in_fan_out else delta.T).to(self.base_layer.weight.dtype)

    def lora_forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.linear(self.lora_dropout(x.to(self.lora_A.dtype)), self.lora_A) * self.scaling
        return self._scatter(self._slice_deltas(a))
