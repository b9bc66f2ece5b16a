"""Read and write peft's LoRA checkpoint format (``adapter_config.json`` + safetensors).

peft (huggingface/peft) stores LoRA as ``base_model.model.<module>.lora_A.weight``
(r, in) and ``...lora_B.weight`` (out, r), DoRA magnitudes as
``...lora_magnitude_vector`` (out,), and heads/biases under their plain names; the
config is its ``LoraConfig`` as JSON with ``peft_type: "LORA"``. Our parameter names
are the same without the prefix and the ``.weight`` of A and B, so conversion is a
renaming, except for GPT-2's fused ``c_attn`` whose q/v slices peft cannot adapt
alone: we export an equivalent whole-``c_attn`` adapter of rank n·r with a
block-diagonal B (zero rows for the k slice), exact up to float rounding.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora.arch import model_head
from lora.inject import freeze_base, wrap_modules
from lora.layers import FusedLinear, Linear, LoRALayer

PREFIX = "base_model.model."
_INIT_TO_PEFT = {"kaiming": True, "gaussian": "gaussian", "pissa": "pissa"}
_INIT_FROM_PEFT = {True: "kaiming", False: "kaiming", "gaussian": "gaussian", "pissa": "pissa"}
# peft settings we cannot reproduce: loading them would silently change outputs.
_UNSUPPORTED = {
    "lora_bias": False, "target_parameters": None, "layer_replication": None,
    "use_qalora": False, "alora_invocation_tokens": None, "trainable_token_indices": None,
    "use_bdlora": None,
}  # fmt: skip


def _task_type(model: nn.Module) -> str | None:
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "CAUSAL_LM"
    if name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    return None


def _fused_to_whole(layer: FusedLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (n·r, in), B (out, n·r)) of the whole fused module: B is block-diagonal.

    Our enabled slice e updates output rows [s·d, (s+1)·d) (s its slice index) by
    B_e·A_e·x; stacking the A_e and placing each B_e at those rows and columns
    [e·r, (e+1)·r) gives the same update as one rank n·r adapter.
    """
    n, r, d = len(layer.slice_ids), layer.r, layer.slice_size
    b = layer.lora_B.detach()
    full = b.new_zeros(layer.out_features, n * r)
    for e, s in enumerate(layer.slice_ids.tolist()):
        full[s * d : (s + 1) * d, e * r : (e + 1) * r] = b[e * d : (e + 1) * d]
    return layer.lora_A.detach(), full


def export_peft(
    model: nn.Module, method: Any, base_model_name_or_path: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """peft ``adapter_config.json`` dict and safetensors dict of a LoRA-adapted model.

    Variants are read from the layers (``use_rslora``, ``use_dora``, ``init``) and the
    method config (``bias``, ``lora_dropout``), so newer layer features map to peft's
    keys without changes here.

    Returns:
        ``(config, tensors)``: the JSON dict and name -> contiguous tensor copies (A, B
        and DoRA magnitudes in the adapter dtype, heads and biases in theirs).

    Raises:
        ValueError: the model has no LoRA layers, other layers of this family (VeRA),
            or DoRA on a fused slice layer.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}
    if not layers:
        raise ValueError("format='peft' needs a LoRA-adapted model; this one has no LoRA layers")
    other = next((m for m in layers.values() if not isinstance(m, (Linear, FusedLinear))), None)
    if other is not None:
        raise ValueError(
            f"format='peft' writes LoRA layers only; this model has {type(other).__name__} "
            "layers (use format='native')"
        )
    first = next(iter(layers.values()))
    rslora = first.use_rslora
    dora = any(m.use_dora for m in layers.values())
    r0, alpha0 = first.r, first.lora_alpha
    tensors: dict[str, torch.Tensor] = {}
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    for name, layer in layers.items():
        rank, alpha = layer.r, layer.lora_alpha
        if isinstance(layer, FusedLinear):
            if layer.use_dora:
                raise ValueError(
                    f"cannot export DoRA on fused slices of {name} to peft: its magnitude "
                    "is per slice, peft's covers the whole module"
                )
            a, b = _fused_to_whole(layer)
            n = len(layer.slice_ids)
            rank = n * layer.r
            # keep peft's α/r (or α/√r) equal to ours at the larger rank
            alpha = layer.lora_alpha * (math.sqrt(n) if rslora else n)
        else:
            a, b = layer.lora_A.detach(), layer.lora_B.detach()
        if rank != r0:
            rank_pattern[re.escape(name)] = rank
        if alpha != alpha0:
            alpha_pattern[re.escape(name)] = alpha
        tensors[f"{PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{PREFIX}{name}.lora_B.weight"] = b
        mag = getattr(layer, "lora_magnitude_vector", None)
        if mag is not None:
            tensors[f"{PREFIX}{name}.lora_magnitude_vector"] = mag.detach()
    heads: list[str] = []
    head_names = tuple(getattr(method, "modules_to_save", None) or model_head(model))
    for pname, p in model.named_parameters():
        if not p.requires_grad or ".lora_" in pname or pname.startswith("lora_"):
            continue
        tensors[PREFIX + pname] = p.detach()
        heads += [h for h in head_names if h in pname.split(".") and h not in heads]
    config = {
        "peft_type": "LORA",
        "task_type": _task_type(model),
        "base_model_name_or_path": base_model_name_or_path,
        "r": r0,
        "lora_alpha": alpha0,
        "lora_dropout": float(getattr(method, "lora_dropout", 0.0)),
        "target_modules": sorted(layers),
        "modules_to_save": heads or None,
        "bias": getattr(method, "bias", "none"),
        "fan_in_fan_out": any(isinstance(m.base_layer, Conv1D) for m in layers.values()),
        "use_rslora": rslora,
        "use_dora": dora,
        "init_lora_weights": _INIT_TO_PEFT[first.init],
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "inference_mode": True,
    }
    return config, {k: v.contiguous().clone() for k, v in tensors.items()}


def _pattern_value(patterns: dict[str, Any], name: str, default: Any) -> Any:
    # peft's rule (utils/other.py get_pattern_key): key matches a dotted suffix of the name
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def shape_error(what: str, layer: str, saved: tuple, model: tuple) -> ValueError:
    """The one-line error for a checkpoint tensor whose shape does not fit the model."""
    return ValueError(
        f"adapter does not fit the model: {what} of layer {layer}: checkpoint {saved}, "
        f"model {model}"
    )


def load_peft(model: nn.Module, config: dict[str, Any], tensors: dict[str, torch.Tensor]):
    """Adapt ``model`` in place from a peft LoRA checkpoint; outputs equal peft's.

    Everything is checked before the model changes, so a failed load leaves it as it was.

    Args:
        model: a fresh base model (no LoRA layers).
        config: the parsed ``adapter_config.json`` (``peft_type == "LORA"``).
        tensors: the safetensors dict, keys ``base_model.model.<name>...``.

    Returns:
        The model, with LoRA layers at the checkpoint's modules and its head loaded.

    Raises:
        ValueError: not a LoRA checkpoint, a peft setting we cannot reproduce, the model
            already has LoRA layers, or a module/tensor that does not fit (both shapes
            are named).
    """
    if config.get("peft_type") != "LORA":
        raise ValueError(f"peft_type={config.get('peft_type')!r} is not supported; only 'LORA'")
    for key, default in _UNSUPPORTED.items():
        if config.get(key, default) not in (default, {}, []):
            raise ValueError(f"peft setting {key}={config[key]!r} is not supported by lora")
    init_value = config.get("init_lora_weights", True)
    if init_value not in _INIT_FROM_PEFT:
        raise ValueError(
            f"init_lora_weights={init_value!r} is not supported; supported: True, False, "
            "'gaussian', 'pissa'"
        )
    if any(isinstance(m, LoRALayer) for m in model.modules()):
        raise ValueError("model already has LoRA layers; load the adapter into a fresh model")
    state = {}
    # bias="all" also saves the head's modules_to_save copy under its wrapper name; the
    # copy is the trained one, so it goes last and wins.
    for k in sorted(tensors, key=lambda k: ".modules_to_save." in k):
        if ".original_module." in k:
            continue
        state[re.sub(r"\.modules_to_save\.[^.]+\.", ".", k.removeprefix(PREFIX))] = tensors[k]
    allowed = (".lora_A.weight", ".lora_B.weight")
    if config.get("use_dora"):
        allowed += (".lora_magnitude_vector", ".lora_magnitude_vector.weight")
    odd = [k for k in state if ".lora_" in k and not k.endswith(allowed)]
    if odd:
        raise ValueError(f"adapter does not fit the model: unexpected peft tensor {odd[0]}")
    lora_mods = sorted({k.rsplit(".lora_", 1)[0] for k in state if ".lora_" in k})
    named = dict(model.named_modules())
    params = dict(model.named_parameters())
    ranks, alphas = {}, {}
    for name in lora_mods:
        module = named.get(name)
        if module is None or not isinstance(module, (nn.Linear, Conv1D)):
            found = "not found" if module is None else f"a {type(module).__name__}"
            raise ValueError(f"adapter does not fit the model: peft module {name} is {found}")
        a, b = state.get(f"{name}.lora_A.weight"), state.get(f"{name}.lora_B.weight")
        if a is None or b is None:
            raise ValueError(f"adapter does not fit the model: {name} lacks lora_A or lora_B")
        w = module.weight
        d_in, d_out = (w.shape[0], w.shape[1]) if isinstance(module, Conv1D) else w.shape[::-1]
        r = a.shape[0]
        if tuple(a.shape) != (r, d_in):
            raise shape_error("lora_A", name, tuple(a.shape), (r, d_in))
        if tuple(b.shape) != (d_out, r):
            raise shape_error("lora_B", name, tuple(b.shape), (d_out, r))
        ranks[name] = r
        alphas[name] = _pattern_value(config.get("alpha_pattern") or {}, name, config["lora_alpha"])
    if not lora_mods:
        raise ValueError("adapter does not fit the model: the peft checkpoint has no LoRA weights")
    others = {}  # our parameter -> tensor; the same Parameter objects after wrapping
    for key, t in state.items():
        if ".lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")  # peft's wrapped bias is the module's bias
        if plain not in params:
            raise ValueError(f"adapter does not fit the model: no parameter {plain} for {key}")
        if tuple(params[plain].shape) != tuple(t.shape):
            module, _, leaf = plain.rpartition(".")
            raise shape_error(leaf, module, tuple(t.shape), tuple(params[plain].shape))
        others[params[plain]] = t
    # Checks passed: now change the model.
    kwargs: dict[str, Any] = {
        "lora_dropout": float(config.get("lora_dropout") or 0.0),
        "init": _INIT_FROM_PEFT[init_value],
    }
    for flag in ("use_rslora", "use_dora"):
        if config.get(flag):
            kwargs[flag] = True
    wrap_modules(model, dict.fromkeys(lora_mods), ranks, alphas, **kwargs)
    new_params = dict(model.named_parameters())
    with torch.no_grad():
        for key, t in state.items():
            if ".lora_" in key:  # checked above: every A, B (and DoRA m) has a layer now
                new_params[key.removesuffix(".weight")].copy_(t)
        for p, t in others.items():
            p.copy_(t)
    return freeze_base(model, config.get("bias", "none"), config.get("modules_to_save") or None)
