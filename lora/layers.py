"""LoRA layers (Hu et al. 2021, §4.1): one small class per layer type.

Each class wraps a frozen pretrained projection ``base_layer`` (``nn.Linear`` or
transformers' GPT-2 ``Conv1D``) and adds the low-rank update

    h = W0·x + (lora_alpha / r) · B·A·dropout(x)          (paper Eq. 3, §4.1)

with A ∈ R^{r×k}, B ∈ R^{d×r}, B = 0 at init so the wrapped layer starts equal to
the base layer. ``merge()`` folds the update into W0 (W = W0 + BA·α/r), after which
``forward`` is exactly the base layer: merged inference adds zero latency (§4.1,
"No Additional Inference Latency").

Variants, as small switches on the same layer (names follow peft's ``LoraConfig``):

* ``use_rslora``: scaling α/√r instead of α/r (rsLoRA, Kalajdzievski 2023, §3).
* ``use_dora``: DoRA (Liu et al. 2024, Eq. 5): W' = m · (W0 + ΔW) / ‖W0 + ΔW‖_row
  with a trainable magnitude m (out,) and the norm detached from the graph (§4.3).
* ``init="pissa"``: PiSSA (Meng et al. 2024, §3): A, B from the top-r SVD of W0,
  the residual W0 - (α/r)·B·A left in the base weight.

Mixed precision: on an fp16/bf16 base the adapter parameters are fp32 by default
(peft's ``autocast_adapter_dtype=True``); the branch runs in the adapter dtype and
its result is cast back to the base output dtype; merges are computed in fp32.

Merged-state safety: ``train()`` unmerges (a merged layer has no LoRA branch, so no
gradient would reach A, B), and ``state_dict()`` always holds the unmerged W0, so a
merged model's state loads into a fresh model without applying ΔW twice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INIT_SCHEMES = ("kaiming", "gaussian", "pissa")
HALF_DTYPES = (torch.float16, torch.bfloat16)


def _features(base: nn.Module, fan_in_fan_out: bool) -> tuple[int, int]:
    """(in_features, out_features) of a Linear (out, in) or Conv1D (in, out) weight."""
    w = base.weight
    return (w.shape[0], w.shape[1]) if fan_in_fan_out else (w.shape[1], w.shape[0])


def adapter_dtype(base_dtype: torch.dtype, autocast_adapter_dtype: bool = True) -> torch.dtype:
    """dtype of adapter parameters on a base of ``base_dtype``.

    fp32 when the base is fp16/bf16 and ``autocast_adapter_dtype`` (peft's default),
    so the optimizer and ``GradScaler`` see fp32 parameters; the base dtype otherwise.
    """
    return torch.float32 if autocast_adapter_dtype and base_dtype in HALF_DTYPES else base_dtype


def pissa_factors(
    weight: torch.Tensor, r: int, scaling: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PiSSA factors of one weight (Meng et al. 2024, §3; peft ``pissa_init``).

    Args:
        weight: W (out, in), any float dtype; the SVD runs in fp32.
        r: rank, ``1 <= r <= min(out, in)``.
        scaling: the layer's α/r (or α/√r); A and B absorb its inverse so that
            ``scaling·B·A`` is the top-r part of W.

    Returns:
        fp32 ``(A (r, in), B (out, r), residual (out, in))`` with
        ``residual + scaling·B·A == W`` up to rounding.

    Raises:
        ValueError: ``r`` larger than ``min(out, in)``.
    """
    _check_pissa_rank(r, *weight.shape)
    w = weight.detach().float()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = torch.sqrt(s[:r] / scaling)
    a = root[:, None] * vh[:r]
    b = u[:, :r] * root[None, :]
    return a, b, w - scaling * (b @ a)


def _check_pissa_rank(r: int, rows: int, cols: int) -> None:
    if r > min(rows, cols):
        raise ValueError(
            f"r={r} must be <= min(out, in)={min(rows, cols)} of every matrix for init='pissa'"
        )


def _state_dict_unmerged(module: LoRALayer, state_dict: dict, prefix: str, _meta) -> None:
    # A merged layer saves W0, not W0 + ΔW: loading into a fresh layer then applies ΔW once.
    key = prefix + "base_layer.weight"
    if module.merged and key in state_dict:
        state_dict[key] = module.unmerged_weight()


def _load_pre_unmerge(module: LoRALayer, *_args) -> None:
    # Loaded weights are unmerged (see above): unmerge first, re-merge after loading.
    module._remerge = module._merge_keep_base if module.merged else None
    module.unmerge()


def _load_post_remerge(module: LoRALayer, _incompatible) -> None:
    if module._remerge is not None:
        module.merge(keep_base=module._remerge)
    module._remerge = None


class LoRALayer(nn.Module):
    """Shared state and merge logic of the LoRA layers.

    Subclasses call :meth:`check` before ``super().__init__``, so a rejected setting
    raises before ``base_layer`` is frozen or edited.

    Args:
        base_layer: frozen projection with a 2-D ``weight``; its parameters are set to
            ``requires_grad=False``.
        r: rank r ≥ 1.
        lora_alpha: scaling numerator α; the update is scaled by α/r (§4.1).
        lora_dropout: dropout probability on the LoRA input branch only.
        init: ``"kaiming"`` (A ~ Kaiming-uniform(a=√5), loralib's default),
            ``"gaussian"`` (A ~ N(0, 0.02²), as the original GPT-2 and DeBERTa code),
            B = 0 in both; or ``"pissa"`` (A, B from the SVD of W0, see module doc).
        fan_in_fan_out: True when ``base_layer.weight`` is stored (in, out), as GPT-2's
            ``Conv1D`` does.
        use_rslora: scale by α/√r (rsLoRA) instead of α/r.
        use_dora: DoRA magnitude/direction decomposition (``Linear`` only).
        autocast_adapter_dtype: fp32 adapter parameters on an fp16/bf16 base.

    Raises:
        ValueError: see :meth:`check`.
    """

    @classmethod
    def check(
        cls,
        base_layer: nn.Module | None,
        r: int,
        lora_dropout: float = 0.0,
        init: str = "kaiming",
        fan_in_fan_out: bool = False,
        **_variants,
    ) -> None:
        """Raise the ``ValueError`` that building this layer would raise; changes nothing.

        Lets injection validate every target before it replaces any module. The base
        class checks the shared settings only and does not read ``base_layer``.

        Raises:
            ValueError: ``r < 1``, ``lora_dropout`` outside [0, 1), an unknown ``init``
                (:data:`INIT_SCHEMES`), or a subclass-specific setting.
        """
        if int(r) < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        if not 0.0 <= lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {lora_dropout}")
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {init!r}")

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        init: str = "kaiming",
        fan_in_fan_out: bool = False,
        use_rslora: bool = False,
        use_dora: bool = False,
        autocast_adapter_dtype: bool = True,
    ) -> None:
        super().__init__()
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.r = int(r)
        self.lora_alpha = lora_alpha
        self.use_rslora = bool(use_rslora)
        self.use_dora = bool(use_dora)
        self.scaling = lora_alpha / (math.sqrt(self.r) if use_rslora else self.r)
        self.fan_in_fan_out = fan_in_fan_out
        self.init = init
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.in_features, self.out_features = _features(base_layer, fan_in_fan_out)
        self.adapter_dtype = adapter_dtype(base_layer.weight.dtype, autocast_adapter_dtype)
        self.merged = False
        self._w0: torch.Tensor | None = None
        self._dora_norm: torch.Tensor | None = None
        self._merge_keep_base = True
        self._remerge: bool | None = None
        self.register_state_dict_post_hook(_state_dict_unmerged)
        self.register_load_state_dict_pre_hook(_load_pre_unmerge)
        self.register_load_state_dict_post_hook(_load_post_remerge)

    def _factory(self) -> dict:
        return {"device": self.base_layer.weight.device, "dtype": self.adapter_dtype}

    def _out_in(self, w: torch.Tensor) -> torch.Tensor:
        """Base-layout weight <-> (out, in) layout (a transpose for ``Conv1D``)."""
        return w.T if self.fan_in_fan_out else w

    def _init_lora(self) -> None:
        """Initialise A (per ``init``) and set B = 0 (§4.1); PiSSA also edits W0."""
        with torch.no_grad():
            if self.init == "pissa":
                self._init_pissa()
            else:
                if self.init == "kaiming":
                    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
                else:
                    nn.init.normal_(self.lora_A, std=0.02)
                nn.init.zeros_(self.lora_B)

    def _init_pissa(self) -> None:
        raise NotImplementedError

    def _delta(self) -> torch.Tensor:
        """ΔW in fp32, (out, in) layout."""
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        """ΔW = scaling·B·A in the base weight's layout and dtype.

        Computed in fp32 and cast back, so bf16/fp16 merges do not lose the update.
        Shape: (out, in), or (in, out) when ``fan_in_fan_out``. For DoRA this is the
        LoRA part only; :meth:`merge` also applies the magnitude.
        """
        return self._out_in(self._delta()).to(self.base_layer.weight.dtype)

    def _merged_weight(self, w0: torch.Tensor) -> torch.Tensor:
        """W0 (base layout and dtype) -> merged weight, computed in fp32."""
        w = self._out_in(w0.float()) + self._delta()
        if self.use_dora:
            self._dora_norm = w.norm(dim=1)
            w = w * (self.lora_magnitude_vector.float() / self._dora_norm)[:, None]
        return self._out_in(w).to(w0.dtype)

    @torch.no_grad()
    def unmerged_weight(self) -> torch.Tensor:
        """W0 in the base layout and dtype, whether merged or not (detached).

        Bit-exact when merged with ``keep_base=True``; otherwise recomputed from the
        merged weight in fp32 (exact up to rounding).
        """
        w = self.base_layer.weight.detach()
        if not self.merged:
            return w
        if self._w0 is not None:
            return self._w0
        v = self._out_in(w.float())
        if self.use_dora:
            v = v * (self._dora_norm / self.lora_magnitude_vector.float())[:, None]
        return self._out_in(v - self._delta()).to(w.dtype)

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
        self._merge_keep_base = keep_base
        with torch.no_grad():
            w.copy_(self._merged_weight(w.detach()))
        self.merged = True

    def unmerge(self) -> None:
        """Remove ΔW from the base weight; idempotent. Exact when merged with ``keep_base``."""
        if not self.merged:
            return
        with torch.no_grad():
            self.base_layer.weight.copy_(self.unmerged_weight())
        self._w0 = self._dora_norm = None
        self.merged = False

    def train(self, mode: bool = True) -> LoRALayer:
        """Set training mode; entering training unmerges, so A and B receive gradients."""
        if mode:
            self.unmerge()
        return super().train(mode)

    def lora_forward(
        self, x: torch.Tensor, base_result: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The branch added to the base output; shape (..., out_features), adapter dtype.

        ``base_result`` (the base layer's output for ``x``) lets DoRA reuse W0·x.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features), in the base output's dtype."""
        result = self.base_layer(x)
        if self.merged:
            return result
        return (result + self.lora_forward(x, result)).to(result.dtype)

    def extra_repr(self) -> str:
        variants = "".join(
            f", {n}=True" for n in ("use_rslora", "use_dora") if getattr(self, n, False)
        )
        return (
            f"in={self.in_features}, out={self.out_features}, r={self.r}, "
            f"lora_alpha={self.lora_alpha}{variants}, merged={self.merged}"
        )


class Linear(LoRALayer):
    """LoRA on a whole projection (``nn.Linear`` or ``Conv1D``).

    Parameters: ``lora_A`` (r, in_features), ``lora_B`` (out_features, r); with
    ``use_dora`` also ``lora_magnitude_vector`` (out_features,), initialised to the
    row norms ‖W0 + scaling·B·A‖ (DoRA §4.1), so the layer starts equal to the base.
    All in :attr:`adapter_dtype`.

    Raises:
        ValueError: as :meth:`LoRALayer.check`, or ``init="pissa"`` with r > min(out, in).
    """

    @classmethod
    def check(cls, base_layer: nn.Module, r: int, **kwargs) -> None:
        super().check(base_layer, r, **kwargs)
        if kwargs.get("init") == "pissa":
            _check_pissa_rank(r, *_features(base_layer, kwargs.get("fan_in_fan_out", False)))

    def __init__(self, base_layer: nn.Module, r: int, lora_alpha: float, **kwargs) -> None:
        self.check(base_layer, r, **kwargs)
        super().__init__(base_layer, r, lora_alpha, **kwargs)
        factory = self._factory()
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, self.r, **factory))
        if self.use_dora:
            self.lora_magnitude_vector = nn.Parameter(torch.ones(self.out_features, **factory))
        if not base_layer.weight.is_meta:
            self._init_lora()
            if self.use_dora:
                with torch.no_grad():  # after PiSSA, which changes W0
                    w = self._out_in(base_layer.weight.float()) + self._delta()
                    self.lora_magnitude_vector.copy_(w.norm(dim=1))

    def _init_pissa(self) -> None:
        w = self.base_layer.weight
        a, b, residual = pissa_factors(self._out_in(w), self.r, self.scaling)
        self.lora_A.copy_(a)
        self.lora_B.copy_(b)
        w.copy_(self._out_in(residual).to(w.dtype))

    def _delta(self) -> torch.Tensor:
        return (self.lora_B.float() @ self.lora_A.float()) * self.scaling

    def lora_forward(
        self, x: torch.Tensor, base_result: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x.to(self.lora_A.dtype)
        h = self.lora_dropout(x)
        # scale the r-wide intermediate, not the d-wide output: less work, same result
        lora = F.linear(F.linear(h, self.lora_A) * self.scaling, self.lora_B)
        if not self.use_dora:
            return lora
        # DoRA (Liu et al. 2024, Eq. 5; peft's formula): m/‖W0 + sBA‖ · (W0 + sBA)·h - W0·x,
        # the norm detached (§4.3) so it gets no gradient.
        w0 = self._out_in(self.base_layer.weight).to(x.dtype)
        with torch.no_grad():
            norm = (w0 + self.scaling * (self.lora_B @ self.lora_A)).norm(dim=1)
        mag = self.lora_magnitude_vector / norm
        dropout_on = self.training and isinstance(self.lora_dropout, nn.Dropout)
        if base_result is None or dropout_on:
            base = F.linear(h, w0)  # W0·dropout(x), no bias
        else:
            bias = getattr(self.base_layer, "bias", None)
            base = (base_result if bias is None else base_result - bias).to(x.dtype)
        return (mag - 1) * base + mag * lora


class FusedLinear(LoRALayer):
    """LoRA on chosen output slices of a fused projection (GPT-2 ``c_attn`` = [q|k|v]).

    Equivalent to loralib's ``MergedLinear(enable_lora=[True, False, True])``: each
    enabled slice i has its own A_i (r, in) and B_i (out/n, r); disabled slices
    (e.g. W_k) are untouched. ``init="pissa"`` factors each enabled slice separately.

    Args:
        enable: one bool per equal output slice, e.g. ``(True, False, True)`` for q, v.

    Parameters: ``lora_A`` (r·n_enabled, in), ``lora_B`` (n_enabled·out/n, r).

    Raises:
        ValueError: as :meth:`LoRALayer.check`; out_features not divisible by
            ``len(enable)``, no slice enabled, ``use_dora`` (DoRA is implemented for
            whole projections only), or ``init="pissa"`` with r > min(out/n, in).
    """

    @classmethod
    def check(cls, base_layer: nn.Module, r: int, enable: tuple[bool, ...], **kwargs) -> None:
        super().check(base_layer, r, **kwargs)
        if kwargs.get("use_dora"):
            raise ValueError("use_dora must be False on fused projections (GPT-2 c_attn slices)")
        n_in, n_out = _features(base_layer, kwargs.get("fan_in_fan_out", False))
        if not enable or n_out % len(enable) or not any(enable):
            raise ValueError(
                f"enable={tuple(enable)} must contain a True and divide out_features="
                f"{n_out} into equal slices"
            )
        if kwargs.get("init") == "pissa":
            _check_pissa_rank(r, n_out // len(enable), n_in)

    def __init__(
        self, base_layer: nn.Module, r: int, lora_alpha: float, enable: tuple[bool, ...], **kwargs
    ) -> None:
        self.check(base_layer, r, enable, **kwargs)
        super().__init__(base_layer, r, lora_alpha, **kwargs)
        self.enable = tuple(bool(e) for e in enable)
        self.slice_size = self.out_features // len(enable)
        n = sum(self.enable)
        factory = self._factory()
        self.lora_A = nn.Parameter(torch.empty(self.r * n, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(n * self.slice_size, self.r, **factory))
        self.register_buffer(
            "slice_ids",
            torch.tensor([i for i, e in enumerate(self.enable) if e], device=factory["device"]),
            persistent=False,
        )
        if not base_layer.weight.is_meta:
            self._init_lora()

    def _init_pissa(self) -> None:
        w = self.base_layer.weight
        full = self._out_in(w.float()).clone()  # (out, in)
        size, r = self.slice_size, self.r
        for e, s in enumerate(self.slice_ids.tolist()):
            rows = slice(s * size, (s + 1) * size)
            a, b, full[rows] = pissa_factors(full[rows], r, self.scaling)
            self.lora_A[e * r : (e + 1) * r] = a
            self.lora_B[e * size : (e + 1) * size] = b
        w.copy_(self._out_in(full).to(w.dtype))

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

    def _delta(self) -> torch.Tensor:
        # Column j of ΔW (out, in) is the update for unit input e_j: reuse the slice maps.
        a = self.lora_A.float().T  # (in, n·r)
        n = len(self.slice_ids)
        b = self.lora_B.float().view(n, self.slice_size, self.r)
        deltas = torch.einsum("ier,eor->ieo", a.unflatten(-1, (n, self.r)), b)
        return (self._scatter(deltas) * self.scaling).T  # (out, in)

    def lora_forward(
        self, x: torch.Tensor, base_result: torch.Tensor | None = None
    ) -> torch.Tensor:
        a = F.linear(self.lora_dropout(x.to(self.lora_A.dtype)), self.lora_A) * self.scaling
        return self._scatter(self._slice_deltas(a))
