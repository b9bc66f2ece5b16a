"""How methods and numbers are printed, in one place for every job and table.

The jobs (experiments/perf, experiments/params.py) write these labels into their records
and output; the tables (experiments/report) print them. Both import them from here, so
that no job imports the table code.
"""

from __future__ import annotations

from typing import Any

#: Harness method name -> the paper's label (Tables 2, 3 and 15) or the method's own paper.
METHOD_LABELS = {
    "full_ft": "FT",
    "lora": "LoRA",
    "ft_top2": "FT^Top2",
    "bitfit": "BitFit",
    "adapter_h": "AdapterH",
    "adapter_l": "AdapterL",
    "adapter_p": "AdapterP",
    "adapter_d": "AdapterD",
    "prefix_embed": "PreEmbed",
    "prefix_layer": "PreLayer",
    "lora+prefix_embed": "LoRA+PE",
    "lora+prefix_layer": "LoRA+PL",
    "rslora": "rsLoRA",
    "dora": "DoRA",
    "pissa": "PiSSA",
    "loraplus": "LoRA+",
    "vera": "VeRA",
}

# LoRA variants are `name: lora` plus a flag (conf/method/{dora,rslora,pissa,loraplus}.yaml).
_LORA_VARIANTS = (
    ("dora", lambda m: m.get("use_dora")),
    ("rslora", lambda m: m.get("use_rslora")),
    ("pissa", lambda m: m.get("init") == "pissa"),
    ("loraplus", lambda m: m.get("loraplus_lr_ratio")),
)


def method_names(method: dict[str, Any]) -> list[str]:
    """Label keys of a method config: ``["lora"]``, ``["dora"]``, ``["dora", "rslora"]``..."""
    name = method.get("name") or method.get("method")
    if name != "lora":
        return [str(name)]
    return [key for key, flagged in _LORA_VARIANTS if flagged(method)] or ["lora"]


def method_order(method: dict[str, Any]) -> int:
    """Position of the method in the paper's row order (unknown methods last)."""
    order = list(METHOD_LABELS)
    name = method_names(method)[0]
    return order.index(name) if name in order else len(order)


def fmt_targets(targets: list[str] | str) -> str:
    """``["q", "v"]`` -> ``W_q,W_v`` (module names longer than one letter stay as they are;
    a preset name such as ``"all-linear"`` too)."""
    if isinstance(targets, str):
        return targets
    return ",".join(f"W_{t}" if len(t) == 1 else t for t in targets)


def method_label(method: dict[str, Any]) -> str:
    """Paper-style label, e.g. ``LoRA (r=8, W_q,W_v)``, ``DoRA (r=8, W_q,W_v)``, ``FT``."""
    label = ", ".join(METHOD_LABELS.get(n, n) for n in method_names(method))
    if "targets" in method:
        return f"{label} (r={method.get('r')}, {fmt_targets(method['targets'])})"
    details = [f"{k}={method[k]}" for k in ("r", "l_p", "l_i", "drop_first") if k in method]
    return f"{label} ({', '.join(details)})" if details else label


#: Latency variants (experiments/perf/latency.py): the method's label plus how it runs.
LATENCY_LABELS = {
    "base": "Base (no adaptation)",
    "lora_merged": f"{METHOD_LABELS['lora']} merged",
    "lora_unloaded": f"{METHOD_LABELS['lora']} merged + unloaded",
    "lora_unmerged": f"{METHOD_LABELS['lora']} unmerged",
    "adapter_l": METHOD_LABELS["adapter_l"],
    "adapter_h": METHOD_LABELS["adapter_h"],
    "prefix_layer": METHOD_LABELS["prefix_layer"],
}


def fmt_params(n: int | None) -> str:
    """Parameter count as the paper prints it: ``294,912`` -> ``0.29M``."""
    if n is None:
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e5:  # the paper writes 294,912 as 0.3M
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def fmt_ratio(ratio: float, se: float) -> str:
    """``1.003±0.004``."""
    return f"{ratio:.3f}±{se:.3f}"


# -- names in the perf records (experiments/perf writes them, experiments/report reads them)

#: The methods the training-efficiency job (experiments/perf/bench.py) compares.
METHODS = ("full_ft", "lora")
#: The adapter kinds the latency job (experiments/perf/latency.py) sizes by budget.
ADAPTER_KINDS = ("adapter_l", "adapter_h")


def peak_key(device: str) -> str:
    """Record key of the peak memory figure on ``device``."""
    return "peak_gpu_mb" if device.startswith("cuda") else "peak_rss_mb"
