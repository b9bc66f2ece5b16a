"""Paper §7 rendered: Table 7 and Figures 3-4 (Hu et al. 2021) from the analysis records.

Input: the newest ``kind: analysis`` record of ``<results>/runs/<experiment>_subspace/``,
written by ``python -m experiments.analysis_job`` from the saved adapters of
``experiment=analysis_minilm``; this module loads no model and computes nothing the
record does not hold (model, ranks, layers and seeds come from it). Outputs:

* ``table7.{md,csv}``: ‖UᵀW_qV‖_F with U, V the top-r singular vectors of ΔW_q, of W_q and
  of a random matrix, plus ‖W_q‖_F, ‖ΔW_q‖_F and the amplification factor (§7.3), with
  the paper's GPT-3 values beside ours.
* ``figure3_subspace_r8_r64.png``: φ(A_{r=8}, A_{r=64}, i, j) (Eq. 4, §7.2), same seed, W_q
  and W_v, every layer, with the paper's zoom on j ≤ 8.
* ``figure4_subspace_seeds_r64.png``: φ between A_{r=64} of two seeds, with two random
  Gaussian matrices as the baseline.
* ``subspace_similarity.md``: the figures' key values as numbers, and what training
  changed in A (when the record replayed the inits).

A record made by code that changed since, or from source runs retrained since, is
marked stale (‡) in every output.
"""

from __future__ import annotations

import argparse
import base64
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.core.records import is_stale  # noqa: E402
from experiments.core.records import load_records as load_any  # noqa: E402
from experiments.glue.data import TASKS as GLUE_TASKS  # noqa: E402
from experiments.report.common import STALE_MARK, latest, provenance_line  # noqa: E402
from experiments.report.load import kind, load_records  # noqa: E402
from experiments.report.render import md_table, write_md_csv  # noqa: E402

log = logging.getLogger("experiments.analysis")

EXPERIMENT = "analysis_minilm"
SUFFIX = "subspace"  # the job's records: runs/<experiment>_subspace/
TARGET_LABELS = {"q": "W_q", "v": "W_v", "k": "W_k", "o": "W_o"}
#: Paper Table 7 (GPT-3 175B, W_q of layer 48 of 96, d_model 12288; §7.3, §H.4).
PAPER_TABLE7 = {
    "model": "GPT-3",
    "layer": 48,
    "n_layers": 96,
    "d_model": 12288,
    "w_norm": 61.95,
    4: {"delta": 0.32, "w": 21.67, "random": 0.02, "delta_norm": 6.91},
    64: {"delta": 1.90, "w": 37.71, "random": 0.33, "delta_norm": 3.57},
}
CSV_COLUMNS = ("layer", "r", "seed", "run_id", "proj_delta", "proj_w", "proj_random",
               "w_norm", "delta_norm", "amplification", "dev_score")  # fmt: skip


def grid(packed: dict[str, Any]) -> np.ndarray:
    """A packed φ grid of the record as float64 (k1, k2): ``uint16`` is base64 of
    little-endian uint16 round(φ·65535) (experiments/analysis_job.py writes it)."""
    raw = np.frombuffer(base64.b64decode(packed["uint16"]), dtype="<u2")
    return raw.reshape(packed["shape"]).astype(np.float64) / 65535


def f(x: float | None) -> str:
    """Two decimals; small values in scientific notation; None (undefined) as "–"."""
    if x is None:
        return "–"
    return f"{x:.2f}" if abs(x) >= 0.005 or x == 0 else f"{x:.1e}"


# ---------------------------------------------------------------- choosing a record


def latest_record(results_dir: Path, experiment: str = EXPERIMENT) -> dict[str, Any]:
    """The newest analysis record of ``experiment``.

    Raises:
        ValueError: none under ``<results_dir>/runs/<experiment>_subspace``.
    """
    recs = [r for r in load_records(results_dir, f"{experiment}_{SUFFIX}")
            if kind(r) == "analysis"]  # fmt: skip
    if not recs:
        raise ValueError(
            f"no analysis record in {results_dir}/runs/{experiment}_{SUFFIX}; run "
            f"`python -m experiments.analysis_job --results-dir {results_dir}` (make analysis)"
        )
    return latest(recs, lambda r: "one")["one"]


def outdated_sources(record: dict[str, Any], results_dir: Path) -> list[str]:
    """Run ids of the record's sources that were retrained since (another finish time)
    or whose record is gone."""
    now: dict[str, dict] = {}
    for exp in sorted({s["experiment"] for s in record["source"]}):  # every ok record
        now.update({r["run_id"]: r for r in load_any(results_dir, exp)})
    return [s["run_id"] for s in record["source"]
            if s["run_id"] not in now
            or now[s["run_id"]]["provenance"].get("finished_at") != s["finished_at"]]  # fmt: skip


def stale_note(record: dict[str, Any], results_dir: Path | None) -> str | None:
    """Why the record is out of date (its code changed, or its sources were retrained),
    or None when it is current."""
    why = []
    if is_stale(record):
        why.append("made by older code than the current tree")
    gone = outdated_sources(record, results_dir) if results_dir is not None else []
    if gone:
        why.append("from runs retrained or removed since (" + ", ".join(gone) + ")")
    if not why:
        return None
    return (f"{STALE_MARK} this analysis was " + " and ".join(why) + "; rerun "
            "`python -m experiments.analysis_job --force`.")  # fmt: skip


def _context(record: dict[str, Any]) -> dict[str, Any]:
    """Names for the text: model, task, layers, d_in, score labels."""
    task = GLUE_TASKS.get(record["task"])
    return {"model": record["model"], "task": task.display if task else record["task"],
            "n_layers": record["shape"]["n_layers"], "d_in": record["shape"]["d_in"],
            "runs": {s["run_id"]: s for s in record["source"]}}  # fmt: skip


# ---------------------------------------------------------------- Table 7


def table7_csv_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 7's every-layer rows (:data:`CSV_COLUMNS`), with each run's dev score."""
    runs = _context(record)["runs"]
    return [{**row, "dev_score": runs[row["run_id"]]["score"]}
            for row in record["table7"]["rows"]]  # fmt: skip


def table7_markdown(record: dict[str, Any], stale: str | None = None) -> str:
    """Table 7 at the record's layer (ours beside the paper's), then every layer."""
    t7, ctx, p = record["table7"], _context(record), PAPER_TABLE7
    layer, w = t7["layer"], TARGET_LABELS.get(t7["target"], t7["target"])
    rows = t7["rows"]
    at = {row["r"]: row for row in rows if row["layer"] == layer}
    ranks = sorted(at)

    def paper(r: int, key: str) -> str:
        return f(p[r][key]) if r in p else "–"

    def ratio(x: float | None, y: float | None) -> float | None:
        return x / y if x is not None and y else None

    head = [""] + [f"r={r}: {c}" for r in ranks for c in (f"Δ{w}", w, "Random")]
    ours = [f"ours, {ctx['model']} layer {layer}" + (STALE_MARK if stale else "")]
    ours += [f(at[r][k]) for r in ranks for k in ("proj_delta", "proj_w", "proj_random")]
    theirs = [f"paper, {p['model']} layer {p['layer']} of {p['n_layers']}"]
    theirs += [paper(r, k) for r in ranks for k in ("delta", "w", "random")]
    main = md_table(head, [ours, theirs])

    head2 = ["", *(f"ours r={r}" for r in ranks), *(f"paper r={r}" for r in ranks)]
    norms = [
        [f"‖{w}‖_F", *(f(at[r]["w_norm"]) for r in ranks), *(f(p["w_norm"]) for _ in ranks)],
        [f"‖Δ{w}‖_F", *(f(at[r]["delta_norm"]) for r in ranks),
         *(paper(r, "delta_norm") for r in ranks)],
        [f"amplification ‖Δ{w}‖_F / ‖Uᵀ{w}V‖_F", *(f(at[r]["amplification"]) for r in ranks),
         *(f(p[r]["delta_norm"] / p[r]["delta"]) if r in p else "–" for r in ranks)],
        [f"‖Uᵀ{w}V‖_F / ‖{w}‖_F, U,V from Δ{w}",
         *(f(ratio(at[r]["proj_delta"], at[r]["w_norm"])) for r in ranks),
         *(f(p[r]["delta"] / p["w_norm"]) if r in p else "–" for r in ranks)],
        ["same, U,V random", *(f(ratio(at[r]["proj_random"], at[r]["w_norm"])) for r in ranks),
         *(f(p[r]["random"] / p["w_norm"]) if r in p else "–" for r in ranks)],
    ]  # fmt: skip
    head3 = ["layer", "r", f"Δ{w}", w, "Random", f"‖{w}‖_F", f"‖Δ{w}‖_F", "amplification"]
    every = md_table(head3, [
        [str(row["layer"]), str(row["r"]), f(row["proj_delta"]), f(row["proj_w"]),
         f(row["proj_random"]), f(row["w_norm"]), f(row["delta_norm"]), f(row["amplification"])]
        for row in sorted(rows, key=lambda x: (x["r"], x["layer"]))
    ])  # fmt: skip
    runs = sorted({(row["r"], row["seed"], row["run_id"]) for row in rows})
    score = ctx["runs"]
    draws = record["settings"]["random_draws"]
    lines = [
        f"# Table 7: ‖Uᵀ{w}V‖_F, how Δ{w} relates to {w} (paper §7.3)",
        "",
        f"U, V: the top-r left and right singular vectors of Δ{w}, of {w} itself, or of a "
        f"random N(0, 1) matrix (mean of {draws} draws); Δ{w} = (α/r)·B·A of the LoRA run "
        f"at that rank. Ours: layer {layer} (0-based, of {ctx['model']}'s {ctx['n_layers']} "
        f"blocks; the paper uses layer {p['layer']} of {p['model']}'s {p['n_layers']}). The "
        f"paper writes Uᵀ{w}Vᵀ; V here holds the right singular vectors as columns.",
        "",
        *main,
        "",
        *md_table(head2, norms),
        "",
        "Runs: " + "; ".join(
            f"r={r} seed {s} `{rid}` ({ctx['task']} dev {score[rid]['metric'] or 'score'} "
            f"{100 * score[rid]['score']:.1f})" for r, s, rid in runs),
        "",
        table7_notes(record),
        "",
        "## Every layer",
        "",
        *every,
        "",
        *([stale, ""] if stale else []),
        provenance_line([record]),
        "",
        "Rebuild: `make analysis RESULTS=<results>` (trains missing runs, then `python -m "
        "experiments.analysis_job`, then `python -m experiments.analysis`).",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def table7_notes(record: dict[str, Any]) -> str:
    """What the numbers say, computed from the record and the paper's values."""
    t7, ctx, p = record["table7"], _context(record), PAPER_TABLE7
    w = TARGET_LABELS.get(t7["target"], t7["target"])
    at = {row["r"]: row for row in t7["rows"] if row["layer"] == t7["layer"]}
    parts = []
    for r in sorted(at):
        x = at[r]
        ratio = x["proj_delta"] / x["proj_random"] if x["proj_random"] else math.nan
        rel = x["proj_delta"] / x["proj_w"] if x["proj_w"] else math.nan
        amp = "undefined" if x["amplification"] is None else f"{x['amplification']:.1f}×"
        parts.append(
            f"r={r}: {w}'s component in Δ{w}'s top-{r} subspace is {ratio:.1f}× that in a "
            f"random one and {100 * rel:.0f}% of that in {w}'s own top-{r} subspace; "
            f"Δ{w} amplifies it {amp}"
        )
    pr = [r for r in sorted(at) if r in p]
    theirs = ", ".join(f"{p[r]['delta'] / p[r]['random']:.1f}×" for r in pr)
    fracs = ", ".join(f"{p[r]['delta']:.2f}/{p[r]['random']:.2f}" for r in pr)
    amps = ", ".join(f"≈{p[r]['delta_norm'] / p[r]['delta']:.1f} (r={r})" for r in pr)
    low = pr[0] if pr else None
    far = f" (Δ{w} {p[low]['delta']:.2f} vs {w} {p[low]['w']:.2f} at r={low})" if low else ""
    d_model = record["model_config"].get("arch", {}).get("hidden_size") or ctx["d_in"]
    return (
        "Reading: " + "; ".join(parts) + f". The paper finds, at layer {p['layer']}, "
        f"{theirs} a random subspace ({fracs}), Δ{w}'s directions far from {w}'s top "
        f"ones{far}, and amplification {amps}. {p['model']} has d_model {p['d_model']} to "
        f"{ctx['model']}'s {d_model}, so absolute norms differ; the ratios and the "
        "amplification factor are the comparable quantities. Random for an r-dim subspace "
        "is about r·‖W‖_F/√(d_out·d_in) in expectation."
    )


# ---------------------------------------------------------------- Figures 3 and 4


def _heat(ax, g: np.ndarray, title: str, cmap: str = "viridis"):
    k1, k2 = g.shape
    im = ax.imshow(g, vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto",
                   extent=(0.5, k2 + 0.5, k1 + 0.5, 0.5), interpolation="nearest")  # fmt: skip
    ax.set_title(title, fontsize=8)
    ax.set_xticks(_ticks(k2))
    ax.set_yticks(_ticks(k1))
    ax.tick_params(labelsize=6)
    return im


def _row_label(layer: int, mark: int | None, axis: str) -> str:
    return f"layer {layer}{' (Table 7)' if layer == mark else ''}\n{axis}"


def _ticks(k: int) -> list[int]:
    if k <= 8:
        return sorted({1, k // 2, k}) if k > 4 else list(range(1, k + 1))
    step = 8 if k <= 64 else k // 8
    return [1, *range(step, k + 1, step)]


def _grids(section: dict[str, Any]) -> dict[tuple[int, str], np.ndarray]:
    return {(g["layer"], g["target"]): grid(g["grid"]) for g in section["grids"]}


def figure3(record: dict[str, Any], path: Path, stale: bool = False) -> Path:
    """φ(A_{r small}, A_{r large}, i, j) per layer and target, with the zoom j ≤ ``zoom``.

    Layout as paper Figure 3 (one row per layer here, the paper shows one layer): i on
    the vertical axis (1 at the top), j on the horizontal.
    """
    sec, ctx = record["figure3"], _context(record)
    grids = _grids(sec)
    targets = [t for t in record["settings"]["targets"] if any(k[1] == t for k in grids)]
    layers = sorted({lay for lay, _ in grids})
    (r1, r2), mark = sec["ranks"], record["table7"]["layer"]
    n_cols = 2 * len(targets)
    fig, axes = plt.subplots(
        len(layers), n_cols, figsize=(2.6 * n_cols + 1.5, 1.45 * len(layers) + 1.0),
        gridspec_kw={"width_ratios": [3] * len(targets) + [1] * len(targets)},
        squeeze=False,
        layout="constrained",
    )  # fmt: skip
    im = None
    for row, lay in enumerate(layers):
        for c, t in enumerate(targets):
            g = grids[(lay, t)]
            z = min(sec["zoom"], g.shape[1])
            top = row == 0  # column titles once; rows are labelled on the left
            label = TARGET_LABELS.get(t, t)
            im = _heat(axes[row, c], g, f"Δ{label}, j ≤ {g.shape[1]}" if top else "")
            _heat(axes[row, len(targets) + c], g[:, :z], f"Δ{label}, j ≤ {z}" if top else "")
        axes[row, 0].set_ylabel(_row_label(lay, mark, f"i (r={r1})"), fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"j (r={r2})", fontsize=7)
    fig.suptitle(
        f"Figure 3: φ(A_r={r1}, A_r={r2}, i, j), Eq. 4, same seed ({sec['seeds'][0]}); "
        f"{ctx['model']}, {ctx['task']}" + (f" {STALE_MARK} stale" if stale else ""),
        fontsize=10,
    )
    fig.colorbar(im, ax=axes, shrink=0.6, label="φ")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def figure4(record: dict[str, Any], path: Path, stale: bool = False) -> Path:
    """φ between the A matrices of two seeds at the same rank, per layer and target; the
    last column is two independent standard Gaussian matrices (the paper's right panel)."""
    sec, ctx = record["figure4"], _context(record)
    grids, rand = _grids(sec), grid(sec["random"])
    targets = [t for t in record["settings"]["targets"] if any(k[1] == t for k in grids)]
    layers = sorted({lay for lay, _ in grids})
    (s1, s2), (r1, r2), mark = sec["seeds"], sec["ranks"], record["table7"]["layer"]
    n_cols = len(targets) + 1
    fig, axes = plt.subplots(len(layers), n_cols, figsize=(2.4 * n_cols + 1.5,
                             2.1 * len(layers) + 0.8), squeeze=False, layout="constrained")  # fmt: skip
    im = None
    for row, lay in enumerate(layers):
        top = row == 0
        for c, t in enumerate(targets):
            title = f"Δ{TARGET_LABELS.get(t, t)}" if top else ""
            im = _heat(axes[row, c], grids[(lay, t)], title)
        _heat(axes[row, -1], rand, "two random Gaussian matrices" if top else "")
        axes[row, 0].set_ylabel(_row_label(lay, mark, f"i (seed {s1})"), fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"j (seed {s2})", fontsize=7)
    fig.suptitle(
        f"Figure 4: φ(A_r={r1} seed {s1}, A_r={r2} seed {s2}, i, j), Eq. 4; "
        f"{ctx['model']}, {ctx['task']}" + (f" {STALE_MARK} stale" if stale else ""),
        fontsize=10,
    )
    fig.colorbar(im, ax=axes, shrink=0.6, label="φ")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def _label(t: str) -> str:
    return TARGET_LABELS.get(t, t)


def similarity_summary(record: dict[str, Any], stale: str | None = None) -> str:
    """Key entries of the heat maps as Markdown, beside chance (max(i, j)/d_in), then
    what training changed in A when the record replayed the inits."""
    d_in, p = record["shape"]["d_in"], PAPER_TABLE7
    lines = ["# Subspace similarity (paper Eq. 4, Figures 3 and 4)", ""]
    sec3 = record["figure3"]
    r1, r2 = sec3["ranks"]
    z = sec3["zoom"]
    cells = [(1, 1), (1, r2), (min(z, r1), min(z, r2)), (r1, r2)]
    head = ["layer", "matrix", *(f"φ({i},{j})" for i, j in cells)]
    rows = [[str(lay), _label(t), *(f"{g[i - 1, j - 1]:.2f}" for i, j in cells)]
            for (lay, t), g in sorted(_grids(sec3).items())]  # fmt: skip
    rows.append(["chance", "", *(f"{max(i, j) / d_in:.2f}" for i, j in cells)])
    lines += [f"## Figure 3: A_r={r1} vs A_r={r2}, same seed", "", *md_table(head, rows), ""]
    lines += [
        f"Paper ({p['model']}, layer {p['layer']}): the top direction is shared, φ(1, 1) > "
        "0.5, and the other directions overlap little. Chance: E[φ(i, j)] = max(i, j)/d_in "
        "for independent random subspaces.",
        "",
    ]
    sec4 = record["figure4"]
    r = sec4["ranks"][0]
    cells = [(i, i) for i in (1, 8, 32) if i < r] + [(r, r)]
    rand = grid(sec4["random"])
    head = ["layer", "matrix", *(f"φ({i},{j})" for i, j in cells)]
    rows = [[str(lay), _label(t), *(f"{g[i - 1, j - 1]:.2f}" for i, j in cells)]
            for (lay, t), g in sorted(_grids(sec4).items())]  # fmt: skip
    rows.append(["random Gaussian", "", *(f"{rand[i - 1, j - 1]:.2f}" for i, j in cells)])
    rows.append(["chance", "", *(f"{max(i, j) / d_in:.2f}" for i, j in cells)])
    lines += [f"## Figure 4: A_r={r}, two seeds", "", *md_table(head, rows), ""]
    lines += [
        "Paper: ΔW_q shares more top directions across seeds than ΔW_v, and both more "
        "than two random Gaussian matrices.",
        "",
    ]
    if record.get("init"):
        lines += init_summary(record["init"], d_in)
    lines += [*([stale, ""] if stale else []), provenance_line([record]), ""]
    return "\n".join(lines)


def init_summary(init: dict[str, Any], d_in: int) -> list[str]:
    """Eq. 4 on the replayed inits and on the learned parts A − A_init, per figure."""
    lines = ["## What training changed in A", ""]
    lines += md_table(["run", "min", "median", "max"],
                      [[f"r={m['r']}, seed {m['seed']}", f"{m['min']:.2f}", f"{m['median']:.2f}",
                        f"{m['max']:.2f}"] for m in init["moved"]])  # fmt: skip
    lines += [
        "",
        "‖A - A_init‖_F / ‖A_init‖_F over the adapted matrices (A_init replayed from the "
        "run's seed: set_seed, load the model, apply LoRA, as experiments/glue/task.py "
        f"does). Independent draws would give about √2 ≈ {math.sqrt(2):.2f}.",
        "",
    ]
    replicated = []
    for pair in init["pairs"]:
        cells = [tuple(c) for c in pair["cells"]]
        (r1, r2), (s1, s2) = pair["ranks"], pair["seeds"]
        rows = [[str(x["layer"]), _label(x["target"]), *(f"{v:.2f}" for v in x["init"]),
                 *(f"{v:.2f}" for v in x["learned"])] for x in pair["rows"]]  # fmt: skip
        chance = [f"{max(i, j) / d_in:.2f}" for i, j in cells]
        rows.append(["chance", "", *chance, *chance])
        head = ["layer", "matrix", *(f"init φ({i},{j})" for i, j in cells),
                *(f"learned φ({i},{j})" for i, j in cells)]  # fmt: skip
        lines += [f"### {pair['figure']} (r={r1}, seed {s1} vs r={r2}, seed {s2}): inits "
                  "and learned parts", ""]  # fmt: skip
        lines += md_table(head, rows) + [""]
        where = ", ".join(f"layer {lay} {_label(t)}" for lay, t in pair["replicated"])
        if where:
            replicated.append(
                f"in {pair['figure']} the r={r1} run's A_init of {where} is the top rows "
                f"of the r={r2} run's (init φ({r1}, {r2}) = 1 there: both drew from the same "
                "random stream, an init artifact, not learning)"
            )
    lines += [
        "Inits that coincide: " + ("; ".join(replicated) if replicated else "none") + ". "
        "Learned parts: Eq. 4 on A - A_init, which removes the random init that still "
        "dominates A after a short training.",
        "",
    ]
    return lines


# ---------------------------------------------------------------- driver


def write_analysis(record: dict[str, Any], tables: Path, figures: Path,
                   results_dir: Path | None = None) -> list[Path]:  # fmt: skip
    """Write Table 7 to ``tables``, the figures and their summary to ``figures``, from one
    analysis record; ``results_dir`` (where its source records are) enables the check
    for retrained sources. Returns the written paths."""
    stale = stale_note(record, results_dir)
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    written = write_md_csv(tables, "table7", table7_markdown(record, stale),
                           table7_csv_rows(record), CSV_COLUMNS)  # fmt: skip
    written.append(figure3(record, figures / "figure3_subspace_r8_r64.png", bool(stale)))
    written.append(figure4(record, figures / "figure4_subspace_seeds_r64.png", bool(stale)))
    (figures / "subspace_similarity.md").write_text(similarity_summary(record, stale))
    written.append(figures / "subspace_similarity.md")
    return written


def write_analysis_records(records: list[dict[str, Any]], out: Path,
                           results_dir: Path) -> list[Path]:  # fmt: skip
    """``make tables``' route: the newest of ``records`` to ``out`` (tables and figures)."""
    record = latest(records, lambda r: "one")["one"]
    return write_analysis(record, out, out, results_dir)


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.analysis [--experiment NAME] [--tables DIR] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=EXPERIMENT, help="the training experiment")
    # the same default as conf/config.yaml's paths.results_dir
    default = Path(os.environ.get("LORA_RESULTS_DIR") or "results/local")
    parser.add_argument("--results-dir", type=Path, default=default)
    parser.add_argument("--tables", type=Path, help="default: <results-dir>/analysis")
    parser.add_argument("--figures", type=Path, help="default: <results-dir>/analysis")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        record = latest_record(args.results_dir, args.experiment)
        out = args.results_dir / "analysis"
        paths = write_analysis(record, args.tables or out, args.figures or out,
                               args.results_dir)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    for path in paths:
        print(path)
