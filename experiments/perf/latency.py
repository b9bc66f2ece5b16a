"""Inference latency of LoRA and the adapter/prefix baselines: paper Table 1 and Figure 5.

    python -m experiments.latency                              # CPU default (~10 min, 2 cores)
    python -m experiments.latency preset=table1 device=cuda    # Table 1: 3 points, 100 trials
    python -m experiments.latency preset=figure5 device=cuda   # Figure 5: 18 points x r
    python -m experiments.latency preset=successors model=minilm-l6  # LoRA's successors merged

A model preset's architecture (``model=``: GPT-2 medium by default, ``smollm2-135m``
for Llama, ``minilm-l6`` for the BERT encoder of the successors comparison) with random
weights (latency does not depend on the values), eval mode, ``torch.no_grad``, no KV
cache, one forward pass over a (batch, seq) block of token ids. Every variant is a copy
of one base model that shares its weights (merged LoRA copies only the matrices it
merges into): the base;
LoRA merged (r=4 on W_q, W_v, B set non-zero, then :func:`lora.merge_lora`: the
paper's "Fine-Tune/LoRA" row; the GPU preset also times it merged and unloaded, i.e.
without the wrappers); LoRA unmerged (for information); AdapterL and AdapterH at
parameter budgets, r from the paper's count formula (§5.1); PreLayer; and each entry of
``merged`` (a LoRA-family method such as DoRA, PiSSA or VeRA: applied with its own
initialisation on its own copy of the weights, then folded into them and unloaded by
:func:`lora.merge_and_unload`, the model it ships for inference). Base and
variants are timed round-robin in one process (:func:`experiments.perf.timing.interleave`)
and each variant's overhead is the median of its per-round ratio to the base.

Writes a JSON record under ``results/runs/latency/``, then builds its table as ``make
tables`` does (``python -m experiments.tables --experiment latency`` in a child process:
:mod:`experiments.report.latency_tables` renders it) to ``results/tables/<name>.md`` and
``.csv`` (ours beside the paper's Table 1) and ``<name>.png`` (Figure 5-style heat maps
of the adapters' slow-down).

Errors: a bad setting stops with one line naming it and the allowed values.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from experiments.core.labels import ADAPTER_KINDS, fmt_targets, method_label
from experiments.core.labels import LATENCY_LABELS as LABELS
from experiments.core.schema import ConfigError
from experiments.perf.models import build_model, meta_model
from experiments.perf.schema import METHOD_KINDS as METHOD_KINDS  # the variant kinds
from experiments.perf.schema import LatencyConfig, presets, resolve
from experiments.perf.timing import compare, perf_record, publish, setup, share_weights_copy
from lora import count_parameters, lora_layers, make_method, merge_and_unload, merge_lora

log = logging.getLogger("experiments.latency")

PRESETS = presets("latency")
#: LoRA variants whose update is folded into W0: the paper's "Fine-Tune/LoRA" row.
MERGED_KINDS = ("lora_merged", "lora_unloaded")
#: Target band of merged LoRA latency / base latency.
MERGED_TOLERANCE = 0.02


# -- variants --------------------------------------------------------------------------


def adapter_params(kind: str, n_layer: int, d: int, r: int) -> int:
    """Paper §5.1: |Θ| = L̂_Adpt·(2·d·r + r + d) + 2·L̂_LN·d.

    AdapterH has L̂_Adpt = 2L adapters and no new LayerNorm; AdapterL has L adapters
    and L trainable LayerNorms.
    """
    n_adapters = 2 * n_layer if kind == "adapter_h" else n_layer
    n_ln = n_layer if kind == "adapter_l" else 0
    return n_adapters * (2 * d * r + r + d) + 2 * n_ln * d


def r_for_budget(kind: str, n_layer: int, d: int, budget: int) -> int:
    """Bottleneck r ≥ 1 whose :func:`adapter_params` is nearest ``budget``.

    GPT-2 medium (L=24, d=1024): AdapterL 0.5M -> r=9 (0.52M), 11M -> r=222 (10.99M);
    AdapterH 0.5M -> r=5 (0.54M), 11M -> r=111 (10.97M).
    """
    fixed = adapter_params(kind, n_layer, d, 0)
    per_r = adapter_params(kind, n_layer, d, 1) - fixed
    return max(1, round((budget - fixed) / per_r))  # the count is linear in r


@dataclass(frozen=True)
class Variant:
    """One timed model.

    Attributes:
        key: unique id, e.g. ``adapter_h-r111``, ``merged-dora``.
        kind: ``base``, one of :data:`METHOD_KINDS`, or ``merged`` (a ``merged`` entry).
        method: ``make_method`` name and settings (empty for the base).
        budget: the |Θ| budget this adapter size was derived from, if any.
        formula_params: |Θ| by the paper's formula (adapters) or None.
    """

    key: str
    kind: str
    method: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    formula_params: int | None = None

    @property
    def label(self) -> str:
        """Table label, e.g. ``AdapterH (r=111)``."""
        m = self.method
        if self.kind == "merged":
            return f"{method_label(m)} merged"
        if self.kind.startswith("lora"):
            return f"{LABELS[self.kind]} (r={m['r']}, {fmt_targets(m['targets'])})"
        if self.kind in ADAPTER_KINDS:
            return f"{LABELS[self.kind]} (r={m['r']})"
        if self.kind == "prefix_layer":
            return f"{LABELS[self.kind]} (l_p={m['l_p']}, l_i={m['l_i']})"
        return LABELS[self.kind]


def plan_variants(s: LatencyConfig, n_layer: int, d: int) -> list[Variant]:
    """The base plus every method variant of ``s``, in table order."""
    out = [Variant("base", "base")]
    for kind in s.methods:
        if kind.startswith("lora"):
            out.append(Variant(kind, kind, {"name": "lora", **s.lora}))
        elif kind == "prefix_layer":
            out.append(Variant(kind, kind, {"name": "prefix_layer", **s.prefix}))
        else:
            sizes: dict[int, int | None] = {r: None for r in s.adapter_r}
            for budget in s.adapter_budgets:
                sizes.setdefault(r_for_budget(kind, n_layer, d, budget), budget)
            for r, budget in sorted(sizes.items()):
                out.append(
                    Variant(
                        f"{kind}-r{r}",
                        kind,
                        {"name": kind, "r": r},
                        budget,
                        adapter_params(kind, n_layer, d, r),
                    )
                )
    out += [Variant(f"merged-{row}", "merged", dict(m)) for row, m in s.merged.items()]
    return out


def build_variant(base: nn.Module, v: Variant, seed: int) -> tuple[nn.Module, int]:
    """A weight-sharing copy of ``base`` adapted as ``v``; returns (model, |Θ| counted).

    LoRA's B gets N(0, 0.02²) values, as after training, so the merged weights differ
    from the base; the merged variants first get their own copy of each W0.
    ``lora_merged`` keeps the LoRA wrappers (:func:`lora.merge_lora`); ``lora_unloaded``
    puts the plain projections back (:func:`lora.merge_and_unload`), so it shows what
    the wrappers' Python calls cost where launch overhead matters (small GPU batches).
    A ``merged`` variant is a full copy, adapted at its initialisation and then merged
    and unloaded: its dense weights have the base's shapes, whatever their values.

    Raises:
        ValueError: the method does not fit the model (e.g. ``use_dora`` on GPT-2's
            fused ``c_attn``).
    """
    if v.kind == "base":
        return base, 0
    # merged entries change W0 in place (PiSSA's initialisation, the merge): own copy
    model = copy.deepcopy(base) if v.kind == "merged" else share_weights_copy(base)
    settings = dict(v.method)
    torch.manual_seed(seed)  # the merged and unmerged LoRA variants get the same A
    # Inference in the base dtype, as the paper times it: no fp32 upcast of the adapters.
    settings.setdefault("autocast_adapter_dtype", False)
    make_method(settings.pop("name"), **settings).apply(model)
    params = count_parameters(model).method
    if v.kind.startswith("lora"):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in lora_layers(model):
                b = torch.randn(layer.lora_B.shape, generator=g) * 0.02
                layer.lora_B.copy_(b.to(layer.lora_B))
                if v.kind in MERGED_KINDS:
                    w = layer.base_layer.weight
                    layer.base_layer.weight = nn.Parameter(w.detach().clone(), requires_grad=False)
        if v.kind == "lora_merged":
            merge_lora(model, keep_base=False)
        elif v.kind == "lora_unloaded":
            merge_and_unload(model)
    if v.kind == "merged":
        merge_and_unload(model)
    return model.eval(), params


# -- measurement -----------------------------------------------------------------------


def measure_point(
    models: dict[str, nn.Module],
    batch: int,
    seq: int,
    s: LatencyConfig,
    vocab: int,
    device: torch.device,
    timer=None,
) -> dict[str, Any]:
    """Time every model on one (batch, seq) block; ratios against ``models["base"]``.

    Returns:
        ``{"batch", "seq", "tokens", "results": {key: {"stats", "times_ms", "ratio",
        "ratio_se", "overhead_pct"}}}``; times in ms, overhead = 100·(ratio − 1).
    """
    g = torch.Generator().manual_seed(s.seed + batch * 100_003 + seq)
    ids = torch.randint(0, vocab, (batch, seq), generator=g).to(device)

    def forward(model: nn.Module):
        return lambda: model(input_ids=ids, use_cache=False)

    with torch.no_grad():
        timed = compare({k: forward(m) for k, m in models.items()}, s.trials, s.warmup, device,
                        s.seed, "base", timer)  # fmt: skip
    results = {}
    for key, t in timed.items():
        ratio, se = t["ratio"]
        results[key] = {"stats": t["stats"], "times_ms": t["times_ms"], "ratio": ratio,
                        "ratio_se": se, "overhead_pct": 100 * (ratio - 1)}  # fmt: skip
    return {"batch": batch, "seq": seq, "tokens": batch * seq, "results": results}


# -- targets ---------------------------------------------------------------------------


def check_targets(points: list[dict[str, Any]], variants: list[Variant]) -> list[dict[str, Any]]:
    """Evaluate the latency targets on the measured ratios.

    Returns one dict per target: ``target``, ``figure`` (what was measured), ``met``
    (bool, or None when the run has nothing to check it on).
    """

    def point_name(p):
        return f"{p['batch']}×{p['seq']}"

    out = []
    for v in variants:
        if v.kind not in (*MERGED_KINDS, "merged"):
            continue
        ratios = [(point_name(p), p["results"][v.key]["ratio"]) for p in points]
        label = v.label if v.kind == "merged" else LABELS[v.kind]
        out.append(
            {
                "target": f"{label} / base latency = 1.00 ± {MERGED_TOLERANCE:.2f}",
                "figure": ", ".join(f"{r:.3f} ({n})" for n, r in ratios),
                "met": all(abs(r - 1) <= MERGED_TOLERANCE for _, r in ratios),
            }
        )
    adapters = [v for v in variants if v.kind in ADAPTER_KINDS]
    if adapters:
        worst = min(
            (p["results"][v.key]["ratio"], point_name(p), v.label) for p in points for v in adapters
        )
        out.append(
            {
                "target": "adapter overhead > 0 at every point",
                "figure": f"smallest ratio {worst[0]:.3f} ({worst[2]}, {worst[1]})",
                "met": worst[0] > 1,
            }
        )
        pairs = []
        for budget in sorted({v.budget for v in adapters if v.budget is not None}):
            by_kind = {v.kind: v for v in adapters if v.budget == budget}
            if len(by_kind) == 2:
                pairs += [
                    (
                        p["results"][by_kind["adapter_h"].key]["ratio"]
                        > p["results"][by_kind["adapter_l"].key]["ratio"]
                    )
                    for p in points
                ]
        out.append(
            {
                "target": "AdapterH overhead > AdapterL overhead at equal budget",
                "figure": f"{sum(pairs)} of {len(pairs)} (budget, point) pairs",
                "met": all(pairs) if pairs else None,
            }
        )
        ordered = total = 0
        for v in adapters:
            for a in points:
                for b in points:
                    if a["tokens"] < b["tokens"]:
                        total += 1
                        ordered += a["results"][v.key]["ratio"] > b["results"][v.key]["ratio"]
        out.append(
            {
                "target": "adapter overhead grows as batch × seq shrinks",
                "figure": f"{ordered} of {total} (variant, smaller, larger) triples ordered",
                "met": ordered == total if total else None,
            }
        )
    return out


# -- entry point -----------------------------------------------------------------------


def run(cfg: DictConfig, timer=None) -> tuple[dict[str, Any], list[Path]]:
    """Validate, build the variants, time the grid and write the outputs.

    Args:
        cfg: the composed ``conf/latency.yaml``.
        timer: replaces :func:`experiments.perf.timing.time_call` (tests).

    Returns:
        The record and the written paths.

    Raises:
        ConfigError: a bad setting, before any model is built; or a method that does
            not fit the model (e.g. DoRA on GPT-2's fused ``c_attn``), once it is built.
    """
    s = resolve(cfg)
    device, dtype = setup(s)
    meta = meta_model(s.model, s.arch_overrides)
    config = meta.config
    variants = plan_variants(s, config.num_hidden_layers, config.hidden_size)
    log.info("building %s (%s, %s) and %d variants", s.model.name, s.device, s.dtype,
             len(variants) - 1)  # fmt: skip
    base = build_model(meta, device, dtype, s.seed).eval()
    models, params = {}, {}
    for v in variants:
        try:
            models[v.key], params[v.key] = build_variant(base, v, s.seed)
        except ValueError as err:  # a method that does not fit this architecture
            where = f"merged.{v.key.removeprefix('merged-')}" if v.kind == "merged" else "methods"
            raise ConfigError(f"invalid setting {where} for model={s.model.name}: {err}") from None
    points = []
    for batch, seq in s.grid:
        log.info(
            "timing %d×%d: %d rounds + %d warm-up over %d models",
            batch,
            seq,
            s.trials,
            s.warmup,
            len(models),
        )
        point = measure_point(models, batch, seq, s, config.vocab_size, device, timer)
        points.append(point)
        log.info(
            "%d×%d: base %.1f ms; %s",
            batch,
            seq,
            point["results"]["base"]["stats"]["mean"],
            ", ".join(
                f"{k} {r['overhead_pct']:+.1f}%" for k, r in point["results"].items() if k != "base"
            ),
        )
    record = perf_record(
        "latency",
        s,
        device,
        s.notes,
        model=s.model.name,
        arch={
            "model_type": config.model_type,
            "num_hidden_layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "num_attention_heads": config.num_attention_heads,
            "vocab_size": config.vocab_size,
            "attn_implementation": getattr(config, "_attn_implementation", None),
        },
        variants=[{**asdict(v), "label": v.label, "params": params[v.key]} for v in variants],
        points=points,
        targets=check_targets(points, variants),
    )
    return record, publish(record, Path(s.results_dir))
