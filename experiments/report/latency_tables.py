"""The inference-latency table (paper Table 1) and Figure 5-style plot from a latency record.

:mod:`experiments.perf.latency` measures and writes the record; this renders it, both
right after the run and whenever ``python -m experiments.tables`` rebuilds the tables.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from experiments.core.labels import ADAPTER_KINDS, fmt_params, fmt_targets
from experiments.core.labels import LATENCY_LABELS as LABELS
from experiments.report.common import STALE_MARK, any_stale, footer, hardware_line
from experiments.report.render import md_table, write_md_csv

#: The architecture paper Table 1 timed.
PAPER_MODEL = "gpt2-medium"
#: Paper Table 1 (§3; NVIDIA Quadro RTX 8000, 100 trials, GPT-2 medium; paper.md §3):
#: (batch, seq) -> adapter budget |Θ|, then (mean ms, ±, overhead %) per row; "base" is
#: "Fine-Tune/LoRA".
PAPER_TABLE1: dict[tuple[int, int], dict[str, Any]] = {
    (32, 512): {"budget": 500_000, "base": (1449.4, 0.8, 0.0), "adapter_l": (1482.0, 1.0, 2.2),
                "adapter_h": (1492.2, 1.0, 3.0)},
    (16, 256): {"budget": 11_000_000, "base": (338.0, 0.6, 0.0), "adapter_l": (354.8, 0.5, 5.0),
                "adapter_h": (366.3, 0.5, 8.4)},
    (1, 128): {"budget": 11_000_000, "base": (19.8, 2.7, 0.0), "adapter_l": (23.9, 2.1, 20.7),
               "adapter_h": (25.8, 2.2, 30.3)},
}  # fmt: skip

#: Columns of the latency CSV: one row per (point, variant), ours and the paper's.
CSV_COLUMNS = ("source", "batch", "seq", "tokens", "method", "label", "r", "params", "budget",
               "mean_ms", "std_ms", "median_ms", "min_ms", "trials", "ratio_vs_base",
               "ratio_se", "overhead_pct", "device", "dtype", "hardware")  # fmt: skip


def _cell(res: dict[str, Any], base: bool) -> str:
    st = res["stats"]
    text = f"{st['mean']:.1f}±{st['std']:.1f}"
    return text if base else f"{text} ({res['overhead_pct']:+.1f}%)"


def _paper_cell(entry: dict[str, Any] | None, kind: str) -> str:
    """A paper Table 1 cell in italics: ``*1482.0±1.0 (+2.2%), \\|Θ\\| 0.50M*``."""
    if entry is None:
        return ""
    mean, pm, pct = entry[kind]
    if kind == "base":
        return f"*{mean:.1f}±{pm:.1f}*"
    return f"*{mean:.1f}±{pm:.1f} ({pct:+.1f}%), \\|Θ\\| {fmt_params(entry['budget'])}*"


def _csv_rows(record: dict[str, Any], paper: list[dict | None]) -> list[dict[str, Any]]:
    """Per grid point, one row per timed variant, then the paper's rows at that point."""
    s, out = record["settings"], []
    for p, entry in zip(record["points"], paper, strict=True):
        where = {"batch": p["batch"], "seq": p["seq"], "tokens": p["tokens"]}
        for v in record["variants"]:
            res = p["results"][v["key"]]
            st = res["stats"]
            out.append({"source": "ours", **where, "method": v["kind"], "label": v["label"],
                        "r": v["method"].get("r", ""), "params": v["params"],
                        "budget": v["budget"] or "", "mean_ms": round(st["mean"], 3),
                        "std_ms": round(st["std"], 3), "median_ms": round(st["median"], 3),
                        "min_ms": round(st["min"], 3), "trials": st["n"],
                        "ratio_vs_base": round(res["ratio"], 4),
                        "ratio_se": round(res["ratio_se"], 4),
                        "overhead_pct": round(res["overhead_pct"], 2), "device": s["device"],
                        "dtype": s["dtype"], "hardware": record["hardware"]["name"]})  # fmt: skip
        for kind in ("base", *ADAPTER_KINDS) if entry else ():
            mean, pm, pct = entry[kind]
            budget = "" if kind == "base" else entry["budget"]
            out.append({"source": "paper", **where, "method": kind,
                        "label": f"Paper {LABELS[kind]}", "params": budget, "budget": budget,
                        "mean_ms": mean, "std_ms": pm, "trials": 100,
                        "ratio_vs_base": round(1 + pct / 100, 4), "overhead_pct": pct,
                        "device": "cuda", "hardware": "Quadro RTX 8000"})  # fmt: skip
    return out


def render(record: dict[str, Any], figure: Path | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table and CSV rows (dicts keyed by :data:`CSV_COLUMNS`) of a latency record."""
    s, points, variants = record["settings"], record["points"], record["variants"]
    # the paper timed GPT-2 medium: its rows stand beside that architecture only
    table1 = s["model"] == PAPER_MODEL
    paper = [PAPER_TABLE1.get((p["batch"], p["seq"])) if table1 else None for p in points]
    rows: list[list[str]] = []
    kinds = [v["kind"] for v in variants]
    for i, v in enumerate(variants):
        budget = f" [budget {fmt_params(v['budget'])}]" if v["budget"] else ""
        timed = [_cell(p["results"][v["key"]], v["kind"] == "base") for p in points]
        rows.append([v["label"] + budget, fmt_params(v["params"]) if v["params"] else "0", *timed])
        last_of_kind = i + 1 == len(variants) or kinds[i + 1] != v["kind"]
        if last_of_kind and any(paper) and v["kind"] in ("base", *ADAPTER_KINDS):
            label = "Fine-Tune/LoRA (RTX 8000)" if v["kind"] == "base" else LABELS[v["kind"]]
            rows.append([f"*Paper: {label}*", "", *(_paper_cell(e, v["kind"]) for e in paper)])
    hw, stale = record["hardware"], any_stale([record])
    header = ["Method", "\\|Θ\\| (ours, counted)", *(f"{p['batch']}×{p['seq']}" for p in points)]
    md = [f"# Inference latency, {s['model']} architecture" + (" (paper Table 1)" if table1 else "")
          + f": preset `{s['preset']}`" + (STALE_MARK if stale else ""), "",
          *md_table(header, rows), "",
          f"Forward-pass latency in ms, mean±std over {s['trials']} timed rounds after "
          f"{s['warmup']} warm-up round(s); in brackets the overhead against the base, "
          "100·(median of the per-round ratio method/base − 1). Base and methods run "
          f"round-robin in one process, in a random order each round. Columns are batch × "
          f"sequence length. {s['model']} architecture with random weights, {s['dtype']}, eval "
          f"mode, no grad, no KV cache, on {hardware_line(hw)}."]  # fmt: skip
    if any(v["kind"] == "merged" for v in variants):
        md += ["", "Merged rows: the method applied at its initialisation (PiSSA's SVD, "
               "VeRA's shared projections, DoRA's magnitudes), then folded into W0 and "
               "unloaded with `lora.merge_and_unload`, the model it ships for inference; "
               "\\|Θ\\| is its trainable count before the merge."]  # fmt: skip
    if table1:
        md += ["", "Paper rows (italic): Table 1, NVIDIA Quadro RTX 8000, 100 trials, "
               "precision and warm-up not stated; its LoRA row is the merged model, i.e. the "
               "base. The paper's adapters are 0.5M parameters at 32×512 and 11M at 16×256 "
               "and 1×128."]  # fmt: skip
    else:
        md += ["", f"No paper rows: Table 1 timed {PAPER_MODEL}, this is {s['model']}."]
    ours = []
    if any(v["kind"] in ADAPTER_KINDS for v in variants):
        sized = "r from each budget by" if s["adapter_budgets"] else "r as set; |Θ| by"
        ours.append(f"Adapters: {sized} the paper's count |Θ| = L̂_Adpt·(2·d·r + r + d) + "
                    "2·L̂_LN·d (AdapterL: L adapters + L LayerNorms; AdapterH: 2L "
                    "adapters).")  # fmt: skip
    lora = [v for v in variants if v["kind"].startswith("lora")]
    if lora:
        m = lora[0]["method"]
        ours.append(f"LoRA r={m['r']} on {fmt_targets(m['targets'])} with non-zero B; merged "
                    "with `lora.merge_lora`.")  # fmt: skip
    if ours:
        md += ["", " ".join(ours)]
    if s["preset"] == "cpu":
        md += ["", "**CPU default**: a reduced grid and few trials so that it finishes in about "
               "10 minutes on 2 cores; the paper's grid is `preset=table1` (GPU). CPU timings "
               "on a shared machine are noisy; the per-round pairing cancels slow "
               "drift."]  # fmt: skip
    met = {True: "yes", False: "**no**", None: "n/a"}
    md += ["", "## Targets", "", *md_table(["Target", "Measured", "Met"], [
        [t["target"], t["figure"], met[t["met"]]] for t in record["targets"]])]  # fmt: skip
    if record.get("notes"):
        md += ["", "## Notes", "", record["notes"].strip()]
    if figure is not None:
        md += ["", f"![Adapter slow-down, Figure 5 style]({figure.name})"]
    md += footer([record], stale)
    return "\n".join(md) + "\n", _csv_rows(record, paper)


def plot_figure5(record: dict[str, Any], path: Path) -> Path | None:
    """Figure 5-style heat maps of the adapters' slow-down (%); None without adapters.

    Rows: AdapterH (top) and AdapterL, as in the paper; columns: adapter sizes; in each
    panel sequence length (rows) × batch size (columns), blank where not measured.
    """
    import matplotlib  # here: the latency job imports this module before it times anything

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, variants = record["points"], record["variants"]
    per_kind = {k: vs for k in ("adapter_h", "adapter_l")
                if (vs := [v for v in variants if v["kind"] == k])}  # fmt: skip
    if not per_kind:
        return None
    ncols = max(len(vs) for vs in per_kind.values())
    batches, seqs = sorted({p["batch"] for p in points}), sorted({p["seq"] for p in points})
    values = [p["results"][v["key"]]["overhead_pct"]
              for p in points for vs in per_kind.values() for v in vs]  # fmt: skip
    vmax = max(max(values), 1.0)
    panel = (max(2.2, 0.8 * len(batches)), max(1.8, 0.7 * len(seqs)))
    size = (1.5 + panel[0] * ncols, 0.6 + panel[1] * len(per_kind))
    fig, axes = plt.subplots(len(per_kind), ncols, squeeze=False, figsize=size,
                             layout="constrained")  # fmt: skip
    for i, (kind, vs) in enumerate(per_kind.items()):
        for j, ax in enumerate(axes[i]):
            if j >= len(vs):
                ax.axis("off")
                continue
            grid = [[math.nan] * len(batches) for _ in seqs]
            for p in points:
                grid[seqs.index(p["seq"])][batches.index(p["batch"])] = p["results"][
                    vs[j]["key"]]["overhead_pct"]  # fmt: skip
            im = ax.imshow(grid, cmap="Reds", vmin=min(0.0, min(values)), vmax=vmax,
                           origin="lower", aspect="auto")  # fmt: skip
            for y, row in enumerate(grid):
                for x, val in enumerate(row):
                    if not math.isnan(val):
                        ax.text(x, y, f"{val:.1f}", ha="center", va="center", fontsize=8,
                                color="white" if val > 0.6 * vmax else "black")  # fmt: skip
            ax.set_xticks(range(len(batches)), [str(b) for b in batches])
            ax.set_yticks(range(len(seqs)), [str(q) for q in seqs])
            if i == len(per_kind) - 1:
                ax.set_xlabel("batch size")
            if j == 0:
                ax.set_ylabel("sequence length")
            ax.set_title(f"{LABELS[kind]} r={vs[j]['method']['r']}\n|Θ| "
                         f"{fmt_params(vs[j]['params'])}", fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=axes, label="slow-down vs no adapter (%)", shrink=0.9)
    fig.suptitle(f"Adapter inference slow-down, {record['settings']['model']}, "
                 f"{record['hardware']['name']}", fontsize=10)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_latency_table(record: dict[str, Any], out: Path) -> list[Path]:
    """Write ``<out>/<name>.md``, ``.csv`` and ``.png`` of a latency record; returns the paths."""
    name = record["settings"]["name"]
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_figure5(record, out / f"{name}.png")
    md, rows = render(record, figure)
    return [*write_md_csv(out, name, md, rows, CSV_COLUMNS), *([figure] if figure else [])]
