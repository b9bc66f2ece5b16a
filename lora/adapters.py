"""Bottleneck adapters: the paper's AdapterH, AdapterL, AdapterP and AdapterD baselines (§5.1).

An adapter sends a hidden state y ∈ R^d through a bottleneck of size r and adds the
result back (the residual lives inside the adapter):

    adapter(y) = y + δ(y),   δ(y) = W_up·act(W_down·y + b_down) + b_up

with W_down ∈ R^{r×d} and W_up ∈ R^{d×r}, i.e. 2·d·r + r + d parameters, the per-adapter
term of the paper's count |Θ| = L̂_Adpt·(2·d_model·r + r + d_model) + 2·L̂_LN·d_model.
W_up and b_up start at zero, so a freshly adapted model computes exactly the base model.

Placements, per transformer block (h is the block output, s the sum that a post-LN
block normalises, h = LN(s)):

* AdapterH (Houlsby 2019, AdapterHub ``double_seq_bn``): two adapters, wrapping the
  attention and the MLP output projections, so each acts before dropout and the
  residual add.
* AdapterP (Pfeiffer 2021, AdapterHub ``seq_bn``): one adapter after the MLP that
  reads the block output. Post-LN: h' = LN(s + δ(LN(s))); pre-LN: h' = h + δ(h).
* AdapterL (Lin et al. 2020): one adapter after the block with a new trainable
  LayerNorm in front, h' = h + δ(LN_new(h)) (2·d more parameters per block).
* AdapterD (AdapterDrop, Rücklé et al. 2020): AdapterP without the adapters of the
  first ``drop_first`` blocks.

Precision: with ``autocast_adapter_dtype`` (default, as peft) the adapters of an
fp16/bf16 model are fp32 (:func:`lora.params.cast_adapter_dtype`); δ casts its input
to the adapter dtype and its result back, so the base model keeps its dtype.

Errors: the configs raise one-line ``ValueError`` for bad settings, an unsupported
architecture, a ``drop_first`` that leaves no block, or a model that already has
adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lora.arch import arch_spec, find_blocks, get_submodule, set_submodule
from lora.params import cast_adapter_dtype, mark_trainable
from lora.registry import MethodConfig, register_method

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "swish": F.silu, "silu": F.silu, "tanh": torch.tanh}
#: Substring of every adapter parameter name (``adapter_down``, ``adapter_up``, ``adapter_norm``).
ADAPTER_PARAM_KEY = "adapter_"


class Adapter(nn.Module):
    """Bottleneck adapter y -> y + δ(y), optionally δ(LN(y)) (AdapterL).

    Args:
        d: hidden size d_model.
        r: bottleneck size r ≥ 1.
        act: nonlinearity, one of :data:`ACTIVATIONS`.
        layer_norm: add a trainable LayerNorm in front of the down-projection (AdapterL).
        device, dtype: where to create the parameters (``meta`` skips initialisation).

    Parameters: ``adapter_down`` (r, d) + (r,), ``adapter_up`` (d, r) + (d,), and
    ``adapter_norm`` (d,) + (d,) when ``layer_norm``.

    Raises:
        ValueError: ``r < 1`` or an unknown ``act``.
    """

    def __init__(
        self,
        d: int,
        r: int,
        act: str = "relu",
        layer_norm: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if int(r) < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}; got {act!r}")
        factory = {"device": device, "dtype": dtype}
        self.d, self.r, self.act = d, int(r), act
        self.adapter_norm = nn.LayerNorm(d, **factory) if layer_norm else None
        self.adapter_down = nn.Linear(d, self.r, **factory)
        self.adapter_up = nn.Linear(self.r, d, **factory)
        if not self.adapter_up.weight.is_meta:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """W_down ~ N(0, 0.02²) (AdapterHub's "bert" init); W_up, both biases = 0 (identity)."""
        with torch.no_grad():
            nn.init.normal_(self.adapter_down.weight, std=0.02)
            nn.init.zeros_(self.adapter_down.bias)
            nn.init.zeros_(self.adapter_up.weight)
            nn.init.zeros_(self.adapter_up.bias)

    def delta(self, y: torch.Tensor) -> torch.Tensor:
        """δ(y): (..., d) -> (..., d), computed in the adapter's dtype."""
        x = y.to(self.adapter_down.weight.dtype)
        if self.adapter_norm is not None:
            x = self.adapter_norm(x)
        return self.adapter_up(ACTIVATIONS[self.act](self.adapter_down(x))).to(y.dtype)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y: (..., d) -> y + δ(y), same shape."""
        return y + self.delta(y)

    def extra_repr(self) -> str:
        return f"d={self.d}, r={self.r}, act={self.act}"


class ProjectionAdapter(nn.Module):
    """An output projection followed by an adapter: x -> adapter(base_layer(x)) (AdapterH).

    Wrapping the projection puts the adapter after it and before the dropout and the
    residual add that the block applies to its output.
    """

    def __init__(self, base_layer: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., d)."""
        return self.adapter(self.base_layer(x))


class NormAdapter(nn.Module):
    """A post-LN block's output LayerNorm with AdapterHub's ``seq_bn`` adapter.

    s -> LN(s + δ(LN(s))): the adapter reads the block output LN(s) and its update
    enters the residual sum before the (frozen, reused) LayerNorm (AdapterP).
    """

    def __init__(self, base_layer: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """s: (..., d) residual sum -> (..., d) block output."""
        return self.base_layer(s + self.adapter.delta(self.base_layer(s)))


def _block_output_hook(block: nn.Module, args: tuple, output):
    """Forward hook applying ``block.output_adapter`` to the block output (tensor or tuple)."""
    if isinstance(output, tuple):
        return (block.output_adapter(output[0]), *output[1:])
    return block.output_adapter(output)


def add_block_adapter(block: nn.Module, adapter: Adapter) -> None:
    """Apply ``adapter`` to ``block``'s output, stored as ``block.output_adapter``.

    A forward hook rather than a wrapper keeps the block's own parameter names.
    """
    block.output_adapter = adapter
    block.register_forward_hook(_block_output_hook)


def adapter_layers(model: nn.Module) -> list[Adapter]:
    """All adapters of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, Adapter)]


#: Where each variant puts its adapters; see the module docstring.
PLACEMENTS = ("houlsby", "pfeiffer", "lin")


def add_adapters(
    model: nn.Module,
    placement: str,
    r: int,
    act: str = "relu",
    layers: list[int] | None = None,
) -> list[Adapter]:
    """Insert adapters into the chosen blocks of ``model`` in place (no freezing).

    Args:
        model: a supported Hugging Face model (see :data:`lora.arch.ARCHITECTURES`).
        placement: ``"houlsby"`` (AdapterH), ``"pfeiffer"`` (AdapterP/D) or ``"lin"`` (AdapterL).
        r: bottleneck size.
        act: nonlinearity name (:data:`ACTIVATIONS`).
        layers: block indices that get adapters; ``None`` = all.

    Returns:
        The new adapters.

    Raises:
        ValueError: unknown placement, layer out of range, or adapters already present.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {placement!r}")
    spec = arch_spec(model)
    blocks = find_blocks(model, spec)
    indices = list(range(len(blocks))) if layers is None else sorted(set(layers))
    bad = [i for i in indices if not 0 <= i < len(blocks)]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has blocks 0..{len(blocks) - 1}")
    if adapter_layers(model):
        raise ValueError("model already has adapters; apply an adapter method to a fresh model")
    d = model.config.hidden_size
    new: list[Adapter] = []
    for i in indices:
        block = blocks[i]
        w = next(block.parameters())
        factory = {"device": w.device, "dtype": w.dtype}
        if placement == "houlsby":
            for path in (spec.attn_out, spec.ffn_out):
                adapter = Adapter(d, r, act, **factory)
                set_submodule(block, path, ProjectionAdapter(get_submodule(block, path), adapter))
                new.append(adapter)
        elif placement == "pfeiffer" and not spec.pre_ln:
            adapter = Adapter(d, r, act, **factory)
            set_submodule(
                block, spec.ffn_ln, NormAdapter(get_submodule(block, spec.ffn_ln), adapter)
            )
            new.append(adapter)
        else:  # Lin, and pre-LN Pfeiffer (h + δ(h), as AdapterHub on GPT-2): after the block
            adapter = Adapter(d, r, act, layer_norm=placement == "lin", **factory)
            add_block_adapter(block, adapter)
            new.append(adapter)
    return new


@dataclass
class _AdapterConfig(MethodConfig):
    """Shared fields of the adapter methods.

    Attributes:
        r: bottleneck size r ≥ 1 (the scripts' ``--adapter_size``).
        act: nonlinearity between the projections, one of :data:`ACTIVATIONS`.
    """

    placement: ClassVar[str] = ""
    r: int = 8
    act: str = "relu"

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r < 1:
            raise ValueError(f"r must be an integer >= 1; got {self.r!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}; got {self.act!r}")

    def _layers(self, model: nn.Module) -> list[int] | None:
        return None

    def apply(self, model: nn.Module) -> nn.Module:
        add_adapters(model, self.placement, self.r, self.act, layers=self._layers(model))
        mark_trainable(model, modules_to_save=self.modules_to_save, extra=(ADAPTER_PARAM_KEY,))
        if self.autocast_adapter_dtype:  # fp32 adapters on an fp16/bf16 base (peft default)
            cast_adapter_dtype(model, (ADAPTER_PARAM_KEY,))
        return model


@register_method
@dataclass
class AdapterHConfig(_AdapterConfig):
    """AdapterH (Houlsby et al. 2019): adapters after the attention and MLP projections."""

    name: ClassVar[str] = "adapter_h"
    placement: ClassVar[str] = "houlsby"
    act: str = "swish"  # AdapterHub's double_seq_bn default


@register_method
@dataclass
class AdapterPConfig(_AdapterConfig):
    """AdapterP (Pfeiffer et al. 2021): one adapter after the MLP, AdapterHub ``seq_bn``."""

    name: ClassVar[str] = "adapter_p"
    placement: ClassVar[str] = "pfeiffer"


@register_method
@dataclass
class AdapterLConfig(_AdapterConfig):
    """AdapterL (Lin et al. 2020): one adapter after each block behind a new LayerNorm."""

    name: ClassVar[str] = "adapter_l"
    placement: ClassVar[str] = "lin"


@register_method
@dataclass
class AdapterDConfig(_AdapterConfig):
    """AdapterD (AdapterDrop, Rücklé et al. 2020): AdapterP minus the first blocks' adapters.

    Attributes:
        drop_first: number n ≥ 0 of lowest blocks without an adapter; must leave at
            least one block (checked in :meth:`apply`).
    """

    name: ClassVar[str] = "adapter_d"
    placement: ClassVar[str] = "pfeiffer"
    drop_first: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.drop_first, int) or self.drop_first < 0:
            raise ValueError(f"drop_first must be an integer >= 0; got {self.drop_first!r}")

    def _layers(self, model: nn.Module) -> list[int]:
        n = len(find_blocks(model))
        if self.drop_first >= n:
            raise ValueError(
                f"drop_first={self.drop_first} leaves no adapter; the model has {n} blocks"
            )
        return list(range(self.drop_first, n))


__all__ = [
    "ACTIVATIONS",
    "Adapter",
    "AdapterDConfig",
    "AdapterHConfig",
    "AdapterLConfig",
    "AdapterPConfig",
    "NormAdapter",
    "ProjectionAdapter",
    "adapter_layers",
    "add_adapters",
    "add_block_adapter",
]
