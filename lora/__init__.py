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
from lora.arch import ARCHITECTURES, TARGET_NAMES, arch_spec
from lora.checkpoint import load_adapter, load_adapter_weights, save_adapter
from lora.inject import apply_lora, lora_layers, merge_and_unload, merge_lora, unmerge_lora
from lora.layers import FusedLinear, Linear, LoRALayer
from lora.methods import METHODS, FullFTConfig, LoraConfig, MethodConfig, make_method
from lora.params import ParamCounts, count_parameters, mark_trainable
from lora.prefix import PrefixEmbedConfig, PrefixLayerConfig, max_input_length
from lora.selective import BitFitConfig, FTTop2Config

__all__ = [
    "ARCHITECTURES",
    "METHODS",
    "TARGET_NAMES",
    "Adapter",
    "AdapterDConfig",
    "AdapterHConfig",
    "AdapterLConfig",
    "AdapterPConfig",
    "BitFitConfig",
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
    "adapter_layers",
    "apply_lora",
    "arch_spec",
    "count_parameters",
    "load_adapter",
    "load_adapter_weights",
    "lora_layers",
    "make_method",
    "mark_trainable",
    "max_input_length",
    "merge_and_unload",
    "merge_lora",
    "save_adapter",
    "unmerge_lora",
]
