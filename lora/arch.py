"""Where the paper's weight matrices live in each Hugging Face architecture.

The paper names the attention projections W_q, W_k, W_v, W_o (§4.2) and adapts
"only the attention weights"; we also expose the MLP matrices for extensions:
``ffn_in``/``ffn_out`` for two-matrix MLPs, ``gate``/``up``/``down`` for the gated
MLPs of Llama, Mistral and Qwen2. In grouped-query attention (Llama, Mistral, Qwen2)
W_k and W_v map d_model to ``num_key_value_heads · head_dim``, narrower than W_q. This module maps those names to module paths for
every architecture the harness supports, and records the other places the
baselines need (block list, task head, LayerNorms).

Errors: :func:`arch_spec` raises ``ValueError`` naming the supported
``model_type`` values when an architecture is unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

#: Paper names accepted by ``targets`` and their aliases.
TARGET_ALIASES = {
    "q": "q", "w_q": "q", "query": "q",
    "k": "k", "w_k": "k", "key": "k",
    "v": "v", "w_v": "v", "value": "v",
    "o": "o", "w_o": "o", "output": "o",
    "ffn_in": "ffn_in", "mlp_in": "ffn_in",
    "ffn_out": "ffn_out", "mlp_out": "ffn_out",
    "gate": "gate", "w_gate": "gate",
    "up": "up", "w_up": "up",
    "down": "down", "w_down": "down",
}  # fmt: skip
TARGET_NAMES = ("q", "k", "v", "o", "ffn_in", "ffn_out", "gate", "up", "down")

#: ``targets`` value selecting every linear projection inside the transformer blocks.
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class Target:
    """One paper matrix inside a transformer block.

    Attributes:
        path: module path relative to the block, e.g. ``"attention.self.query"``.
        slice_index: for fused projections (GPT-2 ``c_attn`` holds q, k, v), which
            of ``num_slices`` equal output blocks this matrix is; ``None`` otherwise.
        num_slices: number of equal output blocks of the fused module.
    """

    path: str
    slice_index: int | None = None
    num_slices: int = 1


@dataclass(frozen=True)
class ArchSpec:
    """Layout of one architecture family.

    Attributes:
        blocks: dotted path (from the task model's root, any prefix allowed) of the
            ``nn.ModuleList`` of transformer blocks, matched as a suffix.
        targets: paper name -> :class:`Target`.
        attn_out: block-relative path of the attention output projection (AdapterH's
            first insertion point, §5.1).
        ffn_out: block-relative path of the MLP output projection (the adapters'
            insertion point after the MLP).
        ffn_ln: block-relative path of the LayerNorm that follows the MLP residual
            (post-LN models) or precedes the MLP (pre-LN models).
        pre_ln: True for pre-LayerNorm blocks (GPT-2), False for post-LN (BERT).
        head: module names (matched as a path component) of task heads that are
            newly initialised and trained under every method (``modules_to_save``).
            BERT's pooler is part of the head because it plays the role of RoBERTa's
            ``classifier.dense``.
        fan_in_fan_out: True when weights are stored (in, out), as in GPT-2 ``Conv1D``.
        position_embeddings: path, relative to the backbone (``model.base_model``), of
            the absolute position-embedding table that the prefix methods shift;
            ``None`` for relative-position models (DeBERTa-v2), which they reject.
        causal: True for decoder-only families (GPT-2); BERT is causal only when
            ``config.is_decoder`` (``BertLMHeadModel``).
    """

    blocks: str
    targets: dict[str, Target]
    attn_out: str
    ffn_out: str
    ffn_ln: str
    pre_ln: bool
    head: tuple[str, ...] = field(default_factory=tuple)
    fan_in_fan_out: bool = False
    position_embeddings: str | None = None
    causal: bool = False


_BERT = ArchSpec(
    blocks="encoder.layer",
    targets={
        "q": Target("attention.self.query"),
        "k": Target("attention.self.key"),
        "v": Target("attention.self.value"),
        "o": Target("attention.output.dense"),
        "ffn_in": Target("intermediate.dense"),
        "ffn_out": Target("output.dense"),
    },
    attn_out="attention.output.dense",
    ffn_out="output.dense",
    ffn_ln="output.LayerNorm",
    pre_ln=False,
    head=("classifier", "pooler", "transform"),  # transform: BertLMHeadModel's LM head
    position_embeddings="embeddings.position_embeddings",
)

_DEBERTA_V2 = ArchSpec(
    blocks="encoder.layer",
    targets={
        "q": Target("attention.self.query_proj"),
        "k": Target("attention.self.key_proj"),
        "v": Target("attention.self.value_proj"),
        "o": Target("attention.output.dense"),
        "ffn_in": Target("intermediate.dense"),
        "ffn_out": Target("output.dense"),
    },
    attn_out="attention.output.dense",
    ffn_out="output.dense",
    ffn_ln="output.LayerNorm",
    pre_ln=False,
    head=("classifier", "pooler"),
)

_GPT2 = ArchSpec(
    blocks="h",
    targets={
        "q": Target("attn.c_attn", 0, 3),
        "k": Target("attn.c_attn", 1, 3),
        "v": Target("attn.c_attn", 2, 3),
        "o": Target("attn.c_proj"),
        "ffn_in": Target("mlp.c_fc"),
        "ffn_out": Target("mlp.c_proj"),
    },
    attn_out="attn.c_proj",
    ffn_out="mlp.c_proj",
    ffn_ln="ln_2",
    pre_ln=True,
    head=("score",),  # lm_head is tied to wte and stays frozen
    fan_in_fan_out=True,
    position_embeddings="wpe",
    causal=True,
)

# Llama, Mistral and Qwen2 share one layout: pre-RMSNorm decoder, grouped-query
# attention, gated MLP, rotary positions (so no table for the prefix methods).
_LLAMA = ArchSpec(
    blocks="layers",
    targets={
        "q": Target("self_attn.q_proj"),
        "k": Target("self_attn.k_proj"),
        "v": Target("self_attn.v_proj"),
        "o": Target("self_attn.o_proj"),
        "gate": Target("mlp.gate_proj"),
        "up": Target("mlp.up_proj"),
        "down": Target("mlp.down_proj"),
    },
    attn_out="self_attn.o_proj",
    ffn_out="mlp.down_proj",
    ffn_ln="post_attention_layernorm",
    pre_ln=True,
    head=("score",),  # lm_head is never adapted nor trained, as in peft
    causal=True,
)

_OPT = ArchSpec(
    blocks="decoder.layers",
    targets={
        "q": Target("self_attn.q_proj"),
        "k": Target("self_attn.k_proj"),
        "v": Target("self_attn.v_proj"),
        "o": Target("self_attn.out_proj"),
        "ffn_in": Target("fc1"),
        "ffn_out": Target("fc2"),
    },
    attn_out="self_attn.out_proj",
    ffn_out="fc2",
    ffn_ln="final_layer_norm",
    pre_ln=True,  # do_layer_norm_before=True for every OPT size but 350m
    head=("score",),
    # the position table has an offset of 2 that the prefix methods do not model
    causal=True,
)

_DISTILBERT = ArchSpec(
    blocks="transformer.layer",
    targets={
        "q": Target("attention.q_lin"),
        "k": Target("attention.k_lin"),
        "v": Target("attention.v_lin"),
        "o": Target("attention.out_lin"),
        "ffn_in": Target("ffn.lin1"),
        "ffn_out": Target("ffn.lin2"),
    },
    attn_out="attention.out_lin",
    ffn_out="ffn.lin2",
    ffn_ln="output_layer_norm",
    pre_ln=False,
    head=("pre_classifier", "classifier"),
)

ARCHITECTURES: dict[str, ArchSpec] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "electra": _BERT,
    "deberta-v2": _DEBERTA_V2,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "opt": _OPT,
    "distilbert": _DISTILBERT,
}


def arch_spec(model_or_type: nn.Module | str) -> ArchSpec:
    """Return the :class:`ArchSpec` of a model (or a ``config.model_type`` string).

    Raises:
        ValueError: the architecture is not supported; the message lists those that are.
    """
    model_type = (
        model_or_type
        if isinstance(model_or_type, str)
        else getattr(getattr(model_or_type, "config", None), "model_type", None)
    )
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"unsupported architecture model_type={model_type!r}; "
            f"supported: {', '.join(sorted(ARCHITECTURES))}; for other models pass module "
            "names or a regex as targets (e.g. targets=['q_proj', 'v_proj'])"
        )
    return ARCHITECTURES[model_type]


#: Heads assumed for architectures outside :data:`ARCHITECTURES` (peft's
#: sequence-classification defaults).
GENERIC_HEAD = ("classifier", "score")


def find_spec(model: nn.Module) -> ArchSpec | None:
    """The :class:`ArchSpec` of ``model``'s ``config.model_type``; ``None`` if unsupported."""
    return ARCHITECTURES.get(getattr(getattr(model, "config", None), "model_type", None))


def model_head(model: nn.Module) -> tuple[str, ...]:
    """Task-head module names of ``model``: its :attr:`ArchSpec.head`, or
    :data:`GENERIC_HEAD` for an architecture outside :data:`ARCHITECTURES`."""
    spec = find_spec(model)
    return spec.head if spec is not None else GENERIC_HEAD


def normalize_targets(targets: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Map user target names (``"q"``, ``"W_q"``, ``"query"`` ...) to canonical ones.

    Returns the canonical names in the paper's order (q, k, v, o, ffn_in, ffn_out,
    gate, up, down).

    Raises:
        ValueError: an unknown or empty target; the message lists the valid names.
    """
    if isinstance(targets, str):
        targets = [t for t in targets.replace("+", ",").split(",") if t]
    if not targets:
        raise ValueError(f"targets must not be empty; valid names: {', '.join(TARGET_NAMES)}")
    canon = set()
    for t in targets:
        key = str(t).strip().lower()
        if key not in TARGET_ALIASES:
            raise ValueError(f"unknown LoRA target {t!r}; {_VALID_TARGETS}")
        canon.add(TARGET_ALIASES[key])
    return tuple(n for n in TARGET_NAMES if n in canon)


_VALID_TARGETS = (
    f"valid names: {', '.join(TARGET_NAMES)} (W_q-style aliases accepted), a module name "
    f"or dotted suffix (e.g. 'self_attn.q_proj'), a regex string, or {ALL_LINEAR!r}"
)


def _is_paper_name(t: object) -> bool:
    return isinstance(t, str) and t.strip().lower() in TARGET_ALIASES


@dataclass(frozen=True)
class TargetSpec:
    """A parsed ``targets`` value (see :func:`parse_targets`).

    Attributes:
        paper: canonical paper names (q, k, v, o, ffn_in, ffn_out, gate, up, down).
        modules: module names matched exactly or as a dotted suffix (peft list rule).
        regex: pattern matched with ``re.fullmatch`` on full module names (peft str rule).
        all_linear: every linear projection inside the transformer blocks.
    """

    paper: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    regex: str | None = None
    all_linear: bool = False


def parse_targets(targets: list[str] | tuple[str, ...] | str) -> TargetSpec:
    """Tell the forms of ``targets`` apart without looking at a model.

    * ``"all-linear"``: every ``nn.Linear``/``Conv1D`` in the blocks (not the heads).
    * a string of paper names, ``"q,v"`` or ``"q+v"``: those matrices.
    * any other string: a regular expression, full match on the module's full name.
    * a list: paper names (``"q"``, ``"W_q"`` ...) and module names, the latter
      matched exactly or as a dotted suffix (``"q_proj"`` matches
      ``model.layers.0.self_attn.q_proj``), as peft's list form.

    Raises:
        ValueError: empty targets, a non-string entry, or an invalid regex.
    """
    if isinstance(targets, str):
        text = targets.strip()
        if text.lower() == ALL_LINEAR:
            return TargetSpec(all_linear=True)
        parts = [t for t in text.replace("+", ",").split(",") if t.strip()]
        if parts and all(_is_paper_name(t) for t in parts):
            return TargetSpec(paper=normalize_targets(parts))
        if not text:
            raise ValueError(f"targets must not be empty; {_VALID_TARGETS}")
        try:
            re.compile(text)
        except re.error as err:
            raise ValueError(
                f"targets {text!r} is not a valid regex ({err}); {_VALID_TARGETS}"
            ) from None
        return TargetSpec(regex=text)
    items = list(targets or ())
    if not items:
        raise ValueError(f"targets must not be empty; {_VALID_TARGETS}")
    bad = [t for t in items if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"targets entries must be non-empty strings; got {bad[0]!r}")
    if [t.strip().lower() for t in items] == [ALL_LINEAR]:
        return TargetSpec(all_linear=True)
    paper = [t for t in items if _is_paper_name(t)]
    modules = tuple(dict.fromkeys(t.strip() for t in items if not _is_paper_name(t)))
    return TargetSpec(paper=normalize_targets(paper) if paper else (), modules=modules)


def canonical_targets(targets: list[str] | tuple[str, ...] | str) -> list[str] | str:
    """``targets`` in the canonical form stored in configs; validates the form only.

    Paper names are canonicalised (``"W_q"`` -> ``"q"``); a regex or ``"all-linear"``
    stays a string. Raises ``ValueError`` as :func:`parse_targets`.
    """
    parsed = parse_targets(targets)
    if parsed.all_linear:
        return ALL_LINEAR
    if parsed.regex is not None:
        return parsed.regex
    return [*parsed.paper, *parsed.modules]


def find_blocks(model: nn.Module, spec: ArchSpec | None = None) -> nn.ModuleList:
    """Return the ``nn.ModuleList`` of transformer blocks of ``model``.

    Raises:
        ValueError: no module path ends with ``spec.blocks``.
    """
    spec = spec or arch_spec(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (
            name == spec.blocks or name.endswith("." + spec.blocks)
        ):
            return module
    raise ValueError(f"no transformer block list '*.{spec.blocks}' found in {type(model).__name__}")


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    """``root.get_submodule(path)`` with the path in the error message."""
    try:
        return root.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"module path {path!r} not found in {type(root).__name__}") from err


def set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the module at dotted ``path`` below ``root`` with ``new``."""
    parent_path, _, child = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, child, new)


def module_name(root: nn.Module, module: nn.Module) -> str:
    """Dotted path of ``module`` below ``root`` (``""`` for ``root`` itself).

    Raises:
        ValueError: ``module`` is not a submodule of ``root``.
    """
    for name, m in root.named_modules():
        if m is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(root).__name__}")
