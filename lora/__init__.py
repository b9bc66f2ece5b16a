"""LoRA (Hu et al. 2021, arXiv 2106.09685) and the paper's baselines, in pure torch.

Public API::

    from lora import apply_lora, merge_and_unload, count_parameters, make_method
    apply_lora(model, targets=["q", "v"], r=8, lora_alpha=16)
"""

from lora.adapters import (
    Adapter,
    AdapterDConfig,
    AdapterHConfig,
    AdapterLConfig,
    AdapterPConfig,
    adapter_layers,
)
from lora.analysis import (
    amplification_factor,
    lora_delta,
    projected_norm,
    subspace_similarity,
    subspace_similarity_grid,
)
from lora.arch import ALL_LINEAR, ARCHITECTURES, TARGET_NAMES, arch_spec, parse_targets
from lora.checkpoint import (
    base_model_identity,
    load_adapter,
    load_adapter_weights,
    save_adapter,
)
from lora.compose import ComposedConfig
from lora.inject import (
    apply_lora,
    lora_layers,
    merge_and_unload,
    merge_lora,
    resolve_targets,
    unmerge_lora,
)
from lora.layers import FusedLinear, Linear, LoRALayer
from lora.loraplus import loraplus_param_groups
from lora.methods import METHODS, FullFTConfig, LoraConfig, MethodConfig, make_method
from lora.params import ParamCounts, cast_adapter_dtype, count_parameters, mark_trainable
from lora.peft_format import export_peft, load_peft
from lora.prefix import PrefixEmbedConfig, PrefixLayerConfig, max_input_length
from lora.selective import BitFitConfig, FTTop2Config
from lora.vera import VeraConfig, VeraLinear, apply_vera

__all__ = [
    "ALL_LINEAR",
    "ARCHITECTURES",
    "METHODS",
    "TARGET_NAMES",
    "Adapter",
    "AdapterDConfig",
    "AdapterHConfig",
    "AdapterLConfig",
    "AdapterPConfig",
    "BitFitConfig",
    "ComposedConfig",
    "FTTop2Config",
    "FullFTConfig",
    "FusedLinear",
    "Linear",
    "LoRALayer",
    "LoraConfig",
    "MethodConfig",
    "ParamCounts",
    "PrefixEmbedConfig",
    "PrefixLayerConfig",
    "VeraConfig",
    "VeraLinear",
    "adapter_layers",
    "amplification_factor",
    "apply_lora",
    "apply_vera",
    "arch_spec",
    "base_model_identity",
    "cast_adapter_dtype",
    "count_parameters",
    "export_peft",
    "load_adapter",
    "load_adapter_weights",
    "load_peft",
    "lora_delta",
    "lora_layers",
    "loraplus_param_groups",
    "make_method",
    "mark_trainable",
    "max_input_length",
    "merge_and_unload",
    "merge_lora",
    "parse_targets",
    "projected_norm",
    "resolve_targets",
    "save_adapter",
    "subspace_similarity",
    "subspace_similarity_grid",
    "unmerge_lora",
]
