"""LoRA layer behaviour: init, merge/unmerge, gradients, fused slices (paper §4.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora import FusedLinear, Linear, apply_lora, lora_layers, merge_lora, unmerge_lora
from tests.conftest import randomize_lora


def test_output_equals_base_at_init(bert, token_ids):
    base = bert(token_ids).logits
    apply_lora(bert, ["q", "v"], r=4, lora_alpha=8)
    assert torch.equal(bert(token_ids).logits, base)
    assert all(torch.count_nonzero(m.lora_B) == 0 for m in lora_layers(bert))
    assert all(torch.count_nonzero(m.lora_A) > 0 for m in lora_layers(bert))


@pytest.mark.parametrize("init", ["kaiming", "gaussian"])
def test_init_schemes(init):
    layer = Linear(nn.Linear(64, 48), r=8, lora_alpha=8, init=init)
    a = layer.lora_A.detach()
    if init == "gaussian":
        assert 0.015 < a.std().item() < 0.025  # N(0, 0.02²)
    else:
        bound = 1 / 64**0.5  # kaiming_uniform(a=√5) on fan_in 64
        assert a.abs().max().item() <= bound + 1e-6 and a.std().item() > bound / 3


@pytest.mark.parametrize("model_name", ["bert", "gpt2"])
def test_merged_matches_unmerged_and_unmerge_is_exact(model_name, request, token_ids):
    model = request.getfixturevalue(model_name)
    apply_lora(model, ["q", "k", "v", "o"], r=4, lora_alpha=16)
    randomize_lora(model)
    w0 = [m.base_layer.weight.detach().clone() for m in lora_layers(model)]
    out = lambda: model(token_ids).logits  # noqa: E731
    unmerged = out()
    assert not torch.allclose(unmerged, model.__class__(model.config).eval()(token_ids).logits)
    merge_lora(model)
    merged_once = [m.base_layer.weight.detach().clone() for m in lora_layers(model)]
    merge_lora(model)  # second merge is a no-op
    for m, w in zip(lora_layers(model), merged_once, strict=True):
        assert torch.equal(m.base_layer.weight, w)
    torch.testing.assert_close(out(), unmerged, atol=1e-5, rtol=0)
    unmerge_lora(model)
    unmerge_lora(model)
    for m, w in zip(lora_layers(model), w0, strict=True):
        assert torch.equal(m.base_layer.weight, w)  # bit for bit
    assert torch.equal(out(), unmerged)


def test_merged_forward_is_base_forward():
    layer = Linear(nn.Linear(16, 8), r=2, lora_alpha=4)
    nn.init.normal_(layer.lora_B)
    layer.merge()
    x = torch.randn(5, 16)
    assert torch.equal(layer(x), layer.base_layer(x))


def test_unmerge_by_subtraction_is_close():
    layer = Linear(nn.Linear(16, 8), r=2, lora_alpha=4)
    nn.init.normal_(layer.lora_B)
    w0 = layer.base_layer.weight.detach().clone()
    layer.merge(keep_base=False)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, w0, atol=1e-6, rtol=0)


def test_bf16_merge_uses_fp32_delta():
    layer = Linear(nn.Linear(32, 32).to(torch.bfloat16), r=4, lora_alpha=8)
    nn.init.normal_(layer.lora_B, std=1e-3)
    delta = layer.delta_weight()
    assert delta.dtype == torch.bfloat16
    expected = (layer.lora_B.float() @ layer.lora_A.float() * 2).to(torch.bfloat16)
    assert torch.equal(delta, expected)


def test_only_lora_and_head_receive_gradients(bert, token_ids):
    apply_lora(bert, ["q", "v"], r=4, lora_alpha=8)
    randomize_lora(bert)
    bert.train()
    bert(token_ids, labels=torch.tensor([0, 1, 1])).loss.backward()
    with_grad = {n for n, p in bert.named_parameters() if p.grad is not None}
    assert with_grad, "nothing received a gradient"
    for name in with_grad:
        assert "lora_" in name or "classifier" in name or "pooler" in name, name
    expected = {n for n, p in bert.named_parameters() if p.requires_grad}
    assert with_grad == expected
    assert any("lora_A" in n for n in with_grad) and any("lora_B" in n for n in with_grad)


def test_fused_c_attn_changes_only_q_and_v_slices(gpt2):
    apply_lora(gpt2, ["q", "v"], r=4, lora_alpha=8)
    randomize_lora(gpt2)
    layer = gpt2.transformer.h[0].attn.c_attn
    assert isinstance(layer, FusedLinear) and isinstance(layer.base_layer, Conv1D)
    assert layer.enable == (True, False, True)
    x = torch.randn(4, 32)
    delta = layer(x) - layer.base_layer(x)
    q, k, v = delta.split(32, dim=-1)
    assert torch.count_nonzero(k) == 0
    assert q.abs().max() > 1e-3 and v.abs().max() > 1e-3
    # the merged weight (Conv1D layout: in x out) differs only in the q and v columns
    w0 = layer.base_layer.weight.detach().clone()
    layer.merge()
    changed = (layer.base_layer.weight != w0).any(dim=0)
    assert not changed[32:64].any() and changed[:32].all() and changed[64:].all()


def test_fused_matches_separate_linear_layers():
    """A fused slice behaves exactly like a Linear LoRA on that slice alone."""
    torch.manual_seed(0)
    conv = Conv1D(3 * 8, 8)
    fused = FusedLinear(conv, r=2, lora_alpha=4, enable=(True, False, True), fan_in_fan_out=True)
    nn.init.normal_(fused.lora_B)
    x = torch.randn(5, 8)
    delta = fused.lora_forward(x)
    a_q, a_v = fused.lora_A.split(2)
    b_q, b_v = fused.lora_B.split(8)
    torch.testing.assert_close(delta[:, :8], x @ a_q.T @ b_q.T * 2)
    torch.testing.assert_close(delta[:, 16:], x @ a_v.T @ b_v.T * 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0}, "r must be >= 1"),
        ({"r": 2, "lora_dropout": 1.5}, "lora_dropout"),
        ({"r": 2, "init": "xavier"}, "init must be one of"),
    ],
)
def test_layer_rejects_bad_settings(kwargs, message):
    r = kwargs.pop("r")
    with pytest.raises(ValueError, match=message):
        Linear(nn.Linear(4, 4), r=r, lora_alpha=1, **kwargs)
