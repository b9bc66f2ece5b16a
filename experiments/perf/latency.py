"""Inference latency of LoRA and the adapter/prefix baselines: paper Table 1 and Figure 5.

    python -m experiments.latency                              # CPU default (~10 min, 2 cores)
    python -m experiments.latency preset=table1 device=cuda    # Table 1: 3 points, 100 trials
    python -m experiments.latency preset=figure5 device=cuda   # Figure 5: 18 points x r

GPT-2 medium's architecture with random weights (latency does not depend on the
values), eval mode, ``torch.no_grad``, no KV cache, one forward pass over a
(batch, seq) block of token ids. Every variant is a copy of one base model that
shares its weights (merged LoRA copies only the matrices it merges into): the base;
LoRA merged (r=4 on W_q, W_v, B set non-zero, then :func:`lora.merge_lora`: the
paper's "Fine-Tune/LoRA" row; the GPU preset also times it merged and unloaded, i.e.
without the wrappers); LoRA unmerged (for information); AdapterL and AdapterH at
parameter budgets, r from the paper's count formula (§5.1); PreLayer. Base and
variants are timed round-robin in one process (:func:`experiments.perf.timing.interleave`)
and each variant's overhead is the median of its per-round ratio to the base.

Writes ``results/tables/<name>.md`` and ``.csv`` (ours beside the paper's Table 1),
``<name>.png`` (Figure 5-style heat maps of the adapters' slow-down) and a JSON
record under ``results/runs/latency/``.

Errors: a bad setting stops with one line naming it and the allowed values.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments.core.records import SCHEMA_VERSION, provenance, write_atomic
from experiments.core.schema import ConfigError
from experiments.perf.timing import (
    Stats,
    arch_config,
    build_model,
    check,
    check_int,
    hardware,
    hardware_line,
    interleave,
    md_table,
    paired_ratio,
    resolve_device,
    resolve_dtype,
    select_device,
    settings_hash,
    share_weights_copy,
    write_table,
)
from experiments.report.tables import fmt_params
from lora import count_parameters, lora_layers, make_method, merge_and_unload, merge_lora

log = logging.getLogger("experiments.latency")

PRESETS = ("cpu", "table1", "figure5")
METHOD_KINDS = (
    "lora_merged",
    "lora_unloaded",
    "lora_unmerged",
    "adapter_l",
    "adapter_h",
    "prefix_layer",
)
#: LoRA variants whose update is folded into W0: the paper's "Fine-Tune/LoRA" row.
MERGED_KINDS = ("lora_merged", "lora_unloaded")
ADAPTER_KINDS = ("adapter_l", "adapter_h")
LABELS = {
    "base": "Base (no adaptation)",
    "lora_merged": "LoRA merged",
    "lora_unloaded": "LoRA merged + unloaded",
    "lora_unmerged": "LoRA unmerged",
    "adapter_l": "AdapterL",
    "adapter_h": "AdapterH",
    "prefix_layer": "PreLayer",
}
#: Paper Table 1 (§3; NVIDIA Quadro RTX 8000, 100 trials, GPT-2 medium): (batch, seq) ->
#: adapter budget |Θ|, then (mean ms, ±, overhead %) per row; "base" is "Fine-Tune/LoRA".
PAPER_TABLE1: dict[tuple[int, int], dict[str, Any]] = {
    (32, 512): {
        "budget": 500_000,
        "base": (1449.4, 0.8, 0.0),
        "adapter_l": (1482.0, 1.0, 2.2),
        "adapter_h": (1492.2, 1.0, 3.0),
    },
    (16, 256): {
        "budget": 11_000_000,
        "base": (338.0, 0.6, 0.0),
        "adapter_l": (354.8, 0.5, 5.0),
        "adapter_h": (366.3, 0.5, 8.4),
    },
    (1, 128): {
        "budget": 11_000_000,
        "base": (19.8, 2.7, 0.0),
        "adapter_l": (23.9, 2.1, 20.7),
        "adapter_h": (25.8, 2.2, 30.3),
    },
}
# fmt: off
#: Columns of the latency CSV: one row per (point, variant), ours and the paper's.
CSV_COLUMNS = (
    "source", "batch", "seq", "tokens", "method", "label", "r", "params", "budget",
    "mean_ms", "std_ms", "median_ms", "min_ms", "trials", "ratio_vs_base", "ratio_se",
    "overhead_pct", "device", "dtype", "hardware",
)
# fmt: on
#: Target band of merged LoRA latency / base latency.
MERGED_TOLERANCE = 0.02


# -- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated settings of one latency run (see ``conf/latency.yaml``)."""

    preset: str
    model: str
    arch: dict[str, Any]
    arch_overrides: dict[str, Any]
    device: str
    dtype: str
    seed: int
    threads: int | None
    grid: tuple[tuple[int, int], ...]
    trials: int
    warmup: int
    methods: tuple[str, ...]
    adapter_budgets: tuple[int, ...]
    adapter_r: tuple[int, ...]
    lora: dict[str, Any]
    prefix: dict[str, Any]
    name: str
    results_dir: str


def resolve(cfg: DictConfig) -> Settings:
    """Fill unset settings from the preset and check every value.

    Raises:
        ConfigError: one line naming the setting and the allowed values.
    """
    c = OmegaConf.to_container(cfg, resolve=True)
    check(c["preset"] in PRESETS, "preset", f"{c['preset']!r}; allowed: {', '.join(PRESETS)}")
    preset = c["presets"][c["preset"]]
    pick = {k: preset[k] if c.get(k) is None else c[k] for k in preset}
    resolve_device(c["device"])
    resolve_dtype(c["dtype"])
    model = c["model"]["name"]
    config = arch_config(model, c["model"].get("arch"), c["arch_overrides"])
    check(
        config.model_type == "gpt2",
        "model",
        f"{model!r} is not GPT-2; allowed: a GPT-2 preset (gpt2-medium, gpt2-large)",
    )
    threads = c.get("threads")
    if threads is not None:
        check_int(threads, "threads", 1)
    methods = pick["methods"]
    bad = [m for m in methods if m not in METHOD_KINDS]
    check(not bad, "methods", f"{bad}; allowed: {', '.join(METHOD_KINDS)}")
    budgets = [check_int(b, "adapter_budgets", 1) for b in pick["adapter_budgets"]]
    sizes = [check_int(r, "adapter_r", 1) for r in pick["adapter_r"]]
    if any(m in ADAPTER_KINDS for m in methods):
        check(
            bool(budgets or sizes),
            "adapter_budgets",
            "adapter methods need adapter_budgets or adapter_r; both are empty",
        )
    for key, name in (("lora", "lora"), ("prefix", "prefix_layer")):
        try:
            make_method(name, **c[key])
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid setting {key}: {err}") from None
    n_v = c["prefix"]["l_p"] + c["prefix"]["l_i"] if "prefix_layer" in methods else 0
    grid = []
    for point in pick["grid"]:
        ok = isinstance(point, list | tuple) and len(point) == 2
        check(ok, "grid", f"entries must be [batch, seq]; got {point!r}")
        b, s = check_int(point[0], "grid", 1), check_int(point[1], "grid", 1)
        check(
            s + n_v <= config.n_positions,
            "grid",
            f"seq {s} + {n_v} prefix tokens exceeds the model's {config.n_positions} positions",
        )
        grid.append((b, s))
    check(bool(grid), "grid", "must list at least one [batch, seq]")
    return Settings(
        preset=c["preset"],
        model=model,
        arch=dict(c["model"]["arch"]),
        arch_overrides=dict(c["arch_overrides"] or {}),
        device=c["device"],
        dtype=c["dtype"],
        seed=check_int(c["seed"], "seed", 0),
        threads=threads,
        grid=tuple(dict.fromkeys(grid)),
        trials=check_int(pick["trials"], "trials", 1),
        warmup=check_int(pick["warmup"], "warmup", 0),
        methods=tuple(m for m in METHOD_KINDS if m in methods),
        adapter_budgets=tuple(sorted(set(budgets))),
        adapter_r=tuple(sorted(set(sizes))),
        lora=dict(c["lora"]),
        prefix=dict(c["prefix"]),
        name=str(pick["name"]),
        results_dir=str(c["results_dir"]),
    )


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
        key: unique id, e.g. ``adapter_h-r111``.
        kind: ``base`` or one of :data:`METHOD_KINDS`.
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
        if self.kind.startswith("lora"):
            targets = ",".join(f"W_{t}" for t in m["targets"])
            return f"{LABELS[self.kind]} (r={m['r']}, {targets})"
        if self.kind in ADAPTER_KINDS:
            return f"{LABELS[self.kind]} (r={m['r']})"
        if self.kind == "prefix_layer":
            return f"{LABELS[self.kind]} (l_p={m['l_p']}, l_i={m['l_i']})"
        return LABELS[self.kind]


def plan_variants(s: Settings, n_layer: int, d: int) -> list[Variant]:
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
    return out


def build_variant(base: nn.Module, v: Variant, seed: int) -> tuple[nn.Module, int]:
    """A weight-sharing copy of ``base`` adapted as ``v``; returns (model, |Θ| counted).

    LoRA's B gets N(0, 0.02²) values, as after training, so the merged weights differ
    from the base; the merged variants first get their own copy of each W0.
    ``lora_merged`` keeps the LoRA wrappers (:func:`lora.merge_lora`); ``lora_unloaded``
    puts the plain projections back (:func:`lora.merge_and_unload`), so it shows what
    the wrappers' Python calls cost where launch overhead matters (small GPU batches).
    """
    if v.kind == "base":
        return base, 0
    model = share_weights_copy(base)
    settings = dict(v.method)
    torch.manual_seed(seed)  # the merged and unmerged LoRA variants get the same A
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
    return model.eval(), params


# -- measurement -----------------------------------------------------------------------


def measure_point(
    models: dict[str, nn.Module],
    batch: int,
    seq: int,
    s: Settings,
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

    kwargs = {"timer": timer} if timer is not None else {}
    with torch.no_grad():
        times = interleave(
            {k: forward(m) for k, m in models.items()},
            s.trials,
            s.warmup,
            device,
            seed=s.seed,
            **kwargs,
        )
    results = {}
    for key, samples in times.items():
        ratio, se = paired_ratio(samples, times["base"])
        results[key] = {
            "stats": Stats.of(samples).as_dict(),
            "times_ms": samples,
            "ratio": ratio,
            "ratio_se": se,
            "overhead_pct": 100 * (ratio - 1),
        }
    return {"batch": batch, "seq": seq, "tokens": batch * seq, "results": results}


# -- targets ---------------------------------------------------------------------------


def check_targets(points: list[dict[str, Any]], variants: list[Variant]) -> list[dict[str, Any]]:
    """Evaluate the issue's latency targets on the measured ratios.

    Returns one dict per target: ``target``, ``figure`` (what was measured), ``met``
    (bool, or None when the run has nothing to check it on).
    """

    def point_name(p):
        return f"{p['batch']}×{p['seq']}"

    out = []
    for kind in [v.kind for v in variants if v.kind in MERGED_KINDS]:
        ratios = [(point_name(p), p["results"][kind]["ratio"]) for p in points]
        out.append(
            {
                "target": f"{LABELS[kind]} / base latency = 1.00 ± {MERGED_TOLERANCE:.2f}",
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


# -- outputs ---------------------------------------------------------------------------


def _cell(res: dict[str, Any], base: bool) -> str:
    st = res["stats"]
    text = f"{st['mean']:.1f}±{st['std']:.1f}"
    return text if base else f"{text} ({res['overhead_pct']:+.1f}%)"


def render(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table and CSV rows (dicts keyed by :data:`CSV_COLUMNS`) of a latency record."""
    s, points, variants = record["settings"], record["points"], record["variants"]
    cols = [f"{p['batch']}×{p['seq']}" for p in points]
    paper = [PAPER_TABLE1.get((p["batch"], p["seq"])) for p in points]
    header = ["Method", "\\|Θ\\| (ours, counted)", *cols]
    rows: list[list[str]] = []

    def paper_row(kind: str, label: str) -> None:
        if not any(paper):
            return
        cells = []
        for entry in paper:
            if entry is None:
                cells.append("")
                continue
            mean, pm, pct = entry[kind]
            text = f"{mean:.1f}±{pm:.1f}" + ("" if kind == "base" else f" ({pct:+.1f}%)")
            budget = "" if kind == "base" else f", \\|Θ\\| {fmt_params(entry['budget'])}"
            cells.append(f"*{text}{budget}*")
        rows.append([f"*Paper: {label}*", "", *cells])

    kinds = [v["kind"] for v in variants]
    for i, v in enumerate(variants):
        r = [p["results"][v["key"]] for p in points]
        budget = f" [budget {fmt_params(v['budget'])}]" if v["budget"] else ""
        rows.append(
            [
                v["label"] + budget,
                fmt_params(v["params"]) if v["params"] else "0",
                *[_cell(x, v["kind"] == "base") for x in r],
            ]
        )
        last_of_kind = i + 1 == len(variants) or kinds[i + 1] != v["kind"]
        if last_of_kind and v["kind"] == "base":
            paper_row("base", "Fine-Tune/LoRA (RTX 8000)")
        elif last_of_kind and v["kind"] in ADAPTER_KINDS:
            paper_row(v["kind"], LABELS[v["kind"]])
    hw = record["hardware"]
    md = [
        f"# Inference latency, {s['model']} architecture (paper Table 1): preset `{s['preset']}`",
        "",
        *md_table(header, rows),
        "",
    ]
    md.append(
        f"Forward-pass latency in ms, mean±std over {s['trials']} timed rounds after "
        f"{s['warmup']} warm-up round(s); in brackets the overhead against the base, "
        "100·(median of the per-round ratio method/base − 1). Base and methods run "
        f"round-robin in one process, in a random order each round. Columns are batch × "
        f"sequence length. {s['model']} architecture with random weights, {s['dtype']}, eval "
        f"mode, no grad, no KV cache, on {hardware_line(hw)}."
    )
    md.append("")
    md.append(
        "Paper rows (italic): Table 1, NVIDIA Quadro RTX 8000, 100 trials, precision and "
        "warm-up not stated; its LoRA row is the merged model, i.e. the base. The paper's "
        "adapters are 0.5M parameters at 32×512 and 11M at 16×256 and 1×128; ours are sized "
        "from the same budgets with the paper's count |Θ| = L̂_Adpt·(2·d·r + r + d) + "
        "2·L̂_LN·d (AdapterL: L adapters + L LayerNorms; AdapterH: 2L adapters). "
        "LoRA r=4 on W_q, W_v with non-zero B; merged with `lora.merge_lora`."
    )
    if s["preset"] == "cpu":
        md += [
            "",
            "**CPU default**: a reduced grid and few trials so that it finishes in about "
            "10 minutes on 2 cores; the paper's grid is `preset=table1` (GPU). CPU timings "
            "on a shared machine are noisy; the per-round pairing cancels slow drift.",
        ]
    md += ["", "## Targets", ""]
    md += md_table(
        ["Target", "Measured", "Met"],
        [
            [t["target"], t["figure"], {True: "yes", False: "**no**", None: "n/a"}[t["met"]]]
            for t in record["targets"]
        ],
    )
    if record.get("notes"):
        md += ["", "## Notes", "", record["notes"].strip()]
    if record.get("figure"):
        md += ["", f"![Adapter slow-down, Figure 5 style]({Path(record['figure']).name})"]
    csv_rows: list[dict[str, Any]] = []
    for p in points:
        where = {"batch": p["batch"], "seq": p["seq"], "tokens": p["tokens"]}
        for v in variants:
            res = p["results"][v["key"]]
            st = res["stats"]
            csv_rows.append(
                {
                    "source": "ours",
                    **where,
                    "method": v["kind"],
                    "label": v["label"],
                    "r": v["method"].get("r", ""),
                    "params": v["params"],
                    "budget": v["budget"] or "",
                    "mean_ms": round(st["mean"], 3),
                    "std_ms": round(st["std"], 3),
                    "median_ms": round(st["median"], 3),
                    "min_ms": round(st["min"], 3),
                    "trials": st["n"],
                    "ratio_vs_base": round(res["ratio"], 4),
                    "ratio_se": round(res["ratio_se"], 4),
                    "overhead_pct": round(res["overhead_pct"], 2),
                    "device": s["device"],
                    "dtype": s["dtype"],
                    "hardware": hw["name"],
                }
            )
        entry = PAPER_TABLE1.get((p["batch"], p["seq"]))
        for kind in ("base", *ADAPTER_KINDS) if entry else ():
            mean, pm, pct = entry[kind]
            budget = "" if kind == "base" else entry["budget"]
            csv_rows.append(
                {
                    "source": "paper",
                    **where,
                    "method": kind,
                    "label": f"Paper {LABELS[kind]}",
                    "params": budget,
                    "budget": budget,
                    "mean_ms": mean,
                    "std_ms": pm,
                    "trials": 100,
                    "ratio_vs_base": round(1 + pct / 100, 4),
                    "overhead_pct": pct,
                    "device": "cuda",
                    "hardware": "Quadro RTX 8000",
                }
            )
    return "\n".join(md) + "\n", csv_rows


def plot_figure5(record: dict[str, Any], path: Path) -> Path | None:
    """Figure 5-style heat maps of the adapters' slow-down (%); None without matplotlib.

    Rows: AdapterH (top) and AdapterL, as in the paper; columns: adapter sizes; in each
    panel sequence length (rows) × batch size (columns), blank where not measured.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no plot written")
        return None
    points = record["points"]
    kinds = [
        k for k in ("adapter_h", "adapter_l") if any(v["kind"] == k for v in record["variants"])
    ]
    if not kinds:
        return None
    per_kind = {k: [v for v in record["variants"] if v["kind"] == k] for k in kinds}
    ncols = max(len(vs) for vs in per_kind.values())
    batches = sorted({p["batch"] for p in points})
    seqs = sorted({p["seq"] for p in points})
    values = [
        p["results"][v["key"]]["overhead_pct"]
        for p in points
        for vs in per_kind.values()
        for v in vs
    ]
    vmax = max(max(values), 1.0)
    panel = (max(2.2, 0.8 * len(batches)), max(1.8, 0.7 * len(seqs)))
    size = (1.5 + panel[0] * ncols, 0.6 + panel[1] * len(kinds))
    fig, axes = plt.subplots(len(kinds), ncols, squeeze=False, figsize=size, layout="constrained")
    for i, kind in enumerate(kinds):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(per_kind[kind]):
                ax.axis("off")
                continue
            v = per_kind[kind][j]
            grid = [[math.nan] * len(batches) for _ in seqs]
            for p in points:
                pct = p["results"][v["key"]]["overhead_pct"]
                grid[seqs.index(p["seq"])][batches.index(p["batch"])] = pct
            im = ax.imshow(
                grid,
                cmap="Reds",
                vmin=min(0.0, min(values)),
                vmax=vmax,
                origin="lower",
                aspect="auto",
            )
            for y, row in enumerate(grid):
                for x, val in enumerate(row):
                    if not math.isnan(val):
                        color = "white" if val > 0.6 * vmax else "black"
                        ax.text(
                            x, y, f"{val:.1f}", ha="center", va="center", fontsize=8, color=color
                        )
            ax.set_xticks(range(len(batches)), [str(b) for b in batches])
            ax.set_yticks(range(len(seqs)), [str(q) for q in seqs])
            if i == len(kinds) - 1:
                ax.set_xlabel("batch size")
            if j == 0:
                ax.set_ylabel("sequence length")
            title = f"{LABELS[kind]} r={v['method']['r']}\n|Θ| {fmt_params(v['params'])}"
            ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes, label="slow-down vs no adapter (%)", shrink=0.9)
    fig.suptitle(
        f"Adapter inference slow-down, {record['settings']['model']}, {record['hardware']['name']}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_outputs(record: dict[str, Any], results_dir: Path) -> list[Path]:
    """Write the table (.md, .csv), the plot and the JSON record; returns their paths."""
    name = record["settings"]["name"]
    tables = results_dir / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    figure = plot_figure5(record, tables / f"{name}.png")
    record["figure"] = str(figure) if figure else None
    write_table(tables, name, *render(record), CSV_COLUMNS)
    run_path = results_dir / "runs" / "latency" / f"{record['run_id']}.json"
    write_atomic(run_path, record)
    return [tables / f"{name}.md", tables / f"{name}.csv", *([figure] if figure else []), run_path]


# -- entry point -----------------------------------------------------------------------


def run(cfg: DictConfig, timer=None) -> tuple[dict[str, Any], list[Path]]:
    """Validate, build the variants, time the grid and write the outputs.

    Args:
        cfg: the composed ``conf/latency.yaml``.
        timer: replaces :func:`experiments.perf.timing.time_call` (tests).

    Returns:
        The record and the written paths.

    Raises:
        ConfigError: a bad setting, before any model is built.
    """
    s = resolve(cfg)
    device, dtype = resolve_device(s.device), resolve_dtype(s.dtype)
    select_device(device)
    if s.threads:
        torch.set_num_threads(s.threads)
    config = arch_config(s.model, s.arch, s.arch_overrides)
    variants = plan_variants(s, config.n_layer, config.n_embd)
    log.info("building %s (%s, %s) and %d variants", s.model, s.device, s.dtype, len(variants) - 1)
    base = build_model(config, device, dtype, s.seed).eval()
    models, params = {}, {}
    for v in variants:
        models[v.key], params[v.key] = build_variant(base, v, s.seed)
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
    settings = asdict(s)
    rid = f"{s.name}-{s.preset}-{device.type}-{s.dtype}-{settings_hash(settings)}"
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": rid,
        "experiment": "latency",
        "status": "ok",
        "task": None,
        "model": s.model,
        "settings": settings,
        "arch": {
            "n_layer": config.n_layer,
            "n_embd": config.n_embd,
            "n_head": config.n_head,
            "vocab_size": config.vocab_size,
            "attn_implementation": getattr(config, "_attn_implementation", None),
        },
        "variants": [{**asdict(v), "label": v.label, "params": params[v.key]} for v in variants],
        "points": points,
        "targets": check_targets(points, variants),
        "hardware": hardware(device),
        "provenance": provenance(),
        "notes": cfg.notes,
    }
    return record, write_outputs(record, Path(s.results_dir))


@hydra.main(version_base="1.3", config_path="../../conf", config_name="latency")
def main(cfg: DictConfig) -> None:
    try:
        record, paths = run(cfg)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    for t in record["targets"]:
        log.info("target %s: %s -> %s", t["target"], t["figure"], t["met"])
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
