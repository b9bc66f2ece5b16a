"""Merged-state safety: training a merged model, and state_dict round trips (§4.1)."""

from __future__ import annotations

import copy

import pytest
import torch

from lora import apply_lora, lora_layers, merge_lora
from tests.conftest import randomize_lora, tiny_bert, tiny_gpt2

VARIANTS = [{}, {"use_rslora": True}, {"use_dora": True}]


def _adapted(**kwargs) -> torch.nn.Module:
    model = apply_lora(tiny_bert(), ["q", "v"], r=4, lora_alpha=8, **kwargs)
    randomize_lora(model)
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_after_merge_unmerges_and_grads_reach_a_and_b(variant, token_ids):
    model = _adapted(**variant)
    w0 = [m.base_layer.weight.detach().clone() for m in lora_layers(model)]
    merge_lora(model)
    model.train()
    assert not any(m.merged for m in lora_layers(model))
    for m, w in zip(lora_layers(model), w0, strict=True):
        assert torch.equal(m.base_layer.weight, w)
    model(token_ids, labels=torch.tensor([0, 1, 1])).loss.backward()
    for m in lora_layers(model):
        assert m.lora_A.grad is not None and m.lora_A.grad.abs().sum() > 0
        assert m.lora_B.grad is not None and m.lora_B.grad.abs().sum() > 0


def test_eval_keeps_merged_state():
    model = _adapted()
    merge_lora(model)
    model.eval()
    assert all(m.merged for m in lora_layers(model))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("keep_base", [True, False])
@pytest.mark.parametrize("target_merged", [False, True])
def test_merged_state_dict_round_trip(variant, keep_base, target_merged, token_ids):
    source = _adapted(**variant)
    expected = source(token_ids).logits
    merge_lora(source, keep_base=keep_base)
    state = copy.deepcopy(source.state_dict())
    # the saved base weight is W0, not W0 + ΔW
    for name, m in source.named_modules():
        if m in lora_layers(source):
            w0 = m._w0 if keep_base else None
            if w0 is not None:
                assert torch.equal(state[f"{name}.base_layer.weight"], w0)
    target = apply_lora(tiny_bert(seed=5), ["q", "v"], r=4, lora_alpha=8, **variant)
    if target_merged:
        randomize_lora(target, seed=7)
        merge_lora(target)
    target.load_state_dict(state)
    assert all(m.merged == target_merged for m in lora_layers(target))
    torch.testing.assert_close(target(token_ids).logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(source(token_ids).logits, expected, atol=1e-5, rtol=0)


def test_fused_gpt2_merged_state_dict_round_trip(token_ids):
    """Conv1D layout and fused q/v slices: W0 is saved, ΔW applied once after loading."""
    source = apply_lora(tiny_gpt2(), ["q", "v"], r=4, lora_alpha=8)
    randomize_lora(source)
    expected = source(token_ids).logits
    merge_lora(source, keep_base=False)
    target = apply_lora(tiny_gpt2(seed=3), ["q", "v"], r=4, lora_alpha=8)
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(token_ids).logits, expected, atol=1e-5, rtol=0)
    target.train()
    target(token_ids, labels=token_ids).loss.backward()
    assert all(m.lora_B.grad.abs().sum() > 0 for m in lora_layers(target))
