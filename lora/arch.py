"""Where the paper's weight matrices live in each Hugging Face architecture.

The paper names the attention projections W_q, W_k, W_v, W_o (§4.2) and adapts
"only the attention weights"; we also expose the two MLP matrices (``ffn_in``,
``ffn_out``) for extensions. This module maps those names to module paths for
every architecture the harness supports, and records the other places the
baselines need (block list, task head, LayerNorms).

Errors: :func:`arch_spec` raises ``ValueError`` naming the supported
``model_type`` values when an architecture is unknown.
"""

from __future__ import annotations

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
}  # fmt: skip
TARGET_NAMES = ("q", "k", "v", "o", "ffn_in", "ffn_out")


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

ARCHITECTURES: dict[str, ArchSpec] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "electra": _BERT,
    "deberta-v2": _DEBERTA_V2,
    "gpt2": _GPT2,
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
            f"supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[model_type]


def normalize_targets(targets: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Map user target names (``"q"``, ``"W_q"``, ``"query"`` ...) to canonical ones.

    Returns the canonical names in the paper's order (q, k, v, o, ffn_in, ffn_out).

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
            raise ValueError(
                f"unknown LoRA target {t!r}; valid names: {', '.join(TARGET_NAMES)} "
                "(W_q-style aliases accepted)"
            )
        canon.add(TARGET_ALIASES[key])
    return tuple(n for n in TARGET_NAMES if n in canon)


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
