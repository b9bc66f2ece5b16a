"""Adapters and prefixes on a half-precision base: fp32 parameters, the fp16 recipe works.

peft's ``autocast_adapter_dtype=True``: on an fp16/bf16 model the added parameters are
fp32, so ``torch.amp.GradScaler`` can unscale their gradients; the forward casts into
and out of them, so the frozen base (and the logits) stay in the base dtype.
"""

from __future__ import annotations

import pytest
import torch

from lora import make_method
from lora.params import cast_adapter_dtype
from tests.test_baselines import KWARGS, VOCAB, tiny_bert, tiny_gpt2

METHODS = ("adapter_h", "adapter_l", "adapter_p", "adapter_d", "prefix_embed", "prefix_layer")
COMPOSED = {
    "adapter_p+prefix_embed": {"adapter_p": {"r": 4}, "prefix_embed": {"l_p": 3, "l_i": 2}},
    "lora+prefix_layer": {"lora": {"r": 4}, "prefix_layer": {"l_p": 3, "l_i": 2}},
}


def settings(method: str) -> dict:
    return COMPOSED.get(method, KWARGS.get(method, {}))


def lm_batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(2, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :3] = -100
    return {"input_ids": ids, "labels": labels}


def half_gpt2(method: str, dtype: torch.dtype, **kwargs):
    model = tiny_gpt2().to(dtype)
    make_method(method, **settings(method), **kwargs).apply(model)
    return model


def split(model):
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    return trainable, frozen


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", [*METHODS, *COMPOSED])
def test_half_base_keeps_method_params_fp32_and_steps_with_grad_scaler(method, dtype):
    model = half_gpt2(method, dtype)
    trainable, frozen = split(model)
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    assert all(p.dtype == dtype for p in frozen.values())
    model.train()
    with torch.no_grad():  # adapters start as the identity (W_up = 0): move them off it
        for p in trainable.values():
            p.add_(torch.randn_like(p) * 0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = model(**lm_batch())
    assert out.logits.dtype == dtype  # results are cast back to the base dtype
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = torch.optim.SGD(trainable.values(), lr=0.1)
    scaler.scale(out.loss).backward()
    scaler.step(opt)  # raises "Attempting to unscale FP16 gradients" on fp16 params
    scaler.update()
    assert scaler.get_scale() == 2.0**10  # the step was not skipped (finite gradients)
    for n, p in trainable.items():
        assert p.grad is not None and p.grad.dtype == torch.float32, n
    assert all(not torch.equal(p, before[n]) for n, p in trainable.items())
    assert all(torch.equal(p, before[n]) for n, p in frozen.items())


@pytest.mark.parametrize("method", METHODS)
def test_autocast_adapter_dtype_off_keeps_the_base_dtype(method):
    model = half_gpt2(method, torch.float16, autocast_adapter_dtype=False)
    trainable, _ = split(model)
    assert all(p.dtype == torch.float16 for p in trainable.values())
    loss = model(**lm_batch()).loss
    scaler = torch.amp.GradScaler("cpu")
    opt = torch.optim.SGD(trainable.values(), lr=0.1)
    scaler.scale(loss).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.step(opt)  # why the default is fp32


@pytest.mark.parametrize("method", ["adapter_l", "prefix_layer"])
def test_fp32_model_is_unchanged_and_half_model_matches_it(method):
    """On fp32 nothing is cast; on bf16 the logits follow the fp32 model's closely."""
    ref = tiny_bert()
    make_method(method, **KWARGS[method]).apply(ref)
    with torch.no_grad():
        for p in ref.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    assert all(p.dtype == torch.float32 for p in ref.parameters())
    half = tiny_bert().to(torch.bfloat16)
    make_method(method, **KWARGS[method]).apply(half)
    half.load_state_dict(ref.state_dict())  # copies into the fp32 / bf16 tensors in place
    ids = torch.randint(2, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(ids).logits, half(ids).logits
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=0.01, rtol=0)  # measured ~1e-3


def test_cast_adapter_dtype_only_touches_named_half_params():
    model = tiny_gpt2().to(torch.float16)
    make_method("adapter_p", r=4, autocast_adapter_dtype=False).apply(model)
    ref = {n: p for n, p in model.named_parameters()}
    cast = cast_adapter_dtype(model, ("adapter_",))
    assert cast and all("adapter_" in n for n in cast)
    for n, p in model.named_parameters():
        assert p is ref[n]  # same Parameter objects
        assert p.dtype == (torch.float32 if n in cast else torch.float16)
    assert cast_adapter_dtype(model, ("adapter_",)) == []  # idempotent
    with pytest.raises(ValueError, match="dtype must be a floating"):
        cast_adapter_dtype(model, ("adapter_",), dtype=torch.int8)
