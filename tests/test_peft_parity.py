"""Parity with peft's LoRA: same A and B give the same outputs (within 1e-5, fp32).

peft wraps whole modules only, so GPT-2 is compared on ``attn.c_proj`` (W_o), a
Conv1D it also wraps; it cannot adapt single q/v slices of ``c_attn``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from lora import apply_lora, lora_layers
from tests.conftest import randomize_lora

peft = pytest.importorskip("peft")


def _copy_into_peft(ours: torch.nn.Module, theirs: torch.nn.Module) -> int:
    ours_by_name = {n: m for n, m in ours.named_modules() if m in lora_layers(ours)}
    copied = 0
    for name, module in theirs.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            key = name.removeprefix("base_model.model.")
            layer = ours_by_name[key]
            with torch.no_grad():
                module.lora_A["default"].weight.copy_(layer.lora_A)
                module.lora_B["default"].weight.copy_(layer.lora_B)
            copied += 1
    return copied


@pytest.mark.parametrize(
    ("model_name", "targets", "peft_modules"),
    [("bert", ["q", "v"], ["query", "value"]), ("gpt2", ["o"], ["c_proj"])],
)
def test_outputs_match_peft(model_name, targets, peft_modules, request, token_ids):
    base = request.getfixturevalue(model_name)
    ours = apply_lora(copy.deepcopy(base), targets, r=4, lora_alpha=8)
    randomize_lora(ours)
    # GPT-2's MLP also has a c_proj: restrict peft to the attention one.
    target_modules = peft_modules if model_name == "bert" else r".*attn\.c_proj"
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=target_modules,
                             fan_in_fan_out=model_name == "gpt2")  # fmt: skip
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    assert _copy_into_peft(ours, theirs) == len(lora_layers(ours)) > 0
    theirs.eval()
    torch.testing.assert_close(ours(token_ids).logits, theirs(token_ids).logits, atol=1e-5, rtol=0)
    assert not torch.allclose(ours(token_ids).logits, base(token_ids).logits, atol=1e-4)
