"""LoRA variants: rsLoRA, DoRA, PiSSA, LoRA+, VeRA.

Parity with peft (the oracle): identical weights in both give the same logits within
1e-5 (fp32), unmerged and merged. Tiny models are built from config (no downloads).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from lora import apply_lora, count_parameters, lora_layers, make_method, merge_lora, unmerge_lora
from lora.arch import ARCHITECTURES
from lora.layers import Linear
from lora.loraplus import loraplus_param_groups
from lora.vera import VeraConfig, apply_vera
from tests.conftest import tiny_bert, tiny_gpt2

peft = pytest.importorskip("peft")

ATOL = 1e-5


def tiny_roberta(seed: int = 0) -> RobertaForSequenceClassification:
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=80, num_labels=2, pad_token_id=0,
    )  # fmt: skip
    return RobertaForSequenceClassification(config).eval()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    if "llama" not in ARCHITECTURES:
        pytest.skip("lora.arch does not support llama yet")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


# name -> (builder, our targets, peft target_modules, fan_in_fan_out)
MODELS = {
    "bert": (tiny_bert, ["q", "v"], ["query", "value"], False),
    "roberta": (tiny_roberta, ["q", "v"], ["query", "value"], False),
    "llama": (tiny_llama, ["q", "v"], ["q_proj", "v_proj"], False),
    "gpt2": (tiny_gpt2, ["o"], r".*attn\.c_proj", True),  # peft cannot slice c_attn
}
LORA_VARIANTS = {
    "rslora": ({"use_rslora": True}, {"use_rslora": True}),
    "dora": ({"use_dora": True}, {"use_dora": True}),
    "dora_rslora": ({"use_dora": True, "use_rslora": True}, {"use_dora": True, "use_rslora": True}),
    "pissa": ({"init": "pissa"}, {"init_lora_weights": "pissa"}),
}


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(2, 100, (3, 12), generator=torch.Generator().manual_seed(0))


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def _peft_module(theirs: torch.nn.Module, name: str) -> torch.nn.Module:
    return theirs.get_submodule("base_model.model." + name)


def _randomize(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-zero B and a magnitude off its init, so every part of a variant matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_layers(model):
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.5)
            if m.use_dora:
                m.lora_magnitude_vector.mul_(1 + 0.2 * torch.randn(m.out_features, generator=g))


def _lora_pair(model_name: str, variant: str, r: int = 4, lora_alpha: float = 6):
    # α/r = 1.5 is not a power of two, so op-order differences with peft would show
    build, targets, peft_targets, fifo = MODELS[model_name]
    ours_kw, peft_kw = LORA_VARIANTS[variant]
    base = build()
    ours = apply_lora(copy.deepcopy(base), targets, r=r, lora_alpha=lora_alpha, **ours_kw)
    config = peft.LoraConfig(
        r=r, lora_alpha=lora_alpha, target_modules=peft_targets, fan_in_fan_out=fifo, **peft_kw
    )
    theirs = peft.get_peft_model(copy.deepcopy(base), config).eval()
    return base, ours, theirs


def _copy_lora(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, m in ours.named_modules():
            if m not in lora_layers(ours):
                continue
            t = _peft_module(theirs, name)
            t.lora_A["default"].weight.copy_(m.lora_A)
            t.lora_B["default"].weight.copy_(m.lora_B)
            t.base_layer.weight.copy_(m.base_layer.weight)
            if m.use_dora:
                t.lora_magnitude_vector["default"].weight.copy_(m.lora_magnitude_vector)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("variant", list(LORA_VARIANTS))
def test_lora_variant_matches_peft(model_name, variant, ids):
    base, ours, theirs = _lora_pair(model_name, variant)
    layers = lora_layers(ours)
    assert len(layers) == 2 * len(MODELS[model_name][1]) > 0
    if variant == "pissa":  # same factorisation as peft, and the model starts as the base
        for name, m in ours.named_modules():
            if m in layers:
                t = _peft_module(theirs, name)
                ba = t.lora_B["default"].weight @ t.lora_A["default"].weight * t.scaling["default"]
                torch.testing.assert_close(m.delta_weight(), ba.T if m.fan_in_fan_out else ba,
                                           atol=ATOL, rtol=0)  # fmt: skip
                torch.testing.assert_close(m.base_layer.weight, t.base_layer.weight,
                                           atol=ATOL, rtol=0)  # fmt: skip
        torch.testing.assert_close(_logits(ours, ids), _logits(base, ids), atol=ATOL, rtol=0)
    if "rslora" in variant:
        assert all(m.scaling == 6 / math.sqrt(4) for m in layers)
    _randomize(ours)
    _copy_lora(ours, theirs)
    expected = _logits(theirs, ids)
    assert not torch.allclose(expected, _logits(base, ids), atol=1e-4)
    torch.testing.assert_close(_logits(ours, ids), expected, atol=ATOL, rtol=0)
    # merged: ours against peft merged, and against the unmerged outputs
    merge_lora(ours)
    theirs.merge_adapter()
    torch.testing.assert_close(_logits(ours, ids), expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(_logits(theirs, ids), expected, atol=ATOL, rtol=0)
    for name, m in ours.named_modules():
        if m in layers:
            t = _peft_module(theirs, name).base_layer.weight
            torch.testing.assert_close(m.base_layer.weight, t, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", list(LORA_VARIANTS))
@pytest.mark.parametrize("keep_base", [True, False])
def test_merge_unmerge_exact(variant, keep_base, ids):
    _, ours, _ = _lora_pair("gpt2", variant) if variant != "pissa" else _lora_pair("bert", variant)
    _randomize(ours)
    w0 = [m.base_layer.weight.detach().clone() for m in lora_layers(ours)]
    unmerged = _logits(ours, ids)
    merge_lora(ours, keep_base=keep_base)
    torch.testing.assert_close(_logits(ours, ids), unmerged, atol=ATOL, rtol=0)
    unmerge_lora(ours)
    for m, w in zip(lora_layers(ours), w0, strict=True):
        if keep_base:
            assert torch.equal(m.base_layer.weight, w)
        else:
            torch.testing.assert_close(m.base_layer.weight, w, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        _logits(ours, ids), unmerged, atol=ATOL if not keep_base else 0, rtol=0
    )


def test_pissa_on_fused_c_attn_starts_at_base(ids):
    base = tiny_gpt2()
    ours = apply_lora(copy.deepcopy(base), ["q", "v"], r=4, lora_alpha=4, init="pissa")
    layer = ours.transformer.h[0].attn.c_attn
    w = base.transformer.h[0].attn.c_attn.weight  # Conv1D: (in, out)
    # the k slice is untouched; q, v lose their top-4 singular directions
    assert torch.equal(layer.base_layer.weight[:, 32:64], w[:, 32:64])
    s_q = torch.linalg.svdvals(w[:, :32])
    torch.testing.assert_close(torch.linalg.svdvals(layer.base_layer.weight[:, :32])[:4],
                               s_q[4:8], atol=1e-5, rtol=0)  # fmt: skip
    torch.testing.assert_close(_logits(ours, ids), _logits(base, ids), atol=ATOL, rtol=0)


def test_dora_rejected_on_fused_slices():
    with pytest.raises(ValueError, match="use_dora"):
        apply_lora(tiny_gpt2(), ["q", "v"], r=4, lora_alpha=8, use_dora=True)


def _snapshot(model: torch.nn.Module) -> dict[str, tuple[torch.Tensor, bool]]:
    return {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "build, targets, settings, match",
    [
        (tiny_gpt2, ["o", "q", "v"], {"use_dora": True}, "use_dora"),  # fused c_attn
        (tiny_llama, ["q", "v"], {"init": "pissa", "r": 20}, "r=20"),  # GQA v_proj is 16 wide
        (tiny_bert, ["q", "v"], {"lora_dropout": 1.0}, "lora_dropout"),
    ],
)
def test_failed_apply_leaves_model_untouched(build, targets, settings, match):
    """A setting that one of the target layers rejects fails before any module changes."""
    model = build()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        apply_lora(model, targets, **{"r": 4, "lora_alpha": 8, **settings})
    assert not lora_layers(model)
    after = _snapshot(model)
    assert after.keys() == before.keys()
    for name, (value, requires_grad) in before.items():
        assert torch.equal(after[name][0], value) and after[name][1] == requires_grad, name


def test_dora_gradients_and_detached_norm(ids):
    """m, A and B get gradients; the weight norm is a constant (DoRA §4.3)."""
    model = apply_lora(tiny_bert(), ["q", "v"], r=4, lora_alpha=8, use_dora=True)
    _randomize(model)
    model.train()
    model(ids, labels=torch.tensor([0, 1, 1])).loss.backward()
    for m in lora_layers(model):
        for p in (m.lora_A, m.lora_B, m.lora_magnitude_vector):
            assert p.grad is not None and p.grad.abs().sum() > 0
    # one layer by hand: gradient of sum(out) w.r.t. m equals sum(out_dir / norm)
    layer = Linear(torch.nn.Linear(6, 5), r=2, lora_alpha=2, use_dora=True)
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 6)
    layer(x).sum().backward()
    w = layer.base_layer.weight + layer.lora_B @ layer.lora_A
    norm = w.detach().norm(dim=1)
    expected = (x @ w.detach().T / norm).sum(0)
    torch.testing.assert_close(layer.lora_magnitude_vector.grad, expected, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- counts
D, L, R = 32, 2, 4  # tiny BERT: hidden 32, 2 blocks; q and v are 32 x 32


@pytest.mark.parametrize(
    ("method", "kwargs", "per_matrix"),
    [
        ("lora", {"use_rslora": True}, R * (D + D)),
        ("lora", {"init": "pissa"}, R * (D + D)),
        ("lora", {"loraplus_lr_ratio": 16}, R * (D + D)),
        ("lora", {"use_dora": True}, R * (D + D) + D),  # DoRA: r(d_in + d_out) + d_out
        ("vera", {}, R + D),  # VeRA: r + d_out
    ],
)
def test_parameter_counts_follow_the_papers(method, kwargs, per_matrix):
    model = make_method(method, r=R, targets=["q", "v"], **kwargs).apply(tiny_bert())
    assert count_parameters(model).method == L * 2 * per_matrix


# --------------------------------------------------------------------------- VeRA
@pytest.mark.parametrize("model_name", list(MODELS))
def test_vera_matches_peft(model_name, ids):
    build, targets, peft_targets, fifo = MODELS[model_name]
    base = build()
    ours = apply_vera(copy.deepcopy(base), targets, r=8, projection_prng_key=3)
    config = peft.VeraConfig(r=8, target_modules=peft_targets, fan_in_fan_out=fifo,
                             projection_prng_key=3)  # fmt: skip
    theirs = peft.get_peft_model(copy.deepcopy(base), config).eval()
    layers = lora_layers(ours)
    # one shared pair, drawn exactly as peft draws it
    assert len({m.vera_A.data_ptr() for m in layers}) == 1
    torch.testing.assert_close(
        layers[0].vera_A, theirs.base_model.vera_A["default"], atol=0, rtol=0
    )
    torch.testing.assert_close(
        layers[0].vera_B, theirs.base_model.vera_B["default"], atol=0, rtol=0
    )
    torch.testing.assert_close(_logits(ours, ids), _logits(base, ids), atol=0, rtol=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, m in ours.named_modules():
            if m in layers:
                m.vera_lambda_b.copy_(torch.randn(m.out_features, generator=g))
                m.vera_lambda_d.copy_(torch.randn(m.r, generator=g))
                t = _peft_module(theirs, name)
                t.vera_lambda_b["default"].copy_(m.vera_lambda_b)
                t.vera_lambda_d["default"].copy_(m.vera_lambda_d)
    expected = _logits(theirs, ids)
    assert not torch.allclose(expected, _logits(base, ids), atol=1e-4)
    torch.testing.assert_close(_logits(ours, ids), expected, atol=ATOL, rtol=0)
    w0 = [m.base_layer.weight.detach().clone() for m in layers]
    merge_lora(ours)
    theirs.merge_adapter()
    torch.testing.assert_close(_logits(ours, ids), expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(_logits(theirs, ids), expected, atol=ATOL, rtol=0)
    unmerge_lora(ours)
    assert all(torch.equal(m.base_layer.weight, w) for m, w in zip(layers, w0, strict=True))
    # outside the task head, the trainable parameters are exactly the vectors
    head = ARCHITECTURES[ours.config.model_type].head
    trainable = {
        n.rsplit(".", 1)[-1]
        for n, p in ours.named_parameters()
        if p.requires_grad and not set(n.split(".")) & set(head)
    }
    assert trainable == {"vera_lambda_b", "vera_lambda_d"}


def test_vera_config_validation_and_fused_targets():
    with pytest.raises(ValueError, match="d_initial"):
        VeraConfig(d_initial=0)
    with pytest.raises(ValueError, match="vera_dropout"):
        make_method("vera", vera_dropout=1.0)
    with pytest.raises(ValueError, match="whole projections"):
        apply_vera(tiny_gpt2(), ["q", "v"], r=4)


# --------------------------------------------------------------------------- LoRA+
def test_loraplus_groups_and_peft_rates():
    from peft.optimizers import create_loraplus_optimizer

    base = tiny_bert()
    ours = apply_lora(copy.deepcopy(base), ["q", "v"], r=4, lora_alpha=8)
    groups = loraplus_param_groups(ours, lr=1e-3, loraplus_lr_ratio=16, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"lora_B", "base", "no_decay"}
    ids_of = {id(p): n for n, p in ours.named_parameters()}
    names = {k: {ids_of[id(p)] for p in g["params"]} for k, g in by_name.items()}
    assert names["lora_B"] == {n for n in ids_of.values() if n.endswith("lora_B")}
    assert by_name["lora_B"]["lr"] == pytest.approx(16e-3) and by_name["base"]["lr"] == 1e-3
    assert {n for n in names["base"] if "lora_" in n} == {
        n for n in ids_of.values() if "lora_A" in n
    }
    assert names["no_decay"] and all(n.endswith("bias") for n in names["no_decay"])  # head biases
    assert by_name["no_decay"]["weight_decay"] == 0.0 and by_name["base"]["weight_decay"] == 0.1
    trainable = sum(len(g["params"]) for g in groups)
    assert trainable == sum(p.requires_grad for p in ours.parameters())
    # same rates as peft's create_loraplus_optimizer for A and B
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    opt = create_loraplus_optimizer(theirs, torch.optim.AdamW, lr=1e-3, loraplus_lr_ratio=16)
    peft_lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    ours_lr = {ids_of[id(p)]: g["lr"] for g in groups for p in g["params"]}
    compared = 0
    for n, p in theirs.named_parameters():
        if "lora_" in n:
            key = n.removeprefix("base_model.model.").replace(".default.weight", "")
            assert ours_lr[key] == pytest.approx(peft_lr[id(p)]), key
            compared += 1
    assert compared == 8
    # the groups drive a real optimizer step
    torch.optim.AdamW(groups).step()


def test_loraplus_rejects_bad_settings():
    model = apply_lora(tiny_bert(), ["q"], r=2)
    with pytest.raises(ValueError, match="loraplus_lr_ratio"):
        loraplus_param_groups(model, lr=1e-3, loraplus_lr_ratio=0)
    with pytest.raises(ValueError, match="lora_B"):
        loraplus_param_groups(apply_vera(tiny_bert(), ["q"], r=2), lr=1e-3)
    with pytest.raises(ValueError, match="loraplus_lr_ratio"):
        make_method("lora", loraplus_lr_ratio=-1)


# --------------------------------------------------------------------------- precision
HALF_CASES = {
    "lora": {},
    "rslora": {"use_rslora": True},
    "dora": {"use_dora": True},
    "pissa": {"init": "pissa"},
}


def _half_model(variant: str, dtype: torch.dtype, **kw) -> torch.nn.Module:
    base = tiny_bert().to(dtype)
    if variant == "vera":
        return apply_vera(base, ["q", "v"], r=4, modules_to_save=[], **kw)
    return apply_lora(base, ["q", "v"], r=4, lora_alpha=8, modules_to_save=[],
                      **HALF_CASES[variant], **kw)  # fmt: skip


@pytest.mark.parametrize("variant", [*HALF_CASES, "vera"])
def test_fp32_adapters_on_fp16_base_train_with_grad_scaler(variant, ids):
    model = _half_model(variant, torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert all(m.base_layer.weight.dtype == torch.float16 for m in lora_layers(model))
    if variant != "vera":
        _randomize(model)
    model.train()
    opt = torch.optim.SGD(trainable, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    before = [p.detach().clone() for p in trainable]
    logits = model(ids).logits
    assert logits.dtype == torch.float16
    scaler.scale(logits.float().pow(2).mean()).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in trainable)
    assert any(not torch.equal(p, b) for p, b in zip(trainable, before, strict=True))
    # merge in fp32, cast to the base dtype: merged outputs match unmerged ones
    model.eval()
    unmerged = _logits(model, ids)
    merge_lora(model)
    assert all(m.base_layer.weight.dtype == torch.float16 for m in lora_layers(model))
    torch.testing.assert_close(_logits(model, ids), unmerged, atol=2e-3, rtol=0)


@pytest.mark.parametrize("variant", [*HALF_CASES, "vera"])
def test_bf16_base_fp32_adapter_matches_fp32_branch(variant, ids):
    """The branch runs in fp32: a layer's output is base_bf16(x) + fp32 update, cast."""
    model = _half_model(variant, torch.bfloat16)
    layer = lora_layers(model)[0]
    if variant != "vera":
        _randomize(model)
    x = torch.randn(2, 5, 32).to(torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    ref = (layer.base_layer(x) + layer.lora_forward(x, layer.base_layer(x))).to(torch.bfloat16)
    assert layer.lora_forward(x).dtype == torch.float32
    assert torch.equal(out, ref)


def test_autocast_adapter_dtype_off_keeps_base_dtype(ids):
    model = _half_model("dora", torch.bfloat16, autocast_adapter_dtype=False)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    # why fp32 is the default: a GradScaler refuses fp16 adapter gradients
    model = _half_model("lora", torch.float16, autocast_adapter_dtype=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt, scaler = torch.optim.SGD(trainable, lr=0.1), torch.amp.GradScaler("cpu")
    scaler.scale(model(ids).logits.float().pow(2).mean()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.step(opt)


def test_vera_all_linear_on_mixed_shapes(ids):
    """Layers of different shapes (GQA k/v, MLP) share one pair, each using a slice."""
    model = apply_vera(tiny_llama(), "all-linear", r=4)
    layers = lora_layers(model)
    assert len(layers) == 2 * 7 and len({m.vera_A.data_ptr() for m in layers}) == 1
    assert layers[0].vera_A.shape == (4, 64) and layers[0].vera_B.shape == (64, 4)
    assert count_parameters(model).method == sum(4 + m.out_features for m in layers)
    base = _logits(model, ids)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in layers:
            m.vera_lambda_b.copy_(torch.randn(m.out_features, generator=g))
    adapted = _logits(model, ids)
    assert not torch.allclose(adapted, base, atol=1e-4)
    merge_lora(model)
    torch.testing.assert_close(_logits(model, ids), adapted, atol=ATOL, rtol=0)
