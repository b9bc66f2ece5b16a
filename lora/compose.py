"""Composed methods: several adaptation methods on one model, all of them trained.

The paper's Table 15 (GPT-3) combines LoRA with the prefix baselines: LoRA+PE (LoRA on
W_q, W_v plus prefix-embedding tuning) and LoRA+PL (plus prefix-layer tuning), whose
trainable parameters are the union of the parts' (|Θ| = |Θ_LoRA| + |Θ_prefix|).

Each method's ``apply`` freezes everything but its own parameters and the head, so
:meth:`ComposedConfig.apply` applies the parts in the listed order and then unfreezes
the union of what each part left trainable.

By name, as the harness builds methods from its ``method:`` node::

    make_method("lora+prefix_embed", lora={"r": 8, "targets": ["q", "v"]},
                prefix_embed={"l_p": 8, "l_i": 4})

or directly ``ComposedConfig(methods=[LoraConfig(r=8), PrefixEmbedConfig(l_p=8, l_i=4)])``.
The shared settings ``modules_to_save`` and ``autocast_adapter_dtype`` belong to the
composed method and are passed to every part.

Errors: one-line ``ValueError`` for an unknown part, a part given twice, ``full_ft``
with anything, two prefix, two adapter or two low-rank methods (LoRA, VeRA; each kind
is installed once per model), fewer than two parts, or a shared setting inside a part.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lora.registry import METHODS, MethodConfig, build_method, meta_skeleton

#: Fields of :class:`MethodConfig` that the composed method sets for all its parts.
SHARED = ("modules_to_save", "autocast_adapter_dtype")
#: Methods installed at most once per model (one prefix module, one adapter set).
PREFIX_METHODS = ("prefix_embed", "prefix_layer")
ADAPTER_METHODS = ("adapter_h", "adapter_l", "adapter_p", "adapter_d")
LOW_RANK_METHODS = ("lora", "vera")  # both wrap the same projections
#: Methods that train every weight, so nothing can be added to them.
EXCLUSIVE = ("full_ft",)


@dataclass
class ComposedConfig(MethodConfig):
    """Several methods applied to one model, each part's parameters trained.

    Attributes:
        methods: the parts, applied in this order (put LoRA before an adapter method
            that wraps the same projection); at least two, each method once.
        modules_to_save, autocast_adapter_dtype: as in :class:`MethodConfig`; set on
            every part.

    The registry name (``name``, ``to_dict()["method"]``) is the parts' names joined
    by ``+``, e.g. ``"lora+prefix_embed"``.

    Raises:
        ValueError: see the module docstring.
    """

    methods: list[MethodConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        methods = list(self.methods)
        bad = [
            m for m in methods if not isinstance(m, MethodConfig) or isinstance(m, ComposedConfig)
        ]
        if bad:
            raise ValueError(
                f"methods must be plain method configs (make_method(...)); got {bad[0]!r}"
            )
        if len(methods) < 2:
            raise ValueError(f"a composed method needs at least two methods; got {len(methods)}")
        names = [m.name for m in methods]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"method {twice[0]!r} is given twice in {'+'.join(names)!r}")
        exclusive = [n for n in names if n in EXCLUSIVE]
        if exclusive:
            raise ValueError(
                f"{exclusive[0]} trains every weight and cannot be composed; got {'+'.join(names)!r}"
            )
        groups = (
            ("prefix", PREFIX_METHODS),
            ("adapter", ADAPTER_METHODS),
            ("low-rank", LOW_RANK_METHODS),
        )
        for kind, group in groups:
            found = [n for n in names if n in group]
            if len(found) > 1:
                raise ValueError(
                    f"at most one {kind} method ({', '.join(group)}) per model; got {', '.join(found)}"
                )
        parts = []
        for m in methods:  # copies, so the caller's configs keep their own settings
            part = copy.copy(m)
            for key in SHARED:
                setattr(part, key, getattr(self, key))
            parts.append(part)
        self.methods = parts

    @property
    def name(self) -> str:  # type: ignore[override]
        """``"+"``-joined part names, e.g. ``"lora+prefix_embed"``."""
        return "+".join(m.name for m in self.methods)

    @property
    def num_virtual_tokens(self) -> int:
        """Input positions taken by the prefix part (0 without one)."""
        return sum(getattr(m, "num_virtual_tokens", 0) for m in self.methods)

    def apply(self, model: nn.Module) -> nn.Module:
        """Apply every part in order; afterwards each part's parameters are trainable.

        The parts are first rehearsed on a weightless copy (:func:`meta_skeleton`), so
        a part that rejects the model raises before any part has changed it.

        Raises:
            ValueError: whatever a part's ``apply`` raises for this model.
        """
        skeleton = meta_skeleton(model)
        for part in self.methods:
            part.apply(skeleton)
        trainable: dict[int, nn.Parameter] = {}  # holding the objects keeps their ids unique
        for part in self.methods:
            part.apply(model)
            trainable.update({id(p): p for p in model.parameters() if p.requires_grad})
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        return model

    def to_dict(self) -> dict[str, Any]:
        """``{"method": "a+b", <shared fields>, "a": {a's fields}, "b": {b's fields}}``.

        ``make_method(**to_dict())``-style round trip: ``make_method(d.pop("method"), **d)``.
        """
        out: dict[str, Any] = {"method": self.name, **{k: getattr(self, k) for k in SHARED}}
        for m in self.methods:
            out[m.name] = {k: v for k, v in dataclasses.asdict(m).items() if k not in SHARED}
        return out


def compose_method(name: str, **kwargs: Any) -> ComposedConfig:
    """Build ``"a+b"`` from per-part settings: ``compose_method("a+b", a={...}, b={...})``.

    Args:
        name: part names joined by ``+``.
        kwargs: for each part, a mapping of its settings (omitted: its defaults); and
            the shared ``modules_to_save`` / ``autocast_adapter_dtype``.

    Raises:
        ValueError: unknown part or setting, a non-mapping part setting, a shared
            setting inside a part, a bad part setting (prefixed with the part's name),
            or an invalid composition (see :class:`ComposedConfig`).
    """
    parts = [p.strip() for p in name.split("+")]
    for part in parts:
        if part not in METHODS:
            raise ValueError(
                f"unknown method {part!r} in {name!r}; known: {', '.join(sorted(METHODS))}"
            )
    allowed = (*dict.fromkeys(parts), *SHARED)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"method {name!r} has no setting(s) {', '.join(unknown)}; its settings: "
            f"{', '.join(allowed)} (one mapping of settings per part)"
        )
    shared = {k: kwargs[k] for k in SHARED if k in kwargs}
    configs = []
    for part in dict.fromkeys(parts):  # a repeated part is reported by ComposedConfig
        settings = kwargs.get(part) or {}
        if not isinstance(settings, Mapping):
            raise ValueError(
                f"setting {part} of method {name!r} must be a mapping of {part}'s settings; "
                f"got {settings!r}"
            )
        inside = [k for k in SHARED if k in settings]
        if inside:
            raise ValueError(f"set {inside[0]} on {name!r}, not inside its part {part!r}")
        try:
            configs.append(build_method(part, **settings, **shared))
        except ValueError as err:
            raise ValueError(f"{part}: {err}") from None
    if len(configs) < len(parts):  # same part twice: rebuild the list to report it
        configs = [next(c for c in configs if c.name == p) for p in parts]
    return ComposedConfig(methods=configs, **shared)


__all__ = ["ComposedConfig", "compose_method"]
