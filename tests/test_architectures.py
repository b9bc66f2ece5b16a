"""The decoder families users fine-tune today (Llama, Mistral, Qwen2, OPT) and DistilBERT.

Each family, tiny and built from config: paper names map to the right projections,
grouped-query W_k/W_v are narrower than W_q, counts follow r·(d_in + d_out) per
adapted matrix, heads are never adapted, and merge, save and load keep outputs.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    DistilBertConfig,
    DistilBertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    MistralConfig,
    MistralForCausalLM,
    MistralForSequenceClassification,
    OPTConfig,
    OPTForCausalLM,
    OPTForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
)

from lora import (
    LoraConfig,
    apply_lora,
    count_parameters,
    load_adapter,
    lora_layers,
    merge_and_unload,
    save_adapter,
)
from tests.conftest import randomize_lora

D, FFN, LAYERS = 32, 64, 2
GQA = dict(hidden_size=D, num_attention_heads=4, num_key_value_heads=2, intermediate_size=FFN,
           num_hidden_layers=LAYERS, vocab_size=100, pad_token_id=0)  # fmt: skip
KV = 2 * D // 4  # num_key_value_heads · head_dim = 16: W_k and W_v are (32 -> 16)

# family -> (config factory, model classes, {paper name: (d_in, d_out)})
GATED = {"q": (D, D), "k": (D, KV), "v": (D, KV), "o": (D, D),
         "gate": (D, FFN), "up": (D, FFN), "down": (FFN, D)}  # fmt: skip
PLAIN = {
    "q": (D, D),
    "k": (D, D),
    "v": (D, D),
    "o": (D, D),
    "ffn_in": (D, FFN),
    "ffn_out": (FFN, D),
}
FAMILIES = {
    "llama": (lambda: LlamaConfig(**GQA), (LlamaForCausalLM, LlamaForSequenceClassification), GATED),
    "mistral": (lambda: MistralConfig(**GQA), (MistralForCausalLM, MistralForSequenceClassification), GATED),
    "qwen2": (lambda: Qwen2Config(**GQA), (Qwen2ForCausalLM, Qwen2ForSequenceClassification), GATED),
    "opt": (
        lambda: OPTConfig(hidden_size=D, num_attention_heads=4, ffn_dim=FFN, num_hidden_layers=LAYERS,
                          vocab_size=100, word_embed_proj_dim=D, max_position_embeddings=64, pad_token_id=1),
        (OPTForCausalLM, OPTForSequenceClassification),
        PLAIN,
    ),
    "distilbert": (
        lambda: DistilBertConfig(dim=D, n_heads=4, hidden_dim=FFN, n_layers=LAYERS, vocab_size=100),
        (DistilBertForSequenceClassification,),
        PLAIN,
    ),
}  # fmt: skip
CASES = [(fam, cls) for fam, (_, classes, _) in FAMILIES.items() for cls in classes]
IDS = [cls.__name__ for _, cls in CASES]


def build(family: str, cls: type, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(FAMILIES[family][0]()).eval()


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(2, 100, (2, 10), generator=torch.Generator().manual_seed(0))


def _trainable_outside_lora(model: torch.nn.Module) -> set[str]:
    return {n.split(".")[0] if "." not in n else n for n, p in model.named_parameters()
            if p.requires_grad and "lora_" not in n}  # fmt: skip


@pytest.mark.parametrize(("family", "cls"), CASES, ids=IDS)
def test_every_paper_name_counts_r_times_din_plus_dout(family, cls):
    shapes = FAMILIES[family][2]
    r = 4
    model = apply_lora(build(family, cls), list(shapes), r=r)
    for layer in lora_layers(model):  # GQA: k and v really are narrower than q
        assert (layer.in_features, layer.out_features) in shapes.values()
    assert len(lora_layers(model)) == LAYERS * len(shapes)
    expected = LAYERS * sum(r * (d_in + d_out) for d_in, d_out in shapes.values())
    assert count_parameters(model).method == expected


@pytest.mark.parametrize(("family", "cls"), CASES, ids=IDS)
def test_qv_on_gqa_and_heads_not_adapted(family, cls):
    model = apply_lora(build(family, cls), ["q", "k", "v"], r=2)
    shapes = FAMILIES[family][2]
    widths = sorted((m.in_features, m.out_features) for m in lora_layers(model))
    assert widths == sorted([shapes["q"], shapes["k"], shapes["v"]] * LAYERS)
    adapted = {n for n, m in model.named_modules() if m in lora_layers(model)}
    assert not any(h in n for n in adapted for h in ("lm_head", "score", "classifier"))
    head = _trainable_outside_lora(model)
    if "ForCausalLM" in cls.__name__:
        assert head == set()  # the LM head is neither adapted nor trained
    else:  # the task head trains, and is not counted as the method's parameters
        assert head and all(("score" in n or "classifier" in n) for n in head)
        counts = count_parameters(model)
        assert counts.trainable > counts.method
    qkv = sum(2 * (d_in + d_out) for d_in, d_out in (shapes["q"], shapes["k"], shapes["v"]))
    assert count_parameters(model).method == LAYERS * qkv


@pytest.mark.parametrize(("family", "cls"), CASES, ids=IDS)
def test_all_linear_adapts_every_block_projection(family, cls):
    model = apply_lora(build(family, cls), "all-linear", r=2)
    shapes = FAMILIES[family][2]
    assert len(lora_layers(model)) == LAYERS * len(shapes)
    assert count_parameters(model).method == LAYERS * sum(2 * (a + b) for a, b in shapes.values())


@pytest.mark.parametrize(("family", "cls"), CASES, ids=IDS)
def test_merge_save_load_keep_outputs(family, cls, tokens, tmp_path):
    method = LoraConfig(r=4, lora_alpha=8, targets=["q", "v", "o"])
    model = method.apply(build(family, cls))
    randomize_lora(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and "lora_" not in n:
                p.add_(0.05)
    expected = model(tokens).logits
    assert not torch.allclose(expected, build(family, cls)(tokens).logits, atol=1e-4)
    save_adapter(model, tmp_path, method)
    loaded = load_adapter(build(family, cls), tmp_path)
    torch.testing.assert_close(loaded(tokens).logits, expected, atol=0, rtol=0)
    plain = merge_and_unload(loaded)
    assert not lora_layers(plain)
    torch.testing.assert_close(plain(tokens).logits, expected, atol=1e-5, rtol=0)


def test_gated_mlp_names_and_missing_names_are_explained():
    model = build("llama", LlamaForCausalLM)
    with pytest.raises(
        ValueError,
        match=r"target 'ffn_in' does not exist in llama; its names: q, k, v, o, gate, up, down",
    ):
        apply_lora(model, ["ffn_in"])
    assert not lora_layers(model)
    apply_lora(model, ["gate", "up", "down"], r=2)
    names = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m in lora_layers(model)}
    )
    assert names == ["down_proj", "gate_proj", "up_proj"]
