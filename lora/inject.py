"""Inject LoRA into a Hugging Face model by the paper's matrix names (§4.2, §7.1).

``apply_lora(model, targets=["q", "v"], r=8, lora_alpha=16)`` wraps W_q and W_v of
every transformer block; on GPT-2 the fused ``c_attn`` is wrapped once with only the
q and v slices adapted.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from lora.arch import arch_spec, find_blocks, get_submodule, normalize_targets, set_submodule
from lora.layers import FusedLinear, Linear, LoRALayer
from lora.params import mark_trainable


def apply_lora(
    model: nn.Module,
    targets: Iterable[str] | str = ("q", "v"),
    r: int = 8,
    lora_alpha: float = 8,
    lora_dropout: float = 0.0,
    init: str = "kaiming",
    bias: str = "none",
    modules_to_save: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
) -> nn.Module:
    """Wrap the chosen matrices with LoRA and freeze everything else, in place.

    Args:
        model: a supported Hugging Face model (see :data:`lora.arch.ARCHITECTURES`).
        targets: paper names among q, k, v, o, ffn_in, ffn_out (``W_q`` aliases work).
        r: rank r ≥ 1.
        lora_alpha: α; the update is scaled by α/r.
        lora_dropout: dropout on the LoRA input branch.
        init: ``"kaiming"`` or ``"gaussian"`` initialisation of A (B = 0).
        bias: ``"none"``, ``"all"`` or ``"lora_only"`` (see :func:`mark_trainable`).
        modules_to_save: head modules trained fully; ``None`` = the architecture's head.
        layers: block indices to adapt; ``None`` = all.

    Returns:
        The same model, modified in place.

    Raises:
        ValueError: unknown architecture, target, bias mode or layer index, or ``r < 1``;
            the message lists the valid values. Raised before any module is replaced.
    """
    spec = arch_spec(model)
    names = normalize_targets(targets)
    blocks = find_blocks(model, spec)
    indices = list(range(len(blocks))) if layers is None else sorted(set(layers))
    bad = [i for i in indices if not 0 <= i < len(blocks)]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has blocks 0..{len(blocks) - 1}")
    if any(isinstance(m, LoRALayer) for m in model.modules()):
        raise ValueError("model already has LoRA layers; call merge_and_unload() first")
    kwargs = dict(lora_dropout=lora_dropout, init=init, fan_in_fan_out=spec.fan_in_fan_out)
    # Group targets by module so a fused projection is wrapped once with all its slices.
    by_path: dict[str, tuple[int, set[int | None]]] = {}
    for n in names:
        t = spec.targets[n]
        by_path.setdefault(t.path, (t.num_slices, set()))[1].add(t.slice_index)
    for i in indices:
        for path, (num_slices, slices) in by_path.items():
            base = get_submodule(blocks[i], path)
            if None in slices:
                new = Linear(base, r, lora_alpha, **kwargs)
            else:
                enable = tuple(s in slices for s in range(num_slices))
                new = FusedLinear(base, r, lora_alpha, enable=enable, **kwargs)
            set_submodule(blocks[i], path, new)
    mark_trainable(model, bias=bias, modules_to_save=modules_to_save)
    return model


def lora_layers(model: nn.Module) -> list[LoRALayer]:
    """All LoRA layers of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, LoRALayer)]


def merge_lora(model: nn.Module, keep_base: bool = True) -> nn.Module:
    """Merge every LoRA layer (W = W0 + ΔW); idempotent. See :meth:`LoRALayer.merge`."""
    for m in lora_layers(model):
        m.merge(keep_base=keep_base)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora`; idempotent."""
    for m in lora_layers(model):
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge LoRA into the base weights and put the plain base layers back.

    Returns a plain transformers model (no LoRA modules or parameters) whose outputs
    equal the adapted model's, ready for ``save_pretrained``.
    """
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALayer):
            m.merge(keep_base=False)
            set_submodule(model, name, m.base_layer)
    return model
