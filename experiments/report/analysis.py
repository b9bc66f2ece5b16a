"""Paper §7 analyses from saved LoRA adapters: Table 7 and Figures 3-4 (Hu et al. 2021).

Inputs are the records of ``experiment=analysis_minilm`` (``results/runs/<experiment>/``)
and the adapters their runs saved (``train.save_adapter=true``) at
``<paths.output_dir>/runs/<experiment>/<run_id>/adapter``. The record gives the run id,
rank, seed and model; the adapter gives ``lora_A`` (r, d_in) and ``lora_B`` (d_out, r) of
every adapted matrix; the pretrained model gives W. Outputs:

* ``<results>/analysis/table7.{md,csv}``: ‖UᵀW_qV‖_F with U, V the top-r singular vectors of
  ΔW_q, of W_q and of a random matrix, at r=4 and r=64, plus ‖W_q‖_F, ‖ΔW_q‖_F and the
  amplification factor (§7.3), with the paper's GPT-3 values beside ours.
* ``<results>/analysis/figure3_subspace_r8_r64.png``: φ(A_{r=8}, A_{r=64}, i, j) (Eq. 4,
  §7.2), same seed, W_q and W_v, every layer, with the paper's zoom on j ≤ 8.
* ``<results>/analysis/figure4_subspace_seeds_r64.png``: φ between A_{r=64} of two seeds,
  with two random Gaussian matrices as the baseline.
* ``<results>/analysis/subspace_similarity.md``: the figures' key values as numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from experiments.core.records import load_records  # noqa: E402
from experiments.report.render import md_table, write_md_csv  # noqa: E402
from lora.analysis import (  # noqa: E402
    lora_delta,
    projected_norm,
    subspace_similarity_grid,
)
from lora.arch import arch_spec  # noqa: E402
from lora.checkpoint import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402

log = logging.getLogger("experiments.analysis")

EXPERIMENT = "analysis_minilm"
TARGET_LABELS = {"q": "W_q", "v": "W_v", "k": "W_k", "o": "W_o"}
#: Paper Table 7 (GPT-3 175B, W_q of layer 48; §7.3, §H.4), ../shared/reference/paper.md §1.7.
PAPER_TABLE7 = {
    "layer": "GPT-3 layer 48 of 96",
    "w_norm": 61.95,
    4: {"delta": 0.32, "w": 21.67, "random": 0.02, "delta_norm": 6.91},
    64: {"delta": 1.90, "w": 37.71, "random": 0.33, "delta_norm": 3.57},
}
RANDOM_DRAWS = 10  # Table 7's Random column: mean over this many Gaussian matrices


class MissingAdapterError(FileNotFoundError):
    """A record's adapter folder is gone (``outputs/`` is not committed)."""


@dataclass
class Adapter:
    """The LoRA factors one run saved.

    Attributes:
        record: the run's result record.
        path: the adapter folder.
        r: the rank; scaling: α/r (α/√r for rsLoRA), as the run applied it.
        factors: (layer index, paper target name) -> (A (r, d_in), B (d_out, r)), float32.
        modules: (layer index, target) -> module path in the model, for the base weight.
    """

    record: dict[str, Any]
    path: Path
    r: int
    scaling: float
    factors: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]
    modules: dict[tuple[int, str], str]

    @property
    def label(self) -> str:
        return f"r={self.r}, seed {self.record['seed']}"


def adapter_dir(record: dict[str, Any], root: Path = Path(".")) -> Path:
    """Where a run's adapter lives: ``<output_dir>/runs/<experiment>/<run_id>/adapter``."""
    out = Path(record["config"]["paths"]["output_dir"])
    base = out if out.is_absolute() else root / out
    return base / "runs" / record["experiment"] / record["run_id"] / "adapter"


def recreate_hint(record: dict[str, Any], results_dir: Path) -> str:
    """The command that trains a record's run again, adapter included."""
    rec = results_dir / "runs" / record["experiment"] / f"{record['run_id']}.json"
    return f"rm {rec} && make analysis RESULTS={results_dir}"


def load_adapter_factors(record: dict[str, Any], root: Path = Path(".")) -> Adapter:
    """Read a run's saved ``lora_A``/``lora_B`` tensors with safetensors.

    Raises:
        MissingAdapterError: the adapter folder or one of its files is missing.
        ValueError: the adapter holds no LoRA factors, or the method is not LoRA.
    """
    folder = adapter_dir(record, root)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise MissingAdapterError(f"{folder / name} not found")
    config = json.loads((folder / CONFIG_NAME).read_text())
    if config.get("method") != "lora":
        raise ValueError(f"{folder}: method must be lora; got {config.get('method')!r}")
    r = int(config["r"])
    alpha = float(config["lora_alpha"])
    scaling = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
    model_type = (config.get("base_model") or {}).get("model_type") or "bert"
    spec = arch_spec(model_type)
    by_path = {t.path: name for name, t in spec.targets.items() if t.slice_index is None}
    pattern = re.compile(rf"^(.*{re.escape(spec.blocks)}\.(\d+)\.(.+))\.lora_([AB])$")
    tensors = load_file(str(folder / WEIGHTS_NAME))
    parts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    modules: dict[tuple[int, str], str] = {}
    for key, tensor in tensors.items():
        m = pattern.match(key)
        if m is None or m.group(3) not in by_path:
            continue  # head, biases, or a matrix the paper does not name
        where = (int(m.group(2)), by_path[m.group(3)])
        parts.setdefault(where, {})[m.group(4)] = tensor.float()
        modules[where] = m.group(1)
    if not parts:
        raise ValueError(f"{folder}: no lora_A/lora_B tensors found")
    factors = {k: (v["A"], v["B"]) for k, v in parts.items()}
    return Adapter(record, folder, r, scaling, factors, modules)


@cache
def _base_state(model_json: str) -> dict[str, torch.Tensor]:
    """Pretrained weights of the record's model (loaded once per model)."""
    from experiments.core.models import load_model  # heavy: only when a table is built

    model = load_model(OmegaConf.create(json.loads(model_json)), "sequence_classification")
    return {k: v.detach().float() for k, v in model.state_dict().items()}


def base_weight(adapter: Adapter, where: tuple[int, str]) -> torch.Tensor:
    """The frozen pretrained W (d_out, d_in) of the matrix ``where`` adapts."""
    state = _base_state(json.dumps(adapter.record["config"]["model"], sort_keys=True))
    w = state[f"{adapter.modules[where]}.weight"]
    a, b = adapter.factors[where]
    if w.shape != (b.shape[0], a.shape[1]):  # Conv1D layout (GPT-2) stores (in, out)
        w = w.T
    return w


def initial_factors(adapter: Adapter) -> dict[tuple[int, str], torch.Tensor]:
    """The A matrices a run started from, replayed: seed, load the model, apply LoRA.

    Follows ``experiments/glue/task.py`` (``set_seed(seed)``, ``load_model``,
    ``method.apply``), whose random draws fix A's Kaiming-uniform init. Used to tell how
    much of A training moved, and how much of Eq. 4's overlap the init explains.
    """
    from transformers import set_seed

    from experiments.core.models import load_model
    from experiments.glue.data import get_task
    from lora.methods import make_method

    rec = adapter.record
    settings = dict(rec["config"]["method"])
    name = settings.pop("name")
    set_seed(int(rec["seed"]))
    model = load_model(OmegaConf.create(rec["config"]["model"]), "sequence_classification",
                       num_labels=get_task(rec["task"]).num_labels)  # fmt: skip
    make_method(name, **settings).apply(model)
    params = dict(model.named_parameters())
    return {k: params[f"{m}.lora_A"].detach().float().clone() for k, m in adapter.modules.items()}


# ---------------------------------------------------------------- run selection


def select_runs(records: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """(r, seed) -> record, LoRA records only (the newest if a point appears twice)."""
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    for rec in sorted(records, key=lambda x: x["provenance"].get("finished_at") or ""):
        if rec["method"].get("name") == "lora":
            runs[(int(rec["method"]["r"]), int(rec["seed"]))] = rec
    return runs


def _pick_seed(runs: dict, ranks: tuple[int, ...]) -> int | None:
    seeds = [s for s in sorted({s for _, s in runs}) if all((r, s) in runs for r in ranks)]
    return seeds[0] if seeds else None


# ---------------------------------------------------------------- Table 7


def table7_rows(
    small: Adapter, large: Adapter, target: str = "q", seed: int = 0
) -> list[dict[str, Any]]:
    """Table 7's quantities for every layer, at both ranks (one dict per layer and rank).

    Random: mean over :data:`RANDOM_DRAWS` standard Gaussian matrices of W's shape,
    drawn from ``torch.Generator().manual_seed(seed)``.
    """
    rows = []
    for adapter in (small, large):
        for layer in sorted(lay for lay, t in adapter.factors if t == target):
            where = (layer, target)
            a, b = adapter.factors[where]
            w = base_weight(adapter, where).double()
            delta = lora_delta(a, b, adapter.scaling)
            r = adapter.r
            g = torch.Generator().manual_seed(seed)
            rand = [
                projected_norm(w, torch.randn(w.shape, generator=g, dtype=torch.float64), r)
                for _ in range(RANDOM_DRAWS)
            ]
            proj_delta = projected_norm(w, delta, r)
            delta_norm = float(torch.linalg.matrix_norm(delta))
            rows.append({
                "layer": layer,
                "r": r,
                "seed": adapter.record["seed"],
                "run_id": adapter.record["run_id"],
                "proj_delta": proj_delta,
                "proj_w": projected_norm(w, w, r),
                "proj_random": sum(rand) / len(rand),
                "w_norm": float(torch.linalg.matrix_norm(w)),
                "delta_norm": delta_norm,
                "amplification": delta_norm / proj_delta if proj_delta > 0 else float("nan"),
                "dev_score": adapter.record["metrics"]["main"],
            })  # fmt: skip
    return rows


def table7_markdown(rows: list[dict[str, Any]], layer: int, n_layers: int, notes: str) -> str:
    """Table 7 at ``layer`` (ours beside the paper's), then every layer for context."""
    at = {row["r"]: row for row in rows if row["layer"] == layer}
    ranks = sorted(at)
    p = PAPER_TABLE7

    def f(x: float) -> str:
        return f"{x:.2f}" if abs(x) >= 0.005 or x == 0 else f"{x:.1e}"

    head = [""] + [f"r={r}: {c}" for r in ranks for c in ("ΔW_q", "W_q", "Random")]
    ours = ["ours, MiniLM-L6 " + f"layer {layer}"]
    ours += [f(at[r][k]) for r in ranks for k in ("proj_delta", "proj_w", "proj_random")]
    paper = [f"paper, {p['layer']}"]
    paper += [f(p[r][k]) if r in p else "–" for r in ranks for k in ("delta", "w", "random")]
    main = md_table(head, [ours, paper])

    head2 = ["", *(f"ours r={r}" for r in ranks), *(f"paper r={r}" for r in ranks)]
    norms = [
        ["‖W_q‖_F", *(f(at[r]["w_norm"]) for r in ranks), *(f(p["w_norm"]) for _ in ranks)],
        ["‖ΔW_q‖_F", *(f(at[r]["delta_norm"]) for r in ranks),
         *(f(p[r]["delta_norm"]) if r in p else "–" for r in ranks)],
        ["amplification ‖ΔW_q‖_F / ‖UᵀW_qV‖_F", *(f(at[r]["amplification"]) for r in ranks),
         *(f(p[r]["delta_norm"] / p[r]["delta"]) if r in p else "–" for r in ranks)],
        ["‖UᵀW_qV‖_F / ‖W_q‖_F, U,V from ΔW_q", *(f(at[r]["proj_delta"] / at[r]["w_norm"])
         for r in ranks), *(f(p[r]["delta"] / p["w_norm"]) if r in p else "–" for r in ranks)],
        ["same, U,V random", *(f(at[r]["proj_random"] / at[r]["w_norm"]) for r in ranks),
         *(f(p[r]["random"] / p["w_norm"]) if r in p else "–" for r in ranks)],
    ]  # fmt: skip
    second = md_table(head2, norms)

    head3 = ["layer", "r", "ΔW_q", "W_q", "Random", "‖W_q‖_F", "‖ΔW_q‖_F", "amplification"]
    every = md_table(head3, [
        [str(row["layer"]), str(row["r"]), f(row["proj_delta"]), f(row["proj_w"]),
         f(row["proj_random"]), f(row["w_norm"]), f(row["delta_norm"]),
         f(row["amplification"])]
        for row in sorted(rows, key=lambda x: (x["r"], x["layer"]))
    ])  # fmt: skip
    runs = sorted({(row["r"], row["seed"], row["run_id"], row["dev_score"]) for row in rows})
    lines = [
        "# Table 7: ‖UᵀW_qV‖_F, how ΔW_q relates to W_q (paper §7.3)",
        "",
        f"U, V: the top-r left and right singular vectors of ΔW_q, of W_q itself, or of a "
        f"random N(0, 1) matrix (mean of {RANDOM_DRAWS} draws); ΔW_q = (α/r)·B·A of the "
        f"LoRA run at that rank. Ours: layer {layer} (0-based, the middle of MiniLM-L6's "
        f"{n_layers} blocks; the paper uses layer 48 of GPT-3's 96). The paper writes "
        "UᵀW_qVᵀ; V here holds the right singular vectors as columns.",
        "",
        *main,
        "",
        *second,
        "",
        "Runs: "
        + "; ".join(
            f"r={r} seed {s} `{rid}` (SST-2 dev acc {100 * d:.1f})" for r, s, rid, d in runs
        ),
        "",
        notes,
        "",
        "## Every layer",
        "",
        *every,
        "",
        "Rebuild: `make analysis RESULTS=results` (trains missing runs, then "
        "`python -m experiments.analysis --results-dir results`).",
        "",
    ]
    return "\n".join(lines)


def table7_notes(rows: list[dict[str, Any]], layer: int) -> str:
    """What the numbers say, computed from them (so it stays true after a rerun)."""
    at = {row["r"]: row for row in rows if row["layer"] == layer}
    parts = []
    for r in sorted(at):
        x = at[r]
        ratio = x["proj_delta"] / x["proj_random"] if x["proj_random"] else float("nan")
        rel = x["proj_delta"] / x["proj_w"] if x["proj_w"] else float("nan")
        parts.append(
            f"r={r}: W_q's component in ΔW_q's top-{r} subspace is {ratio:.1f}× that in a "
            f"random one and {100 * rel:.0f}% of that in W_q's own top-{r} subspace; "
            f"ΔW_q amplifies it {x['amplification']:.1f}×"
        )
    d_paper = "GPT-3 has d_model 12288 to MiniLM's 384, so absolute norms differ"
    return (
        "Reading: " + "; ".join(parts) + f". The paper finds, at layer 48, 16× and 5.8× "
        "a random subspace (0.32/0.02, 1.90/0.33), ΔW_q's directions far from W_q's top ones "
        f"(0.32 vs 21.67), and amplification ≈21.5 (r=4) and ≈1.9 (r=64). {d_paper}; the "
        "ratios and the amplification factor are the comparable quantities. Random for "
        "an r-dim subspace is about r·‖W‖_F/√(d_out·d_in) in expectation."
    )


# ---------------------------------------------------------------- Figures 3 and 4


def _heat(ax, grid: torch.Tensor, title: str, cmap: str = "viridis"):
    k1, k2 = grid.shape
    im = ax.imshow(grid.numpy(), vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto",
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


def figure3(small: Adapter, large: Adapter, path: Path, targets=("q", "v"),
            zoom: int = 8, mark_layer: int | None = None) -> dict:  # fmt: skip
    """φ(A_{r small}, A_{r large}, i, j) per layer and target, with the zoom j ≤ ``zoom``.

    Layout as paper Figure 3 (one row per layer here, the paper shows one layer): i on
    the vertical axis (1 at the top), j on the horizontal. Returns the grids.
    """
    layers = sorted({lay for lay, t in small.factors if t in targets})
    grids = {(lay, t): subspace_similarity_grid(small.factors[(lay, t)][0],
                                                large.factors[(lay, t)][0])
             for lay in layers for t in targets}  # fmt: skip
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
            z = min(zoom, g.shape[1])
            top = row == 0  # column titles once; rows are labelled on the left
            im = _heat(axes[row, c], g, f"Δ{TARGET_LABELS[t]}, j ≤ {g.shape[1]}" if top else "")
            _heat(
                axes[row, len(targets) + c],
                g[:, :z],
                f"Δ{TARGET_LABELS[t]}, j ≤ {z}" if top else "",
            )
        axes[row, 0].set_ylabel(_row_label(lay, mark_layer, f"i (r={small.r})"), fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"j (r={large.r})", fontsize=7)
    fig.suptitle(
        f"Figure 3: φ(A_r={small.r}, A_r={large.r}, i, j), Eq. 4, same seed "
        f"({small.record['seed']}); MiniLM-L6, SST-2",
        fontsize=10,
    )
    fig.colorbar(im, ax=axes, shrink=0.6, label="φ")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return grids


def figure4(run_1: Adapter, run_2: Adapter, path: Path, targets=("q", "v"),
            seed: int = 0, mark_layer: int | None = None) -> tuple[dict, torch.Tensor]:  # fmt: skip
    """φ between the A matrices of two seeds at the same rank, per layer and target.

    The last column is two independent standard Gaussian matrices of the same shape
    (the paper's right panel). Returns the grids and the random grid.
    """
    layers = sorted({lay for lay, t in run_1.factors if t in targets})
    grids = {(lay, t): subspace_similarity_grid(run_1.factors[(lay, t)][0],
                                                run_2.factors[(lay, t)][0])
             for lay in layers for t in targets}  # fmt: skip
    a = run_1.factors[(layers[0], targets[0])][0]
    g = torch.Generator().manual_seed(seed)
    rand = subspace_similarity_grid(torch.randn(a.shape, generator=g),
                                    torch.randn(a.shape, generator=g))  # fmt: skip
    n_cols = len(targets) + 1
    fig, axes = plt.subplots(len(layers), n_cols, figsize=(2.4 * n_cols + 1.5,
                             2.1 * len(layers) + 0.8), squeeze=False, layout="constrained")  # fmt: skip
    im = None
    for row, lay in enumerate(layers):
        top = row == 0
        for c, t in enumerate(targets):
            im = _heat(axes[row, c], grids[(lay, t)], f"Δ{TARGET_LABELS[t]}" if top else "")
        _heat(axes[row, -1], rand, "two random Gaussian matrices" if top else "")
        ylabel = _row_label(lay, mark_layer, f"i (seed {run_1.record['seed']})")
        axes[row, 0].set_ylabel(ylabel, fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"j (seed {run_2.record['seed']})", fontsize=7)
    fig.suptitle(
        f"Figure 4: φ(A_r={run_1.r} seed {run_1.record['seed']}, A_r={run_2.r} seed "
        f"{run_2.record['seed']}, i, j), Eq. 4; MiniLM-L6, SST-2",
        fontsize=10,
    )
    fig.colorbar(im, ax=axes, shrink=0.6, label="φ")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return grids, rand


def similarity_summary(fig3: dict | None, fig4: tuple | None, d_in: int,
                       ranks: tuple[int, int], fig4_rank: int) -> str:  # fmt: skip
    """Key entries of the heat maps as a Markdown table, beside chance (max(i, j)/d_in)."""
    lines = ["# Subspace similarity (paper Eq. 4, Figures 3 and 4)", ""]
    if fig3:
        r1, r2 = ranks
        cells = [(1, 1), (1, r2), (min(8, r1), min(8, r2)), (r1, r2)]
        head = ["layer", "matrix", *(f"φ({i},{j})" for i, j in cells)]
        rows = [[str(lay), TARGET_LABELS[t], *(f"{g[i - 1, j - 1]:.2f}" for i, j in cells)]
                for (lay, t), g in sorted(fig3.items())]  # fmt: skip
        rows.append(["chance", "", *(f"{max(i, j) / d_in:.2f}" for i, j in cells)])
        lines += [f"## Figure 3: A_r={r1} vs A_r={r2}, same seed", "", *md_table(head, rows), ""]
        lines += [
            "Paper (GPT-3, layer 48): the top direction is shared, φ(1, 1) > 0.5, and the "
            "other directions overlap little. Chance: E[φ(i, j)] = max(i, j)/d_in for "
            "independent random subspaces.",
            "",
        ]
    if fig4:
        grids, rand = fig4
        cells = [(1, 1), (8, 8), (32, 32), (fig4_rank, fig4_rank)]
        head = ["layer", "matrix", *(f"φ({i},{j})" for i, j in cells)]
        rows = [[str(lay), TARGET_LABELS[t], *(f"{g[i - 1, j - 1]:.2f}" for i, j in cells)]
                for (lay, t), g in sorted(grids.items())]  # fmt: skip
        rows.append(["random Gaussian", "", *(f"{rand[i - 1, j - 1]:.2f}" for i, j in cells)])
        rows.append(["chance", "", *(f"{max(i, j) / d_in:.2f}" for i, j in cells)])
        lines += [f"## Figure 4: A_r={fig4_rank}, two seeds", "", *md_table(head, rows), ""]
        lines += [
            "Paper: ΔW_q shares more top directions across seeds than ΔW_v, and both more "
            "than two random Gaussian matrices.",
            "",
        ]
    return "\n".join(lines)


def init_summary(pairs: dict[str, tuple[Adapter, Adapter]], d_in: int) -> str:
    """Eq. 4 on the replayed inits and on the learned parts A - A_init, per figure."""
    inits: dict[int, dict] = {}
    for one, two in pairs.values():
        for ad in (one, two):
            if id(ad) not in inits:
                inits[id(ad)] = initial_factors(ad)
    lines = ["## What training changed in A", ""]
    moved = []
    for one, two in pairs.values():
        for ad in (one, two):
            if ad.label in {m[0] for m in moved}:
                continue
            rel = [float(torch.linalg.matrix_norm(ad.factors[k][0] - a0)
                         / torch.linalg.matrix_norm(a0)) for k, a0 in inits[id(ad)].items()]  # fmt: skip
            moved.append((ad.label, min(rel), sorted(rel)[len(rel) // 2], max(rel)))
    lines += md_table(["run", "min", "median", "max"],
                      [[lbl, f"{a:.2f}", f"{b:.2f}", f"{c:.2f}"] for lbl, a, b, c in moved])  # fmt: skip
    lines += [
        "",
        "‖A - A_init‖_F / ‖A_init‖_F over the adapted matrices (A_init replayed from the "
        "run's seed: set_seed, load the model, apply LoRA, as experiments/glue/task.py "
        "does). Independent draws would give about 1.41.",
        "",
    ]
    for fig, (one, two) in pairs.items():
        k1, k2 = min(8, one.r), min(8, two.r)
        cells = [(1, 1), (k1, k2), (one.r, two.r)]
        rows = []
        for key in sorted(one.factors):
            a0, b0 = inits[id(one)][key], inits[id(two)][key]
            g0 = subspace_similarity_grid(a0, b0)
            gl = subspace_similarity_grid(one.factors[key][0] - a0, two.factors[key][0] - b0)
            rows.append([str(key[0]), TARGET_LABELS[key[1]],
                         *(f"{g0[i - 1, j - 1]:.2f}" for i, j in cells),
                         *(f"{gl[i - 1, j - 1]:.2f}" for i, j in cells)])  # fmt: skip
        chance = [f"{max(i, j) / d_in:.2f}" for i, j in cells]
        rows.append(["chance", "", *chance, *chance])
        head = ["layer", "matrix", *(f"init φ({i},{j})" for i, j in cells),
                *(f"learned φ({i},{j})" for i, j in cells)]  # fmt: skip
        lines += [f"### {fig} ({one.label} vs {two.label}): inits and learned parts", ""]
        lines += md_table(head, rows) + [""]
    lines += [
        "Same seed, two ranks: A is drawn row by row from one random stream, so the first "
        "adapted matrix (layer 0 W_q) of the r=8 run starts as the first 8 rows of the r=64 "
        "run's (init φ(8, 64) = 1 there: an init artifact, not learning); later matrices "
        "draw from shifted streams. Learned parts: Eq. 4 on A - A_init, which removes the "
        "random init that still dominates A after this short training.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- driver


def build(results_dir: Path, experiment: str, tables: Path, figures: Path,
          layer: int | None = None, root: Path = Path("."),
          replay_init: bool = True) -> list[Path]:  # fmt: skip
    """Build Table 7 and Figures 3-4 from the records and their adapters.

    ``replay_init`` adds to the summary how far training moved A from its init and the
    Eq. 4 overlaps of the inits and of the learned parts A - A_init (loads the model).
    Returns the written paths. Raises ``MissingAdapterError`` naming, for each missing
    adapter, the command that recreates it, and ``ValueError`` when the records lack the
    runs a product needs (r=4 and r=64 for Table 7; r=8 and r=64 with one seed for
    Figure 3; two seeds at r=64 for Figure 4).
    """
    runs = select_runs(load_records(results_dir, experiment))
    if not runs:
        raise ValueError(
            f"no LoRA records in {results_dir}/runs/{experiment}; run "
            f"`python -m experiments.train experiment={experiment}` (make analysis)"
        )
    adapters: dict[tuple[int, int], Adapter] = {}
    missing = []
    for key, rec in sorted(runs.items()):
        try:
            adapters[key] = load_adapter_factors(rec, root)
        except MissingAdapterError as err:
            missing.append(f"{err}; recreate with: {recreate_hint(rec, results_dir)}")
    if missing:
        raise MissingAdapterError("missing adapters:\n  " + "\n  ".join(missing))
    any_adapter = next(iter(adapters.values()))
    n_layers = 1 + max(lay for lay, _ in any_adapter.factors)
    layer = n_layers // 2 if layer is None else layer
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers - 1}]; got {layer}")
    written: list[Path] = []
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)

    seed7 = _pick_seed(runs, (4, 64))
    if seed7 is None:
        raise ValueError("Table 7 needs r=4 and r=64 runs with one seed in the records")
    rows = table7_rows(adapters[(4, seed7)], adapters[(64, seed7)])
    md = table7_markdown(rows, layer, n_layers, table7_notes(rows, layer))
    columns = list(rows[0])
    written += write_md_csv(tables, "table7", md, rows, columns)

    seed3 = _pick_seed(runs, (8, 64))
    if seed3 is None:
        raise ValueError("Figure 3 needs r=8 and r=64 runs with one seed in the records")
    path = figures / "figure3_subspace_r8_r64.png"
    fig3 = figure3(adapters[(8, seed3)], adapters[(64, seed3)], path, mark_layer=layer)
    written.append(path)

    seeds64 = sorted(s for r, s in runs if r == 64)
    if len(seeds64) < 2:
        raise ValueError("Figure 4 needs r=64 runs with two seeds in the records")
    path = figures / "figure4_subspace_seeds_r64.png"
    fig4 = figure4(adapters[(64, seeds64[0])], adapters[(64, seeds64[1])], path,
                   mark_layer=layer)  # fmt: skip
    written.append(path)

    d_in = any_adapter.factors[next(iter(any_adapter.factors))][0].shape[1]
    summary = similarity_summary(fig3, fig4, d_in, (8, 64), 64)
    if replay_init:
        pairs = {"Figure 3": (adapters[(8, seed3)], adapters[(64, seed3)]),
                 "Figure 4": (adapters[(64, seeds64[0])], adapters[(64, seeds64[1])])}  # fmt: skip
        summary += "\n" + init_summary(pairs, d_in)
    (figures / "subspace_similarity.md").write_text(summary)
    written.append(figures / "subspace_similarity.md")
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.analysis [--experiment NAME] [--layer N] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=EXPERIMENT, help="records' experiment name")
    # the same default as conf/config.yaml's paths.results_dir
    default = Path(os.environ.get("LORA_RESULTS_DIR") or "results/local")
    parser.add_argument("--results-dir", type=Path, default=default)
    parser.add_argument("--tables", type=Path, help="default: <results-dir>/tables")
    parser.add_argument("--figures", type=Path, help="default: <results-dir>/figures")
    parser.add_argument("--layer", type=int, default=None,
                        help="Table 7's layer (0-based; default: the middle one)")  # fmt: skip
    parser.add_argument("--no-init", action="store_true",
                        help="skip replaying the inits (no model load for the summary)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        tables = args.tables or args.results_dir / "tables"
        figures = args.figures or args.results_dir / "figures"
        paths = build(args.results_dir, args.experiment, tables, figures, args.layer,
                      replay_init=not args.no_init)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    for p in paths:
        print(p)
