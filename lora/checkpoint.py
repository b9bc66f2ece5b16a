"""Save and load what a method trained: safetensors weights plus a JSON config.

The file pair (``adapter_model.safetensors``, ``adapter_config.json``) holds only the
parameters with ``requires_grad`` (LoRA A/B, head, and any unfrozen biases), so a
RoBERTa-base LoRA checkpoint is a few MB instead of 500 MB (paper §4.2).

Two formats share these file names: ours (the config has ``method``, any method, and
records the base model's identity) and peft's (``peft_type``, LoRA only; see
:mod:`lora.peft_format`). :func:`load_adapter` tells them apart by itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lora.methods import make_method
from lora.peft_format import export_peft, load_peft, shape_error
from lora.registry import MethodConfig, meta_skeleton

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
FORMATS = ("native", "peft")

# Config fields that do not change the weights' meaning (runtime switches, labels,
# bookkeeping); left out of the base-model identity.
_VOLATILE = {
    "_name_or_path", "name_or_path", "transformers_version", "architectures", "dtype",
    "torch_dtype", "use_cache", "output_attentions", "output_hidden_states", "return_dict",
    "_attn_implementation", "_attn_implementation_internal", "attn_implementation",
    "id2label", "label2id", "num_labels", "problem_type", "_commit_hash",
}  # fmt: skip


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> tensor of every parameter with ``requires_grad``."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def base_model_identity(model: nn.Module) -> dict[str, Any]:
    """Name, ``model_type`` and weight-relevant config fields of ``model``'s base.

    Stored by :func:`save_adapter` and compared by :func:`load_adapter`.
    """
    config = getattr(model, "config", None)
    if config is None:
        return {}
    fields = {
        k: v for k, v in config.to_dict().items()
        if k not in _VOLATILE and "dropout" not in k and not k.startswith("_")
    }  # fmt: skip
    return {
        "name_or_path": str(getattr(config, "_name_or_path", "") or ""),
        "model_type": getattr(config, "model_type", None),
        # JSON round trip so saved and live values compare alike (tuples vs lists)
        "config": json.loads(json.dumps(fields, default=str, sort_keys=True)),
    }


def check_base_model(saved: dict[str, Any], model: nn.Module) -> None:
    """Raise a one-line ``ValueError`` if ``model`` is not the base the adapter was saved from.

    Compares ``model_type``, the name when both are known, then the config fields
    present in both (naming the first that differs).
    """
    if not saved:
        return  # checkpoints written before identities were recorded
    cur = base_model_identity(model)
    if saved.get("model_type") != cur.get("model_type"):
        raise ValueError(
            f"adapter does not fit the model: saved for a {saved.get('model_type')!r} base "
            f"model, this is a {cur.get('model_type')!r} model"
        )
    a, b = saved.get("name_or_path") or "", cur.get("name_or_path") or ""
    if a and b and a != b:
        raise ValueError(
            f"adapter does not fit the model: saved for base model {a!r}, this is {b!r} "
            "(pass check_base=False to load anyway)"
        )
    sc, cc = saved.get("config", {}), cur.get("config", {})
    for key in sorted(set(sc) & set(cc)):
        if sc[key] != cc[key]:
            raise ValueError(
                f"adapter does not fit the model: base config {key}={sc[key]!r} in the "
                f"checkpoint, {cc[key]!r} in this model (pass check_base=False to load anyway)"
            )


def save_adapter(
    model: nn.Module,
    path: str | os.PathLike,
    method: MethodConfig,
    metadata: dict[str, Any] | None = None,
    format: str = "native",
) -> Path:
    """Write the trained parameters and the method config to folder ``path``.

    Args:
        model: the adapted model (merged or not: LoRA A/B are stored either way).
        path: output folder, created if missing.
        method: the config that adapted the model; stored so :func:`load_adapter`
            can rebuild the same structure.
        metadata: extra JSON-serialisable fields (task ...), native format only.
        format: ``"native"`` (any method; records the base model's name and config) or
            ``"peft"`` (LoRA only; ``peft.PeftModel.from_pretrained(base, path)`` loads
            it and gives the same outputs; GPT-2's q/v slices become one rank-2r
            ``c_attn`` adapter).

    Returns:
        The folder path.

    Raises:
        ValueError: unknown ``format``; ``"peft"`` on a model without LoRA layers.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    out = Path(path)
    identity = base_model_identity(model)
    if format == "peft":
        config, tensors = export_peft(model, method, identity.get("name_or_path") or None)
    else:
        tensors = {n: t.contiguous().clone() for n, t in trainable_state_dict(model).items()}
        config = {**method.to_dict(), "metadata": metadata or {}, "base_model": identity}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_NAME))
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
    return out


def load_adapter(model: nn.Module, path: str | os.PathLike, check_base: bool = True) -> nn.Module:
    """Adapt a fresh base model as saved in ``path`` and load the trained weights.

    Reads both our format and a folder written by peft's ``save_pretrained`` (told
    apart by ``method`` / ``peft_type`` in the config). Everything is checked before
    the model is changed: on any error the model is left exactly as it was.

    Args:
        model: the base model (not yet adapted).
        path: the folder.
        check_base: compare the base model's name and config with those recorded at
            save time (native format).

    Raises:
        FileNotFoundError: ``path`` lacks the weights or config file.
        ValueError: another base model (names the differing field), saved tensors that
            do not match the adapted model's trainable parameters (names both shapes,
            e.g. ``lora_A of layer X: checkpoint (8, 384), model (4, 384)``), or a
            peft setting we cannot reproduce.
    """
    folder = Path(path)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; was it written by save_adapter?")
    config = json.loads((folder / CONFIG_NAME).read_text())
    tensors = load_file(str(folder / WEIGHTS_NAME))
    if "peft_type" in config and "method" not in config:
        return load_peft(model, config, tensors)
    config.pop("metadata", None)
    identity = config.pop("base_model", None)
    method = make_method(config.pop("method"), **config)
    if check_base:
        check_base_model(identity or {}, model)
    # Rehearse on a weightless copy to learn the expected names and shapes.
    expected = {
        n: tuple(p.shape)
        for n, p in trainable_state_dict(method.apply(meta_skeleton(model))).items()
    }
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(
            f"adapter does not fit the model: missing {missing[:3]}, extra {extra[:3]}"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != expected[name]:
            module, _, leaf = name.rpartition(".")
            raise shape_error(leaf, module, tuple(tensor.shape), expected[name])
    method.apply(model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    return model


def load_adapter_weights(
    model: nn.Module, path: str | os.PathLike, skip: tuple[str, ...] = ()
) -> list[str]:
    """Copy saved weights into a model adapted the same way, leaving ``skip`` modules out.

    This is how the paper starts MRPC, RTE and STS-B from the MNLI LoRA checkpoint
    (§D.1): the LoRA weights carry over, the task head (another size) does not.

    Args:
        model: a model already adapted with the saved method's structure.
        path: a folder written by :func:`save_adapter`.
        skip: module names (path components) whose tensors are not loaded, e.g. the head.

    Returns:
        The names of the loaded tensors.

    Raises:
        FileNotFoundError: no weights file in ``path``.
        ValueError: a saved tensor has no counterpart of the same shape in ``model``.
    """
    weights = Path(path) / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found; was it written by save_adapter?")
    params = dict(model.named_parameters())
    loaded = []
    with torch.no_grad():
        for name, tensor in load_file(str(weights)).items():
            if any(s in name.split(".") for s in skip):
                continue
            if name not in params or params[name].shape != tensor.shape:
                raise ValueError(
                    f"saved tensor {name} {tuple(tensor.shape)} does not fit the model"
                )
            params[name].copy_(tensor)
            loaded.append(name)
    return loaded
