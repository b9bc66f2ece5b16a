"""The method registry: the :class:`MethodConfig` base class and :data:`METHODS`.

Every method module (:mod:`lora.methods`, :mod:`lora.adapters`, :mod:`lora.prefix`,
:mod:`lora.selective`, :mod:`lora.vera`) imports its base class and
:func:`register_method` from here, and :mod:`lora.compose` builds its parts with
:func:`build_method`; this module imports none of them, so the method modules can be
imported in any order. The public entry point is :func:`lora.methods.make_method`,
which also handles composed ``"a+b"`` names.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class MethodConfig:
    """Base class of method configs.

    Attributes:
        modules_to_save: head modules trained fully under the method; ``None`` uses
            the architecture's head (:attr:`lora.arch.ArchSpec.head`).
        autocast_adapter_dtype: on an fp16/bf16 base model, keep the parameters the
            method adds (LoRA A/B, adapters, prefixes) in fp32 so that fp16 training
            with a GradScaler works; ``False`` keeps them in the base dtype. Same name
            and default as peft; no effect on methods that add no parameters (FT,
            BitFit, FT^Top2) or on fp32 models. See :func:`lora.params.cast_adapter_dtype`.
    """

    name: ClassVar[str] = ""
    modules_to_save: list[str] | None = None
    autocast_adapter_dtype: bool = True

    def apply(self, model: nn.Module) -> nn.Module:
        """Adapt ``model`` in place and set ``requires_grad``; returns the model."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields plus ``method`` (the registry name)."""
        return {"method": self.name, **dataclasses.asdict(self)}


#: Registered method config classes by name; filled by :func:`register_method`.
METHODS: dict[str, type[MethodConfig]] = {}


def register_method(cls: type[MethodConfig]) -> type[MethodConfig]:
    """Class decorator adding a :class:`MethodConfig` subclass to :data:`METHODS`."""
    METHODS[cls.name] = cls
    return cls


def build_method(name: str, **kwargs: Any) -> MethodConfig:
    """Build and validate the config of the registered (single) method ``name``.

    Raises:
        ValueError: unknown method (lists the known ones), unknown field for that
            method (lists its fields) or an invalid value (names the field).
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
    flag = kwargs.get("autocast_adapter_dtype", True)
    if not isinstance(flag, bool):
        raise ValueError(f"autocast_adapter_dtype must be true or false; got {flag!r}")
    return cls(**kwargs)


def meta_skeleton(model: nn.Module) -> nn.Module:
    """A weightless copy of ``model`` (meta device) to rehearse ``method.apply`` on.

    Built from ``model.config`` when it has one; otherwise a deep copy (real memory).
    """
    config = getattr(model, "config", None)
    if config is not None:
        try:
            with torch.device("meta"):
                return type(model)(copy.deepcopy(config))
        except Exception:  # noqa: BLE001 - not buildable from its config: copy instead
            pass
    return copy.deepcopy(model)


__all__ = ["METHODS", "MethodConfig", "build_method", "meta_skeleton", "register_method"]
