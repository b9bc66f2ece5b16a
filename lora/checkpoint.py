"""Save and load what a method trained: safetensors weights plus a JSON config.

The file pair (``adapter_model.safetensors``, ``adapter_config.json``) holds only the
parameters with ``requires_grad`` (LoRA A/B, head, and any unfrozen biases), so a
RoBERTa-base LoRA checkpoint is a few MB instead of 500 MB (paper §4.2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lora.methods import MethodConfig, make_method

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> tensor of every parameter with ``requires_grad``."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def save_adapter(
    model: nn.Module,
    path: str | os.PathLike,
    method: MethodConfig,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the trained parameters and the method config to folder ``path``.

    Args:
        model: the adapted model (merged or not: LoRA A/B are stored either way).
        path: output folder, created if missing.
        method: the config that adapted the model; stored so :func:`load_adapter`
            can rebuild the same structure.
        metadata: extra JSON-serialisable fields (base model name, task ...).

    Returns:
        The folder path.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: t.contiguous().clone() for n, t in trainable_state_dict(model).items()}
    save_file(tensors, str(out / WEIGHTS_NAME))
    config = {**method.to_dict(), "metadata": metadata or {}}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
    return out


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Adapt a fresh base model as saved in ``path`` and load the trained weights.

    Raises:
        FileNotFoundError: ``path`` lacks the weights or config file.
        ValueError: the saved tensors do not match the rebuilt model's trainable
            parameters (names or shapes), e.g. a different base architecture.
    """
    folder = Path(path)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; was it written by save_adapter?")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config.pop("metadata", None)
    method = make_method(config.pop("method"), **config)
    method.apply(model)
    tensors = load_file(str(folder / WEIGHTS_NAME))
    expected = trainable_state_dict(model)
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(
            f"adapter does not fit the model: missing {missing[:3]}, extra {extra[:3]}"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise ValueError(f"shape mismatch for {name}: {tuple(tensor.shape)} vs model")
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
