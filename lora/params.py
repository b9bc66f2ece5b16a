"""Which parameters train, and how many there are.

The paper's tables count only the parameters a method adds or unfreezes; the task
head is trained under every method but not counted (paper Table 2; microsoft/LoRA
issue #16). We therefore report three numbers (:class:`ParamCounts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lora.arch import arch_spec
from lora.layers import HALF_DTYPES, LoRALayer

BIAS_MODES = ("none", "all", "lora_only")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of an adapted model (numbers of scalars).

    Attributes:
        method: trainable parameters excluding the task head; what the paper's
            tables report (e.g. 294,912 for LoRA r=8 on W_q, W_v of RoBERTa-base).
        trainable: all parameters with ``requires_grad``, task head included.
        total: every parameter of the model, frozen or not.
    """

    method: int
    trainable: int
    total: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def default_head(model: nn.Module) -> tuple[str, ...]:
    """Names of the task-head modules of ``model``'s architecture (``modules_to_save``)."""
    return arch_spec(model).head


def _in_head(name: str, head: Iterable[str]) -> bool:
    parts = name.split(".")
    return any(h in parts for h in head)


def mark_trainable(
    model: nn.Module,
    bias: str = "none",
    modules_to_save: Iterable[str] | None = None,
    extra: Iterable[str] = ("lora_",),
) -> None:
    """Freeze everything except method parameters, the task head and chosen biases.

    Mirrors loralib's ``mark_only_lora_as_trainable`` and adds the head.

    Args:
        model: model after injection.
        bias: ``"none"``; ``"all"`` (every parameter named ``*bias``); ``"lora_only"``
            (biases of the LoRA-wrapped projections).
        modules_to_save: module names (path components) trained fully, e.g.
            ``("classifier",)``; ``None`` uses the architecture's head.
        extra: substrings of parameter names that stay trainable (``"lora_"`` for LoRA).

    Raises:
        ValueError: unknown ``bias`` mode.
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {', '.join(BIAS_MODES)}; got {bias!r}")
    head = tuple(default_head(model) if modules_to_save is None else modules_to_save)
    extra = tuple(extra)
    for name, p in model.named_parameters():
        p.requires_grad_(_in_head(name, head) or any(s in name for s in extra))
    if bias == "all":
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(True)
    elif bias == "lora_only":
        for m in model.modules():
            if isinstance(m, LoRALayer) and getattr(m.base_layer, "bias", None) is not None:
                m.base_layer.bias.requires_grad_(True)


def cast_adapter_dtype(
    model: nn.Module, keys: Iterable[str], dtype: torch.dtype = torch.float32
) -> list[str]:
    """Upcast the fp16/bf16 parameters a method added to ``dtype`` (fp32), in place.

    peft's ``autocast_adapter_dtype=True``: on a half-precision base model the small
    trainable method parameters are kept in fp32, so their gradients are fp32 and the
    standard fp16 recipe (``torch.amp.GradScaler``, HF Trainer ``fp16=True``) can
    unscale them; a GradScaler refuses fp16 gradients ("Attempting to unscale FP16
    gradients"). Call it at the end of a method's ``apply`` when
    ``MethodConfig.autocast_adapter_dtype`` is True (adapters and prefixes do; LoRA
    and VeRA layers create their parameters in fp32 instead, see
    :func:`lora.layers.adapter_dtype`).

    Contract for the modules owning these parameters: their forward casts its input
    to the parameter dtype and its result back to the input's (base) dtype, so the
    frozen base model still runs in fp16/bf16.

    Only parameters whose name contains one of ``keys`` and whose dtype is fp16 or
    bf16 are cast; fp32/fp64 parameters, the frozen base model and the task head are
    left alone. The ``Parameter`` objects are kept (``.data`` is replaced), so ties
    and existing references stay valid.

    Args:
        model: an adapted model.
        keys: substrings of the method's parameter names, e.g. ``("lora_",)``,
            ``("adapter_",)``, ``("prefix_tuning.",)``.
        dtype: target dtype, a floating dtype (fp32 by default).

    Returns:
        Names of the parameters that were cast.

    Raises:
        ValueError: ``dtype`` is not a floating-point dtype.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"dtype must be a floating torch.dtype such as torch.float32; got {dtype!r}"
        )
    keys = tuple(keys)
    cast = []
    for name, p in model.named_parameters():
        if p.dtype in HALF_DTYPES and p.dtype != dtype and any(k in name for k in keys):
            p.data = p.data.to(dtype)
            cast.append(name)
    return cast


def count_parameters(model: nn.Module, modules_to_save: Iterable[str] | None = None) -> ParamCounts:
    """Count method / trainable / total parameters (works on the meta device).

    Args:
        model: an adapted model whose ``requires_grad`` flags are final.
        modules_to_save: head module names excluded from ``method``; ``None`` uses the
            architecture's head.
    """
    head = tuple(default_head(model) if modules_to_save is None else modules_to_save)
    method = trainable = total = 0
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            if not _in_head(name, head):
                method += p.numel()
    return ParamCounts(method=method, trainable=trainable, total=total)
