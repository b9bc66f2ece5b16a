"""The paper's baselines on tiny models: freezing, counts, training, checkpoints, prefixes.

Every method is applied by name (``make_method(name, ...).apply(model)``) to a tiny
BERT classifier and a tiny GPT-2 LM built from config (2 blocks, d = 32).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from lora import (
    METHODS,
    count_parameters,
    load_adapter,
    make_method,
    max_input_length,
    save_adapter,
)
from lora.adapters import Adapter, NormAdapter, ProjectionAdapter, adapter_layers
from lora.arch import find_blocks

D, FF, L, VOCAB, POSITIONS = 32, 64, 2, 100, 64
R, L_P, L_I = 4, 3, 2
BASELINES = ("ft_top2", "bitfit", "adapter_h", "adapter_l", "adapter_p", "adapter_d",
             "prefix_embed", "prefix_layer")  # fmt: skip
ADAPTERS = ("adapter_h", "adapter_l", "adapter_p", "adapter_d")
PREFIXES = ("prefix_embed", "prefix_layer")
KWARGS = {
    "adapter_h": {"r": R}, "adapter_l": {"r": R}, "adapter_p": {"r": R},
    "adapter_d": {"r": R, "drop_first": 1},
    "prefix_embed": {"l_p": L_P, "l_i": L_I}, "prefix_layer": {"l_p": L_P, "l_i": L_I},
}  # fmt: skip
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
ENCODER = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=L, num_attention_heads=2,
               intermediate_size=FF, max_position_embeddings=POSITIONS, **NO_DROPOUT)  # fmt: skip


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**ENCODER)).eval()


def tiny_roberta(seed: int = 0) -> RobertaForSequenceClassification:
    torch.manual_seed(seed)
    return RobertaForSequenceClassification(RobertaConfig(**{**ENCODER, "max_position_embeddings": POSITIONS + 2})).eval()  # fmt: skip


def tiny_deberta(seed: int = 0) -> DebertaV2ForSequenceClassification:
    torch.manual_seed(seed)
    config = DebertaV2Config(**ENCODER, relative_attention=True, position_buckets=16,
                             pos_att_type=["p2c", "c2p"], position_biased_input=False)  # fmt: skip
    return DebertaV2ForSequenceClassification(config).eval()


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=D, n_layer=L, n_head=2, n_positions=POSITIONS,
                        bos_token_id=0, eos_token_id=1, pad_token_id=1,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    return GPT2LMHeadModel(config).eval()


BUILDERS = {"bert": tiny_bert, "gpt2": tiny_gpt2}


def batch(arch: str) -> dict[str, torch.Tensor]:
    """A fixed tiny batch; BERT's second example is right-padded."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, VOCAB, (2, 8), generator=g)
    if arch == "gpt2":
        labels = ids.clone()
        labels[:, :3] = -100  # a 3-token prompt, then the target
        return {"input_ids": ids, "labels": labels}
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1])}


def expected_count(method: str, arch: str) -> int:
    """The paper's |Θ| for the tiny shapes (head excluded)."""
    adapter = 2 * D * R + R + D
    if method == "ft_top2":
        if arch == "bert":  # q, k, v, o; two LayerNorms; the two MLP matrices
            block = 4 * (D * D + D) + 2 * 2 * D + (D * FF + FF) + (FF * D + D)
        else:  # ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj
            block = 2 * D + 3 * (D * D + D) + (D * D + D) + 2 * D + 2 * 4 * D * D + 4 * D + D
        return 2 * block
    if method == "bitfit":  # every bias, LayerNorms and the final/embedding LN included
        return L * (7 * D + FF) + D if arch == "bert" else L * 11 * D + D
    return {
        "adapter_h": 2 * L * adapter,
        "adapter_p": L * adapter,
        "adapter_l": L * adapter + 2 * L * D,
        "adapter_d": (L - 1) * adapter,
        "prefix_embed": D * (L_P + L_I),
        "prefix_layer": L * D * (L_P + L_I),
    }[method]


def adapted(method: str, arch: str, seed: int = 0, **kwargs):
    model = BUILDERS[arch](seed)
    config = make_method(method, **{**KWARGS.get(method, {}), **kwargs})
    config.apply(model)
    return model, config


def method_params(model) -> dict[str, torch.Tensor]:
    """Trainable parameters outside the task head."""
    head = ("classifier", "pooler", "score")
    return {
        n: p
        for n, p in model.named_parameters()
        if p.requires_grad and not any(h in n for h in head)
    }


# -- registry and validation -------------------------------------------------------------


def test_every_baseline_is_registered():
    for name in BASELINES:
        config = make_method(name)
        assert type(config) is METHODS[name]
        assert config.to_dict()["method"] == name


@pytest.mark.parametrize(
    ("method", "kwargs", "setting"),
    [
        ("ft_top2", {"top_layers": 0}, "top_layers"),
        ("adapter_h", {"r": 0}, "r"),
        ("adapter_p", {"act": "softmax"}, "act"),
        ("adapter_d", {"drop_first": -1}, "drop_first"),
        ("prefix_embed", {"l_p": -1}, "l_p"),
        ("prefix_layer", {"l_p": 0, "l_i": 0}, r"l_p \+ l_i"),
        ("bitfit", {"r": 4}, "r"),
    ],
)
def test_bad_settings_raise_one_line_errors(method, kwargs, setting):
    with pytest.raises(ValueError, match=setting) as err:
        make_method(method, **kwargs)
    assert "\n" not in str(err.value)


def test_settings_that_do_not_fit_the_model_raise():
    with pytest.raises(ValueError, match="drop_first=2 leaves no adapter"):
        adapted("adapter_d", "bert", drop_first=2)
    with pytest.raises(ValueError, match="top_layers=3 exceeds"):
        adapted("ft_top2", "gpt2", top_layers=3)
    for method in ("adapter_h", "prefix_embed"):
        model, config = adapted(method, "gpt2")
        with pytest.raises(ValueError, match="already has"):
            config.apply(model)


# -- freezing, counts, training, checkpoints (every method, both architectures) -----------


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", BASELINES)
def test_count_freeze_train(method, arch):
    """GPT-2's LM head is frozen (tied), so there the lower loss is the method's alone."""
    model, _ = adapted(method, arch)
    assert count_parameters(model).method == expected_count(method, arch)
    trainable = {n: p.detach().clone() for n, p in method_params(model).items()}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and frozen
    inputs = batch(arch)
    with torch.no_grad():
        before = model(**inputs).loss.item()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)  # all params: frozen ones get no grad
    model.train()
    for step in range(15):
        opt.zero_grad()
        model(**inputs).loss.backward()
        if step == 0:
            for n, p in model.named_parameters():
                assert (p.grad is None) == (n in frozen), n
        opt.step()
    model.eval()
    with torch.no_grad():
        after = model(**inputs).loss.item()
    assert after < before - 0.05, (before, after)
    params = dict(model.named_parameters())
    for n, value in frozen.items():
        assert torch.equal(params[n], value), f"frozen {n} changed"
    assert any(not torch.equal(params[n], v) for n, v in trainable.items())


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", BASELINES)
def test_head_trainable_by_default_and_checkpoint_round_trip(method, arch, tmp_path):
    model, config = adapted(method, arch)
    counts = count_parameters(model)
    assert counts.method == expected_count(method, arch)
    head = 0 if arch == "gpt2" else (D * D + D) + (D * 2 + 2)  # GPT-2's LM head is tied, frozen
    assert counts.trainable - counts.method == head
    with torch.no_grad():  # move every trained tensor away from its init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    inputs = {k: v for k, v in batch(arch).items() if k != "labels"}
    with torch.no_grad():
        expected = model(**inputs).logits
    save_adapter(model, tmp_path, config)
    fresh = BUILDERS[arch](0)
    load_adapter(fresh, tmp_path)
    with torch.no_grad():
        assert torch.equal(fresh(**inputs).logits, expected)
    assert count_parameters(fresh) == counts


# -- selective methods --------------------------------------------------------------------


def test_ft_top2_trains_exactly_the_last_two_blocks():
    model, _ = adapted("ft_top2", "gpt2", top_layers=1)
    names = set(method_params(model))
    assert names == {f"transformer.h.1.{n}" for n, _ in model.transformer.h[1].named_parameters()}


def test_bitfit_trains_only_biases():
    model, _ = adapted("bitfit", "bert")
    assert all(n.endswith("bias") for n in method_params(model))


# -- adapters -----------------------------------------------------------------------------


def test_adapter_shapes_and_zero_up_projection():
    adapter = Adapter(D, R, layer_norm=True)
    assert sum(p.numel() for p in adapter.parameters()) == 2 * D * R + R + D + 2 * D
    assert not adapter.adapter_up.weight.any() and not adapter.adapter_up.bias.any()
    y = torch.randn(2, 5, D)
    assert torch.equal(adapter(y), y)


@pytest.mark.parametrize("builder", [tiny_bert, tiny_roberta, tiny_deberta, tiny_gpt2])
@pytest.mark.parametrize("method", ADAPTERS)
def test_adapters_are_identity_at_init(method, builder):
    ids = torch.randint(2, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    model = builder()
    with torch.no_grad():
        base = model(ids).logits
    make_method(method, **KWARGS[method]).apply(model)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, base)
    for adapter in adapter_layers(model):  # and they do change outputs once trained
        torch.nn.init.normal_(adapter.adapter_up.weight, std=0.1)
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base)


def test_adapter_placements():
    bert, _ = adapted("adapter_h", "bert")
    block = bert.bert.encoder.layer[0]
    assert isinstance(block.attention.output.dense, ProjectionAdapter)
    assert isinstance(block.output.dense, ProjectionAdapter)
    gpt2, _ = adapted("adapter_h", "gpt2")
    assert isinstance(gpt2.transformer.h[0].attn.c_proj, ProjectionAdapter)
    assert isinstance(gpt2.transformer.h[0].mlp.c_proj, ProjectionAdapter)
    # AdapterP: post-LN wraps the output LayerNorm (seq_bn), pre-LN adapts the block output.
    bert, _ = adapted("adapter_p", "bert")
    assert isinstance(bert.bert.encoder.layer[1].output.LayerNorm, NormAdapter)
    gpt2, _ = adapted("adapter_p", "gpt2")
    assert isinstance(gpt2.transformer.h[1].output_adapter, Adapter)
    # AdapterL: a new LayerNorm in front of the bottleneck; AdapterD: block 0 has none.
    gpt2, _ = adapted("adapter_l", "gpt2")
    assert gpt2.transformer.h[0].output_adapter.adapter_norm is not None
    bert, _ = adapted("adapter_d", "bert")
    assert not adapter_layers(bert.bert.encoder.layer[0])
    assert len(adapter_layers(bert.bert.encoder.layer[1])) == 1


def test_adapter_p_post_ln_is_adapterhub_seq_bn():
    """h' = LN(s + δ(LN(s))) on BERT's output sublayer."""
    model, _ = adapted("adapter_p", "bert")
    wrapped = model.bert.encoder.layer[0].output.LayerNorm
    torch.nn.init.normal_(wrapped.adapter.adapter_up.weight, std=0.1)
    s = torch.randn(2, 4, D)
    ln = wrapped.base_layer
    a = wrapped.adapter
    delta = a.adapter_up(torch.relu(a.adapter_down(ln(s))))
    torch.testing.assert_close(wrapped(s), ln(s + delta))


# -- prefix methods -----------------------------------------------------------------------


def test_deberta_supports_adapters_not_prefixes():
    for method in PREFIXES:
        with pytest.raises(ValueError, match=f"{method} is not supported on deberta-v2"):
            make_method(method).apply(tiny_deberta())
    model = tiny_deberta()
    make_method("adapter_h", r=R).apply(model)
    model(torch.randint(2, VOCAB, (2, 5)), labels=torch.tensor([0, 1])).loss.backward()
    assert all(a.adapter_up.weight.grad is not None for a in adapter_layers(model))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_logits_keep_the_real_length(method, arch):
    inputs = {k: v for k, v in batch(arch).items() if k != "labels"}
    base = BUILDERS[arch]()(**inputs).logits
    model, config = adapted(method, arch)
    assert config.num_virtual_tokens == L_P + L_I
    assert model(**inputs).logits.shape == base.shape


def test_max_input_length():
    assert max_input_length(512, make_method("prefix_embed", l_p=256, l_i=8)) == 248
    assert max_input_length(512, make_method("adapter_h")) == 512
    with pytest.raises(ValueError, match="no room"):
        max_input_length(8, make_method("prefix_layer", l_p=8, l_i=0))


@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_overflow_raises_instead_of_truncating(method):
    model, config = adapted(method, "gpt2")
    usable = max_input_length(POSITIONS, config)
    model(torch.randint(2, VOCAB, (1, usable)))
    with pytest.raises(ValueError, match="virtual tokens need position id"):
        model(torch.randint(2, VOCAB, (1, usable + 1)))


def test_prefix_embed_gpt2_layout_and_label_alignment():
    """Against a hand-built [prefix | prompt | infix | target] pass through the base model.

    Real token t returns the state just before real token t+1, so the last prompt
    token's logits come from the last infix position and HF's shifted loss with the
    caller's labels trains the target after the infix.
    """
    model, _ = adapted("prefix_embed", "gpt2")
    inputs = batch("gpt2")
    ids, labels, p = inputs["input_ids"], inputs["labels"], 3
    out = model(**inputs)
    base = tiny_gpt2()
    emb = model.transformer.prefix_tuning.prefix_embeds.detach()
    wte = base.transformer.wte(ids)
    pre, inf = emb[:L_P].expand(2, -1, -1), emb[L_P:].expand(2, -1, -1)
    ext = torch.cat([pre, wte[:, :p], inf, wte[:, p:]], dim=1)
    ext_logits = base(inputs_embeds=ext).logits
    T = ids.shape[1]
    pos = [L_P + t + (L_I if t >= p else 0) for t in range(T)] + [T + L_P + L_I]
    expected = ext_logits[:, [pos[t + 1] - 1 for t in range(T)]]
    torch.testing.assert_close(out.logits, expected)
    loss = F.cross_entropy(expected[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, loss)


@pytest.mark.parametrize("builder", [tiny_bert, tiny_roberta])
@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_encoder_ignores_padding(method, builder):
    """The infix follows the real tokens, so right padding does not change the result."""
    model = builder()
    make_method(method, **KWARGS[method]).apply(model)
    inputs = batch("bert")
    padded = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    alone = model(input_ids=inputs["input_ids"][1:, :6]).logits
    torch.testing.assert_close(padded[1:], alone)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_generate_with_beam_search(method, arch):
    """Prefixes reach attention through the KV cache; left padding changes nothing."""
    model = CAUSAL[arch]()
    make_method(method, **KWARGS[method]).apply(model)
    ids = torch.randint(2, VOCAB, (2, 6), generator=torch.Generator().manual_seed(2))
    ids[0, :2] = 1
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    for beams in (1, 2):
        kw = {"max_new_tokens": 4, "num_beams": beams, "do_sample": False}
        out = model.generate(ids, attention_mask=mask, **kw)
        assert out.shape == (2, 10)
        alone = model.generate(ids[:1, 2:], **kw)
        assert torch.equal(out[0, 6:], alone[0, 4:])


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """Rotary positions and grouped-query attention (4 query heads share 2 KV heads)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=FF, num_hidden_layers=L,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=POSITIONS,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1)  # fmt: skip
    return LlamaForCausalLM(config).eval()


CAUSAL = {"gpt2": tiny_gpt2, "llama": tiny_llama}


def randomize_prefix(model, seed: int) -> None:
    """Prefix parameters far from their init, so the virtual tokens dominate the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.base_model.prefix_tuning.parameters():
            p.copy_(torch.randn(p.shape, generator=g).to(p))


def teacher_forced(model, seq, mask, prompt_len: int) -> torch.Tensor:
    """One pass over prompt + continuation with the infix after the prompt, (B, T, V)."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # generate's positions for left padding
    lengths = torch.full((seq.shape[0],), prompt_len)
    return model(seq, attention_mask=mask, position_ids=pos, prompt_lengths=lengths).logits


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("arch", sorted(CAUSAL))
@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_generate_logits_match_teacher_forcing(method, arch, seed):
    """Every greedy step's logits (left-padded batch) equal one teacher-forced pass."""
    model = CAUSAL[arch](seed)
    make_method(method, **KWARGS[method]).apply(model)
    randomize_prefix(model, seed + 10)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    new = 6
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, output_logits=True, return_dict_in_generate=True)  # fmt: skip
        steps = torch.stack(out.logits, 1)  # (B, new, V), raw: before the EOS suppression
        full = torch.cat([mask, torch.ones(2, new, dtype=mask.dtype)], 1)
        tf = teacher_forced(model, out.sequences, full, 6)[:, 5:-1]
        torch.testing.assert_close(steps, tf, atol=1e-4, rtol=0)
        base = CAUSAL[arch](seed)
        plain = teacher_forced(base, out.sequences, full, 6)[:, 5:-1]
        assert (plain - tf).abs().max() > 0.1  # the prefixes did take part


@pytest.mark.parametrize("cache_kwarg", ["cache", "past_key_values"])
@pytest.mark.parametrize("arch", sorted(CAUSAL))
@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_stepwise_cached_logits_match_teacher_forcing(method, arch, cache_kwarg):
    """Feeding random continuation tokens one by one through the KV cache, called on the
    backbone's own cache argument or its deprecated name, gives the teacher-forced logits."""
    model = CAUSAL[arch](0)
    make_method(method, **KWARGS[method]).apply(model)
    randomize_prefix(model, 5)
    g = torch.Generator().manual_seed(4)
    seq = torch.randint(2, VOCAB, (2, 9), generator=g)
    p = 4
    with torch.no_grad():
        out = model(seq[:, :p], use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        steps = [out.logits[:, -1]]
        for t in range(p, seq.shape[1] - 1):
            mask = torch.ones(2, t + 1, dtype=torch.long)
            out = model(seq[:, t : t + 1], attention_mask=mask, use_cache=True,
                        **{cache_kwarg: cache})  # fmt: skip
            steps.append(out.logits[:, -1])
        expected = model(seq, prompt_lengths=torch.tensor([p, p])).logits[:, p - 1 : -1]
    torch.testing.assert_close(torch.stack(steps, 1), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_on_electra_with_factorized_embeddings(method):
    """ELECTRA embeds in E = 16 < d = 32 and projects: PreEmbed's tokens live in the
    embedding space (|Θ| = E·n_v), PreLayer's in the hidden space (|Θ| = L·d·n_v)."""
    E = 16
    torch.manual_seed(0)
    model = ElectraForSequenceClassification(ElectraConfig(**ENCODER, embedding_size=E)).eval()
    make_method(method, **KWARGS[method]).apply(model)
    width = E if method == "prefix_embed" else L * D
    assert count_parameters(model).method == width * (L_P + L_I)
    inputs = batch("bert")
    out = model(**inputs)
    assert out.logits.shape == (2, 2)
    out.loss.backward()
    grad = model.electra.prefix_tuning
    grad = grad.prefix_embeds.grad if method == "prefix_embed" else grad.prefix_acts.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("method", PREFIXES)
def test_prefix_layer_replaces_every_block_input(method):
    """PreLayer: changing row i of the activations changes the output; PreEmbed: embeddings."""
    model, _ = adapted(method, "bert")
    inputs = {k: v for k, v in batch("bert").items() if k != "labels"}
    with torch.no_grad():
        base = model(**inputs).logits
        module = model.bert.prefix_tuning
        param = module.prefix_acts if method == "prefix_layer" else module.prefix_embeds
        rows = range(L) if method == "prefix_layer" else [None]
        for i in rows:
            saved = param.detach().clone()
            target = param[i] if i is not None else param
            target.add_(torch.randn_like(target))  # not a constant: LayerNorm would remove it
            assert not torch.allclose(model(**inputs).logits, base)
            param.copy_(saved)
    assert len(find_blocks(model)) == L
