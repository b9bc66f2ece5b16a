"""Inject LoRA into a Hugging Face model by the paper's matrix names (§4.2, §7.1).

``apply_lora(model, targets=["q", "v"], r=8, lora_alpha=16)`` wraps W_q and W_v of
every transformer block; on GPT-2 the fused ``c_attn`` is wrapped once with only the
q and v slices adapted. ``targets`` also takes module names, a regex or
``"all-linear"`` (see :func:`lora.arch.parse_targets`), as peft's ``target_modules``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from torch import nn
from transformers.pytorch_utils import Conv1D

from lora.arch import (
    _VALID_TARGETS,
    arch_spec,
    find_blocks,
    find_spec,
    model_head,
    parse_targets,
    set_submodule,
)
from lora.layers import FusedLinear, Linear, LoRALayer
from lora.params import BIAS_MODES, mark_trainable

#: Plan entry: ``None`` wraps the whole module; a tuple of bools adapts those slices.
Plan = dict[str, "tuple[bool, ...] | None"]


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, Conv1D)) and not isinstance(module, LoRALayer)


def head_module_names(model: nn.Module, head: Iterable[str]) -> set[str]:
    """Full names of modules never adapted: the task head and the output embedding."""
    head = tuple(head)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {
        n for n, m in model.named_modules()
        if (n and any(h in n.split(".") for h in head)) or (out_emb is not None and m is out_emb)
    }  # fmt: skip


def resolve_targets(
    model: nn.Module, targets: Iterable[str] | str, layers: Iterable[int] | None = None
) -> Plan:
    """Full module name -> what to adapt, for every module ``targets`` selects.

    Paper names use the architecture's layout (:data:`lora.arch.ARCHITECTURES`);
    module names (exact or dotted suffix), a regex (``re.fullmatch`` on the full
    name) and ``"all-linear"`` (every ``nn.Linear``/``Conv1D`` inside the blocks)
    follow peft's ``target_modules`` rules. Heads and the LM head are never selected.

    Raises:
        ValueError: unknown architecture (for paper names, ``"all-linear"`` or
            ``layers``), a target matching no adaptable module, a match that is not a
            linear projection, a layer index out of range, or one module selected both
            whole and by slice.
    """
    parsed = parse_targets(targets)
    spec = find_spec(model)
    if spec is None and (parsed.paper or parsed.all_linear or layers is not None):
        spec = arch_spec(model)  # raises the unsupported-architecture error
    heads = head_module_names(model, model_head(model))
    named = dict(model.named_modules())
    block_of: dict[str, int] = {}
    if spec is not None:
        blocks = find_blocks(model, spec)
        ids = {id(b) for b in blocks}
        prefix = {id(m): n for n, m in model.named_modules() if id(m) in ids}
        block_prefixes = [prefix[id(b)] for b in blocks]
        indices = list(range(len(blocks))) if layers is None else sorted(set(layers))
        bad = [i for i in indices if not 0 <= i < len(blocks)]
        if bad:
            raise ValueError(
                f"layers {bad} out of range; the model has blocks 0..{len(blocks) - 1}"
            )
        for i, p in enumerate(block_prefixes):
            for n in named:
                if n.startswith(p + "."):
                    block_of[n] = i
        keep = set(indices)

        def allowed(name: str) -> bool:
            return name not in heads and (layers is None or block_of.get(name) in keep)
    else:

        def allowed(name: str) -> bool:
            return name not in heads

    plan: Plan = {}

    def add(name: str, entry: tuple[bool, ...] | None, target: str) -> None:
        module = named[name]
        if not _is_linear(module):
            raise ValueError(
                f"target {target!r} matches {name} ({type(module).__name__}); LoRA wraps "
                "nn.Linear or Conv1D modules only"
            )
        old = plan.get(name, entry)
        if (old is None) != (entry is None):
            raise ValueError(f"{name} is selected both whole and by slice; choose one")
        if entry is not None:
            entry = tuple(a or b for a, b in zip(old, entry, strict=True))
        plan[name] = entry

    if parsed.paper:
        for t in parsed.paper:
            if t not in spec.targets:
                raise ValueError(
                    f"target {t!r} does not exist in {model.config.model_type}; its names: "
                    f"{', '.join(spec.targets)}"
                )
        for i in indices:
            for t in parsed.paper:
                tgt = spec.targets[t]
                name = f"{block_prefixes[i]}.{tgt.path}"
                if name not in named:
                    raise ValueError(f"module path {tgt.path!r} not found in block {i}")
                if tgt.slice_index is None:
                    add(name, None, t)
                else:
                    enable = tuple(s == tgt.slice_index for s in range(tgt.num_slices))
                    add(name, enable, t)
    for t in parsed.modules:
        hits = [n for n in named if n == t or n.endswith("." + t)]
        chosen = [n for n in hits if allowed(n)]
        if not chosen:
            why = "it matches only heads or unselected layers" if hits else "it matches no module"
            raise ValueError(f"unknown LoRA target {t!r}; {_VALID_TARGETS}; {why}")
        for n in chosen:
            add(n, None, t)
    if parsed.regex is not None:
        chosen = [n for n in named if n and re.fullmatch(parsed.regex, n) and allowed(n)]
        if not chosen:
            raise ValueError(
                f"targets regex {parsed.regex!r} matches no adaptable module (full match on "
                "full names, e.g. 'model.layers.0.self_attn.q_proj')"
            )
        for n in chosen:
            add(n, None, parsed.regex)
    if parsed.all_linear:
        for n in named:
            if n in block_of and allowed(n) and _is_linear(named[n]):
                add(n, None, "all-linear")
    return plan


def wrap_modules(
    model: nn.Module,
    plan: Plan,
    r: int | dict[str, int] = 8,
    lora_alpha: float | dict[str, float] = 8,
    **layer_kwargs: Any,
) -> list[LoRALayer]:
    """Replace each module of ``plan`` by a LoRA layer; no freezing of other modules.

    Every layer's settings are checked (:meth:`LoRALayer.check`) before the first
    module is replaced, so a rejected setting leaves ``model`` as it was.

    Args:
        model: the model to modify in place.
        plan: full module name -> ``None`` (whole module) or slice mask (fused module).
        r, lora_alpha: one value, or a per-module-name dict.
        layer_kwargs: passed to the layer classes (``lora_dropout``, ``init`` and any
            variant switches they accept); ``fan_in_fan_out`` is set from the module
            type (True for ``Conv1D``).

    Returns:
        The new layers, in plan order.

    Raises:
        ValueError: a setting one of the layers rejects, prefixed with the module name.
    """
    builds = []
    for name, enable in plan.items():
        base = model.get_submodule(name)
        cls, kwargs = (Linear, {}) if enable is None else (FusedLinear, {"enable": enable})
        kwargs.update(layer_kwargs, fan_in_fan_out=isinstance(base, Conv1D))
        rank = r[name] if isinstance(r, dict) else r
        try:
            cls.check(base, rank, **kwargs)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        alpha = lora_alpha[name] if isinstance(lora_alpha, dict) else lora_alpha
        builds.append((name, cls, base, rank, alpha, kwargs))
    new = []
    for name, cls, base, rank, alpha, kwargs in builds:
        layer = cls(base, rank, alpha, **kwargs)
        set_submodule(model, name, layer)
        new.append(layer)
    return new


def plan_injection(
    model: nn.Module, targets: Iterable[str] | str, layers: Iterable[int] | None, bias: str
) -> Plan:
    """The checks every ``apply_*`` makes before it changes ``model``; returns the plan.

    Raises:
        ValueError: ``model`` already has LoRA/VeRA layers, an unknown ``bias``, or
            anything :func:`resolve_targets` raises.
    """
    if any(isinstance(m, LoRALayer) for m in model.modules()):
        raise ValueError("model already has LoRA layers; call merge_and_unload() first")
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {', '.join(BIAS_MODES)}; got {bias!r}")
    return resolve_targets(model, targets, layers)


def freeze_base(
    model: nn.Module,
    bias: str,
    modules_to_save: Iterable[str] | None,
    trainable: Iterable[str] = ("lora_",),
) -> nn.Module:
    """After injection: train only the method's parameters, the head and chosen biases.

    ``modules_to_save=None`` means the architecture's head (:func:`lora.arch.model_head`,
    ``classifier``/``score`` for unknown architectures). See :func:`mark_trainable`.
    """
    heads = model_head(model) if modules_to_save is None else modules_to_save
    mark_trainable(model, bias=bias, modules_to_save=heads, extra=trainable)
    return model


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
    **layer_kwargs: Any,
) -> nn.Module:
    """Wrap the chosen matrices with LoRA and freeze everything else, in place.

    Args:
        model: a Hugging Face model; paper names, ``"all-linear"`` and ``layers`` need a
            supported architecture (:data:`lora.arch.ARCHITECTURES`), module names and
            regexes work on any model.
        targets: paper names among q, k, v, o, ffn_in, ffn_out, gate, up, down
            (``W_q`` aliases work), module names (exact or dotted suffix), a regex
            string (full match on the full module name) or ``"all-linear"``.
        r: rank r ≥ 1.
        lora_alpha: α; the update is scaled by α/r.
        lora_dropout: dropout on the LoRA input branch.
        init: initialisation of A (B = 0); see :data:`lora.layers.INIT_SCHEMES`.
        bias: ``"none"``, ``"all"`` or ``"lora_only"`` (see :func:`mark_trainable`).
        modules_to_save: head modules trained fully; ``None`` = the architecture's head
            (``classifier``/``score`` for unknown architectures).
        layers: block indices to adapt; ``None`` = all.
        layer_kwargs: further settings of the LoRA layer classes (variants).

    Returns:
        The same model, modified in place.

    Raises:
        ValueError: unknown architecture, target, bias mode or layer index, ``r < 1``,
            or a setting a target layer rejects (``use_dora`` on GPT-2's fused
            ``c_attn``, ``init="pissa"`` with r above a matrix's rank); the message
            lists the valid values. Raised before any module is replaced or frozen.
    """
    plan = plan_injection(model, targets, layers, bias)
    wrap_modules(model, plan, r, lora_alpha, lora_dropout=lora_dropout, init=init, **layer_kwargs)
    return freeze_base(model, bias, modules_to_save)


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
