"""LoRA+ (Hayou et al. 2024, arXiv 2402.12354): a larger learning rate for B than for A.

LoRA+ §3 shows that, for wide models, B should learn faster than A: η_B = λ·η_A with
λ ≫ 1 (the paper's default is 2^4 = 16). The model is unchanged; only the optimizer's
parameter groups differ, so this module builds them for any ``torch.optim`` optimizer.
"""

from __future__ import annotations

from typing import Any

from torch import nn

LORAPLUS_DEFAULT_RATIO = 16.0


def loraplus_param_groups(
    model: nn.Module,
    lr: float,
    loraplus_lr_ratio: float = LORAPLUS_DEFAULT_RATIO,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for LoRA+ over the trainable parameters of ``model``.

    Groups (empty ones are dropped; each carries a ``"name"`` key):

    * ``"lora_B"``: every ``lora_B`` matrix, lr = ``lr · loraplus_lr_ratio``,
      ``weight_decay``;
    * ``"base"``: the other trainable tensors with ≥ 2 dims (``lora_A``, the task
      head's weights), lr = ``lr``, ``weight_decay``;
    * ``"no_decay"``: trainable 1-D tensors (biases, LayerNorm weights, DoRA's
      magnitude), lr = ``lr``, weight decay 0, as transformers' Trainer does.

    peft's ``create_loraplus_optimizer`` gives the same rates to ``lora_A``/``lora_B``
    but also puts every 1-D trainable tensor (head biases, DoRA magnitude) at the B
    rate; here only B is sped up, as in the LoRA+ paper, and the head keeps ``lr``.

    Args:
        model: an adapted model whose ``requires_grad`` flags are final.
        lr: η_A, > 0.
        loraplus_lr_ratio: λ = η_B / η_A, > 0 (LoRA+ default 16).
        weight_decay: decoupled weight decay of the 2-D groups, ≥ 0.

    Returns:
        A list of dicts ``{"name", "params", "lr", "weight_decay"}`` to pass to e.g.
        ``torch.optim.AdamW(groups)``; parameters in ``model.named_parameters()`` order.

    Raises:
        ValueError: ``lr`` or ``loraplus_lr_ratio`` not > 0, ``weight_decay`` < 0, or
            no trainable ``lora_B`` in ``model``.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    if not loraplus_lr_ratio > 0:
        raise ValueError(f"loraplus_lr_ratio must be > 0; got {loraplus_lr_ratio!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}")
    groups = {
        "lora_B": {"params": [], "lr": lr * loraplus_lr_ratio, "weight_decay": weight_decay},
        "base": {"params": [], "lr": lr, "weight_decay": weight_decay},
        "no_decay": {"params": [], "lr": lr, "weight_decay": 0.0},
    }
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = "lora_B" if "lora_B" in name else ("base" if p.ndim >= 2 else "no_decay")
        groups[key]["params"].append(p)
    if not groups["lora_B"]["params"]:
        raise ValueError("loraplus_param_groups needs a model with trainable lora_B (method=lora)")
    return [{"name": k, **g} for k, g in groups.items() if g["params"]]
