"""Prefix baselines: PreEmbed and PreLayer (paper §5.1, Li & Liang 2021).

Both add l_p "prefix" tokens before the input and l_i "infix" tokens after the prompt,
n_v = l_p + l_i virtual tokens that are not in the vocabulary:

* PreEmbed (prefix-embedding tuning): the virtual tokens have trainable input
  embeddings, |Θ| = d_model·(l_p + l_i).
* PreLayer (prefix-layer tuning): the hidden states at the virtual positions are
  learned at the input of every block and replace the computed ones, i.e. the
  embedding output and the output of each block but the last (whose virtual outputs
  nothing reads), |Θ| = L·d_model·(l_p + l_i).

Mechanics (forward hooks on the backbone, ``model.base_model``, so the task model's
own code runs unchanged):

* Layout. Per example, [prefix | prompt | infix | rest], where the prompt ends at
  ``prompt_lengths[b]`` if that keyword is passed to the task model; else, on causal
  models given token-level ``labels``, before the first label that is not -100 (the
  target); else after the first contiguous run of attended tokens, i.e. after the
  real tokens for left- or right-padded inputs (classification: infix at the end of
  the input). Virtual tokens are always attended; position ids continue the prompt's
  (the infix gets the positions just after the last prompt token) and everything
  after the infix shifts by n_v; token types copy the neighbouring real token's.
* Outputs are mapped back to the real tokens, so hidden states, logits and labels
  keep the caller's length T: an encoder returns each real token's own state; a
  causal model returns for real token t the state just before real token t+1, which
  is the last infix state for the last prompt token. Hence HF's shifted LM loss with
  the caller's labels trains the target after the infix, and ``generate`` predicts
  from the infix. BERT's pooler is re-applied to the mapped sequence.
* Generation. Virtual tokens are inserted only in a pass that starts an empty cache;
  their keys and values then stay in the KV cache (beam search reorders it as usual)
  and later decoding steps only extend the 2-D mask and shift the positions by n_v.
  The cache reaches the backbone as ``cache`` (transformers 5) or, when the backbone
  is called directly, under its deprecated name ``past_key_values``.
  Generating without a cache (``use_cache=False``) would re-insert the infix after
  the growing sequence, so it is not the same model.
* Length. The usable input length shrinks by n_v (:func:`max_input_length`); an input
  whose shifted positions overflow the position table raises ``ValueError`` instead
  of being truncated.

* Positions. Absolute position tables (BERT, RoBERTa, ELECTRA, GPT-2) and rotary
  positions (Llama, Mistral, Qwen2: RoPE reads the same ``position_ids``, limit
  ``config.max_position_embeddings``) are supported. PreEmbed's vectors have the width
  of the input embedding table (ELECTRA's ``embedding_size`` may be below d_model);
  PreLayer's have d_model.
* Precision. With ``autocast_adapter_dtype`` (default) the parameters are fp32 on an
  fp16/bf16 model and are cast to the base dtype where they enter the model.

Errors: ``ValueError`` (one line) for bad settings, relative-position models such as
DeBERTa-v2 (and OPT's offset table), a 4-D attention mask, position overflow, a model
that already has prefixes, or a decoding mask that does not fit the cache.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from lora.arch import ArchSpec, arch_spec, find_blocks, get_submodule
from lora.params import cast_adapter_dtype, mark_trainable
from lora.registry import MethodConfig, register_method

#: Attribute of the backbone holding the prefix module; also the parameters' name key.
PREFIX_ATTR = "prefix_tuning"


class Layout(NamedTuple):
    """Where the virtual tokens go in one forward pass; N = T + n_v.

    Attributes:
        is_prefix, is_infix: (B, N) bool masks of the virtual positions.
        virt_id: (B, N) index into the n_v virtual tokens (prefix first), clamped at
            real positions.
        real_idx: (B, N) index of the real token at each position, clamped at
            virtual positions.
        out_idx: (B, T) extended position whose output is returned for real token t.
        split: (B, 1) prompt length p (infix inserted before real token p).
        is_virtual: (B, N) ``is_prefix | is_infix``.
    """

    is_prefix: torch.Tensor
    is_infix: torch.Tensor
    virt_id: torch.Tensor
    real_idx: torch.Tensor
    out_idx: torch.Tensor
    split: torch.Tensor
    is_virtual: torch.Tensor


def make_layout(split: torch.Tensor, T: int, l_p: int, l_i: int, causal: bool) -> Layout:
    """Layout of [prefix (l_p) | real[:p] | infix (l_i) | real[p:]] for each example.

    Args:
        split: (B,) prompt lengths p in [0, T].
        T: number of real tokens.
        causal: map real token t to the position before real token t+1 (see module doc).
    """
    n_v = l_p + l_i
    p = split.long().clamp(0, T).view(-1, 1)
    n = torch.arange(T + n_v, device=p.device).view(1, -1)
    is_prefix = (n < l_p).expand(p.shape[0], -1)
    is_infix = (n >= l_p + p) & (n < l_p + p + l_i)
    virt_id = torch.where(is_prefix, n, n - p).clamp(0, max(n_v - 1, 0))
    real_idx = torch.where(n < l_p + p, n - l_p, n - n_v).clamp(0, max(T - 1, 0))
    t = torch.arange(T + 1, device=p.device).view(1, -1)
    ext = l_p + t + torch.where(t >= p, l_i, 0)  # extended position of real token t; ext[T] = N
    out_idx = ext[:, 1:] - 1 if causal else ext[:, :-1]
    return Layout(is_prefix, is_infix, virt_id, real_idx, out_idx, p, is_prefix | is_infix)


def first_run_end(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B,) index just after the first contiguous run of ones."""
    m = mask.bool()
    T = m.shape[1]
    first = m.long().argmax(1, keepdim=True)
    gap = ~m & (torch.arange(T, device=m.device).view(1, -1) >= first)
    return torch.where(gap.any(1), gap.long().argmax(1), torch.full_like(first[:, 0], T))


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x: (B, S, ...) indexed along dim 1 by idx (B, N) -> (B, N, ...)."""
    idx = idx.expand(x.shape[0], -1)
    return x.gather(
        1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:])
    )


#: Backbone keywords that carry the KV cache: transformers 5 ``cache``, and the name
#: that 4.x used and 5.x still accepts (deprecated) when the backbone is called directly.
CACHE_KWARGS = ("cache", "past_key_values")


def _cached_length(kwargs: dict) -> int:
    """Number of positions already in the KV cache passed to the backbone (0: none)."""
    for key in CACHE_KWARGS:
        cache = kwargs.get(key)
        if cache is not None:
            return int(cache.get_seq_length())
    return 0


class PrefixTuning(nn.Module):
    """Shared hooks of the prefix methods; subclasses own the parameters.

    Installed as ``backbone.prefix_tuning`` by :meth:`attach`.

    Args:
        l_p: number of prefix tokens.
        l_i: number of infix tokens.
        d: hidden size d_model.
        causal: the backbone attends causally (GPT-2, ``BertLMHeadModel``).
        num_positions: size of the absolute position table.
        pos_offset: first real position id (RoBERTa counts from ``padding_idx + 1``).
    """

    def __init__(
        self, l_p: int, l_i: int, d: int, causal: bool, num_positions: int, pos_offset: int
    ) -> None:
        super().__init__()
        self.l_p, self.l_i, self.d = int(l_p), int(l_i), int(d)
        self.num_virtual_tokens = self.l_p + self.l_i
        self.causal = causal
        self.num_positions = num_positions
        self.pos_offset = pos_offset
        self._layout: Layout | None = None  # the current pass; kept for checkpoint recompute
        self._pending: dict[str, Any] = {}  # labels / prompt_lengths seen by the task model
        self._arg_names: tuple[str, ...] = ()

    def virtual_embeddings(self, layout: Layout, like: torch.Tensor) -> torch.Tensor:
        """Input embeddings at the virtual positions, (B, N, d) (real positions ignored)."""
        raise NotImplementedError

    def attach(self, model: nn.Module, backbone: nn.Module, blocks: nn.ModuleList) -> None:
        """Install as ``backbone.prefix_tuning`` and register the forward hooks."""
        setattr(backbone, PREFIX_ATTR, self)
        self._arg_names = tuple(inspect.signature(type(backbone).forward).parameters)[1:]
        backbone.register_forward_pre_hook(self._pre_forward, with_kwargs=True)
        backbone.register_forward_hook(self._post_forward)
        if model is not backbone:
            model.register_forward_pre_hook(self._read_task_inputs, with_kwargs=True)

    # -- hooks ---------------------------------------------------------------------------

    def _read_task_inputs(self, model: nn.Module, args: tuple, kwargs: dict):
        """Task-model pre-hook: remember ``labels`` and pop ``prompt_lengths``."""
        self._pending = {"labels": kwargs.get("labels")}
        if "prompt_lengths" in kwargs:
            kwargs = dict(kwargs)
            self._pending["prompt_lengths"] = kwargs.pop("prompt_lengths")
            return args, kwargs
        return None

    def _split(self, mask: torch.Tensor, T: int, pending: dict[str, Any]) -> torch.Tensor:
        """(B,) prompt lengths p: explicit, before the first target label, or after the input."""
        if pending.get("prompt_lengths") is not None:
            return torch.as_tensor(pending["prompt_lengths"], device=mask.device).view(-1)
        labels = pending.get("labels")
        if self.causal and isinstance(labels, torch.Tensor) and labels.shape == mask.shape:
            target = labels != -100
            return torch.where(target.any(1), target.long().argmax(1), first_run_end(mask))
        return first_run_end(mask)

    def _check_positions(self, pos: torch.Tensor, T: int) -> None:
        top = int(pos.max()) if pos.numel() else 0
        if top >= self.num_positions:
            usable = self.num_positions - self.pos_offset - self.num_virtual_tokens
            raise ValueError(
                f"{T} input tokens + {self.num_virtual_tokens} virtual tokens need position id "
                f"{top} but the model has {self.num_positions} positions; keep inputs to "
                f"{usable} tokens (lora.prefix.max_input_length)"
            )

    def _pre_forward(self, backbone: nn.Module, args: tuple, kwargs: dict):
        """Backbone pre-hook: insert the virtual tokens, or extend a decoding step's inputs."""
        kwargs = {**dict(zip(self._arg_names, args, strict=False)), **kwargs}
        pending, self._pending = self._pending, {}
        if "prompt_lengths" in kwargs:  # called on the backbone directly
            pending["prompt_lengths"] = kwargs.pop("prompt_lengths")
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() != 2:
            raise ValueError("prefix methods need a 2-D attention_mask (batch, seq_len)")
        past = _cached_length(kwargs)
        if past > 0:  # the virtual tokens are already in the KV cache
            self._layout = None
            return (), self._decoding_inputs(kwargs, past)
        return (), self._first_pass_inputs(backbone, kwargs, pending)

    def _first_pass_inputs(self, backbone: nn.Module, kwargs: dict, pending: dict) -> dict:
        """Embeddings, mask, positions and types of [prefix | prompt | infix | rest]."""
        ids, embeds = kwargs.get("input_ids"), kwargs.get("inputs_embeds")
        x = embeds if embeds is not None else backbone.get_input_embeddings()(ids)
        B, T = x.shape[:2]
        n_v, l_p, l_i = self.num_virtual_tokens, self.l_p, self.l_i
        mask = kwargs.get("attention_mask")
        mask = mask if mask is not None else torch.ones(B, T, dtype=torch.long, device=x.device)
        lay = self._layout = make_layout(self._split(mask, T, pending), T, l_p, l_i, self.causal)
        is_virt, p = lay.is_virtual, lay.split
        x = torch.where(
            is_virt[..., None], self.virtual_embeddings(lay, x), _gather(x, lay.real_idx)
        )
        # Positions: prefix 0..l_p-1; real tokens shifted by l_p, and by l_i more after the
        # infix; the infix continues from the last prompt token.
        pos = kwargs.get("position_ids")
        real = pos - self.pos_offset if pos is not None else torch.arange(T, device=x.device)
        real = real.expand(B, T)
        n = torch.arange(T + n_v, device=x.device).view(1, -1)
        after_prompt = torch.where(p > 0, _gather(real, (p - 1).clamp(min=0)) + 1, 0)
        shifted = l_p + _gather(real, lay.real_idx) + torch.where(n >= l_p + p, l_i, 0)
        infix = l_p + after_prompt + (n - l_p - p)
        ext_pos = torch.where(lay.is_prefix, n, torch.where(lay.is_infix, infix, shifted))
        ext_pos = ext_pos + self.pos_offset
        self._check_positions(ext_pos, T)
        ext_mask = torch.where(is_virt, 1, _gather(mask, lay.real_idx)).to(mask.dtype)
        kwargs.update(
            input_ids=None, inputs_embeds=x, attention_mask=ext_mask, position_ids=ext_pos
        )
        types = kwargs.get("token_type_ids")
        if types is not None:  # virtual tokens copy their neighbour's type
            types = types.expand(B, T)
            near = torch.where(lay.is_prefix, 0, (p - 1).clamp(min=0))
            kwargs["token_type_ids"] = torch.where(
                is_virt, _gather(types, near), _gather(types, lay.real_idx)
            )
        return kwargs

    def _decoding_inputs(self, kwargs: dict, past: int) -> dict:
        """A cached step: the 2-D mask gains the virtual columns, positions shift by n_v."""
        n_v = self.num_virtual_tokens
        ref = kwargs.get("input_ids")
        ref = ref if ref is not None else kwargs["inputs_embeds"]
        B, T = ref.shape[:2]
        mask = kwargs.get("attention_mask")
        if mask is not None:
            if mask.shape[1] != past - n_v + T:
                raise ValueError(
                    f"attention_mask covers {mask.shape[1]} tokens but the cache holds "
                    f"{past - n_v} real + {n_v} virtual and {T} are new"
                )
            # Same rule as the first pass; placing the infix anywhere inside the run of
            # ones that follows the prompt gives the same mask.
            lay = make_layout(first_run_end(mask), mask.shape[1], self.l_p, self.l_i, False)
            ext_mask = torch.where(lay.is_virtual, 1, _gather(mask, lay.real_idx))
            kwargs["attention_mask"] = ext_mask.to(mask.dtype)
        pos = kwargs.get("position_ids")
        default = torch.arange(T, device=ref.device) + past - n_v + self.pos_offset
        kwargs["position_ids"] = (pos if pos is not None else default).expand(B, T) + n_v
        self._check_positions(kwargs["position_ids"], past - n_v + T)
        return kwargs

    def _post_forward(self, backbone: nn.Module, args: tuple, output):
        """Backbone hook: return the real tokens' states (B, T, d); re-pool BERT."""
        lay = self._layout
        if lay is None:
            return None
        is_tuple = isinstance(output, tuple)
        seq = output[0] if is_tuple else output.last_hidden_state
        seq = _gather(seq, lay.out_idx)
        pooler = getattr(backbone, "pooler", None)
        pooled = pooler(seq) if pooler is not None else None
        if is_tuple:
            rest = list(output[1:])
            if pooled is not None and rest and isinstance(rest[0], torch.Tensor):
                rest[0] = pooled
            return (seq, *rest)
        output.last_hidden_state = seq
        if pooled is not None and getattr(output, "pooler_output", None) is not None:
            output.pooler_output = pooled
        if getattr(output, "hidden_states", None) is not None:
            output.hidden_states = tuple(_gather(h, lay.out_idx) for h in output.hidden_states)
        return output


class PrefixEmbedding(PrefixTuning):
    """PreEmbed: trainable input embeddings of the virtual tokens.

    Parameters: ``prefix_embeds`` (l_p + l_i, E), E = ``word_embeddings.embedding_dim``
    (d_model, or ELECTRA's smaller ``embedding_size``), prefix rows first; initialised from
    randomly chosen rows of the word-embedding matrix, so they start in distribution.
    """

    def __init__(self, word_embeddings: nn.Embedding, **kwargs) -> None:
        super().__init__(**kwargs)
        w = word_embeddings.weight
        self.prefix_embeds = nn.Parameter(
            torch.empty(self.num_virtual_tokens, self.d, device=w.device, dtype=w.dtype)
        )
        if not w.is_meta:
            with torch.no_grad():
                rows = torch.randint(0, w.shape[0], (self.num_virtual_tokens,), device=w.device)
                self.prefix_embeds.copy_(w[rows])

    def virtual_embeddings(self, layout: Layout, like: torch.Tensor) -> torch.Tensor:
        return self.prefix_embeds[layout.virt_id].to(like.dtype)


class PrefixLayer(PrefixTuning):
    """PreLayer: learned hidden states of the virtual tokens at every block's input.

    Parameters: ``prefix_acts`` (L, l_p + l_i, d) ~ N(0, 0.02²); row i replaces the
    virtual positions entering block i (i = 0 replaces the embedding output).
    """

    def __init__(self, num_layers: int, device=None, dtype=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix_acts = nn.Parameter(
            torch.empty(num_layers, self.num_virtual_tokens, self.d, device=device, dtype=dtype)
        )
        if not self.prefix_acts.is_meta:
            nn.init.normal_(self.prefix_acts, std=0.02)

    def virtual_embeddings(self, layout: Layout, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(like[:, :1]).expand(-1, layout.virt_id.shape[1], -1)

    def attach(self, model: nn.Module, backbone: nn.Module, blocks: nn.ModuleList) -> None:
        super().attach(model, backbone, blocks)
        for i, block in enumerate(blocks):
            block.register_forward_pre_hook(partial(self._replace, i), with_kwargs=True)

    def _replace(self, i: int, block: nn.Module, args: tuple, kwargs: dict):
        """Block pre-hook: put row i of ``prefix_acts`` at the virtual positions."""
        lay = self._layout
        if lay is None:
            return None
        h = args[0] if args else kwargs["hidden_states"]
        acts = self.prefix_acts[i][lay.virt_id].to(h.dtype)
        h = torch.where(lay.is_virtual[..., None], acts, h)
        if args:
            return (h, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": h}


@dataclass
class _PrefixConfig(MethodConfig):
    """Shared fields of the prefix methods.

    Attributes:
        l_p: number of prefix tokens, ≥ 0.
        l_i: number of infix tokens, ≥ 0; l_p + l_i ≥ 1.
    """

    l_p: int = 8
    l_i: int = 8

    def __post_init__(self) -> None:
        for key in ("l_p", "l_i"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{key} must be an integer >= 0; got {v!r}")
        if self.l_p + self.l_i < 1:
            raise ValueError(f"l_p + l_i must be >= 1; got l_p={self.l_p}, l_i={self.l_i}")

    @property
    def num_virtual_tokens(self) -> int:
        """l_p + l_i: positions taken from the model's maximum input length."""
        return self.l_p + self.l_i

    def _build(self, spec: ArchSpec, backbone: nn.Module, common: dict) -> PrefixTuning:
        raise NotImplementedError

    def _positions(self, model: nn.Module, spec: ArchSpec) -> tuple[int, int]:
        """(number of positions, first real position id) that the virtual tokens shift."""
        backbone = model.base_model
        if spec.position_embeddings is not None:
            table = get_submodule(backbone, spec.position_embeddings)
            offset = table.padding_idx + 1 if table.padding_idx is not None else 0
            return table.num_embeddings, offset
        if getattr(backbone, "rotary_emb", None) is not None:  # RoPE reads position_ids
            return int(model.config.max_position_embeddings), 0
        raise ValueError(
            f"{self.name} is not supported on {model.config.model_type} (relative positions "
            "or an offset position table; supported: absolute tables and rotary positions)"
        )

    def apply(self, model: nn.Module) -> nn.Module:
        spec = arch_spec(model)
        num_positions, pos_offset = self._positions(model, spec)
        backbone = model.base_model
        if hasattr(backbone, PREFIX_ATTR):
            raise ValueError(
                "model already has prefix tokens; apply a prefix method to a fresh model"
            )
        common = dict(
            l_p=self.l_p,
            l_i=self.l_i,
            d=model.config.hidden_size,
            causal=spec.causal or bool(getattr(model.config, "is_decoder", False)),
            num_positions=num_positions,
            pos_offset=pos_offset,
        )
        blocks = find_blocks(model, spec)
        self._build(spec, backbone, common).attach(model, backbone, blocks)
        mark_trainable(model, modules_to_save=self.modules_to_save, extra=(f"{PREFIX_ATTR}.",))
        if self.autocast_adapter_dtype:  # fp32 prefixes on an fp16/bf16 base (peft default)
            cast_adapter_dtype(model, (f"{PREFIX_ATTR}.",))
        return model


@register_method
@dataclass
class PrefixEmbedConfig(_PrefixConfig):
    """PreEmbed: l_p prefix + l_i infix trainable token embeddings, |Θ| = E·(l_p + l_i).

    E is the width of the input embedding table: d_model, or ELECTRA's ``embedding_size``.
    """

    name: ClassVar[str] = "prefix_embed"

    def _build(self, spec: ArchSpec, backbone: nn.Module, common: dict) -> PrefixTuning:
        # Sized by the embedding table, which ELECTRA factorizes (E < d, projected after).
        words = backbone.get_input_embeddings()
        return PrefixEmbedding(words, **{**common, "d": words.embedding_dim})


@register_method
@dataclass
class PrefixLayerConfig(_PrefixConfig):
    """PreLayer: learned virtual-token activations at every block, |Θ| = L·d·(l_p + l_i)."""

    name: ClassVar[str] = "prefix_layer"

    def _build(self, spec: ArchSpec, backbone: nn.Module, common: dict) -> PrefixTuning:
        w = backbone.get_input_embeddings().weight
        L = len(find_blocks(backbone, spec))
        return PrefixLayer(L, device=w.device, dtype=w.dtype, **common)


def max_input_length(model_max_len: int, method: MethodConfig | None) -> int:
    """Longest real input once ``method``'s virtual tokens take their positions.

    Args:
        model_max_len: the model's usable length without virtual tokens (e.g. 512).
        method: any method config; only prefix methods shorten the input.

    Raises:
        ValueError: no position is left for real tokens.
    """
    n_v = getattr(method, "num_virtual_tokens", 0)
    if model_max_len - n_v < 1:
        raise ValueError(f"{n_v} virtual tokens leave no room in max length {model_max_len}")
    return model_max_len - n_v


__all__ = [
    "Layout",
    "PrefixEmbedConfig",
    "PrefixEmbedding",
    "PrefixLayer",
    "PrefixLayerConfig",
    "PrefixTuning",
    "first_run_end",
    "make_layout",
    "max_input_length",
]
