"""Paper §7 from saved LoRA adapters: the numbers of Table 7 and Figures 3-4 as a record.

    python -m experiments.analysis_job                        # experiment=analysis_minilm
    python -m experiments.analysis_job --results-dir results --layer 3

Reads the ok LoRA records of ``--experiment`` (``<results-dir>/runs/<experiment>/``) and
the adapters their runs saved (``train.save_adapter=true``) at
``<paths.output_dir>/runs/<experiment>/<run_id>/adapter``: ``lora_A`` (r, d_in) and
``lora_B`` (d_out, r) of every adapted matrix; the record's pretrained model gives W.
Writes one record, ``kind: analysis``, atomically to
``<results-dir>/runs/<experiment>_subspace/<run_id>.json``; ``python -m
experiments.analysis`` (experiments/report/analysis.py) renders it. The record holds:

* ``table7``: per layer, at r=4 and r=64 (one seed): ‖UᵀW_qV‖_F with U, V the top-r
  singular vectors of ΔW_q, of W_q and of a random matrix (mean of ``random_draws``),
  ‖W_q‖_F, ‖ΔW_q‖_F and the amplification factor ‖ΔW_q‖_F / ‖UᵀW_qV‖_F (§7.3);
* ``figure3``: φ(A_{r=8}, A_{r=64}, i, j) of Eq. 4 (§7.2), same seed, W_q and W_v, every
  layer; ``figure4``: φ between A_{r=64} of two seeds, and two random Gaussian matrices;
* ``init`` (unless ``--no-init``): how far training moved A from its init, replayed from
  the run's seed, and Eq. 4 on the inits and on the learned parts A − A_init.

Grids (k1 × k2 values of φ in [0, 1]) are packed as ``{"shape": [k1, k2], "uint16":
base64 of little-endian uint16 round(φ·65535)}``: 2 bytes an entry, error ≤ 7.7e-6.

A record computed from the same source runs (same finish times) with the same settings
by the current code is kept (``--force`` recomputes it). Exit code 1 when a source's
adapter is gone (``outputs/`` is not committed): the message names the command that
recreates it. Run it from the checkout that trained: the adapters' paths are relative.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
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

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from experiments.core.records import (
    SCHEMA_VERSION,
    is_stale,
    load_records,
    provenance,
    write_atomic,
)
from lora.analysis import lora_delta, projected_norm, subspace_similarity_grid
from lora.arch import arch_spec
from lora.checkpoint import CONFIG_NAME, WEIGHTS_NAME

log = logging.getLogger("experiments.analysis_job")

EXPERIMENT = "analysis_minilm"
KIND = "analysis"
SUFFIX = "subspace"  # records go to runs/<experiment>_subspace/
#: The paper's choices (§7): Table 7 at r=4 and r=64 on W_q; Figure 3 r=8 against r=64,
#: Figure 4 two seeds at r=64, both on W_q and W_v; Figure 3's zoom on j ≤ 8.
TABLE7_RANKS = (4, 64)
FIGURE3_RANKS = (8, 64)
FIGURE4_RANK = 64
RANDOM_DRAWS = 10  # Table 7's Random column: mean over this many Gaussian matrices
_SCALE = 65535  # uint16 fixed point of a grid


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
    """Pretrained weights of the record's model, float32 (loaded once per model)."""
    from experiments.core.models import load_model  # heavy: only once adapters are found

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


def choose(runs: dict[tuple[int, int], dict[str, Any]]) -> dict[str, list[tuple[int, int]]]:
    """The (r, seed) points each product uses: ``table7``, ``figure3``, ``figure4``.

    Raises:
        ValueError: the records lack the runs a product needs (r=4 and r=64 with one seed
            for Table 7; r=8 and r=64 with one seed for Figure 3; two seeds at r=64 for
            Figure 4).
    """
    seed7, seed3 = _pick_seed(runs, TABLE7_RANKS), _pick_seed(runs, FIGURE3_RANKS)
    seeds4 = sorted(s for r, s in runs if r == FIGURE4_RANK)[:2]
    ranks7, ranks3 = (
        " and ".join(f"r={r}" for r in TABLE7_RANKS),
        " and ".join(f"r={r}" for r in FIGURE3_RANKS),
    )
    if seed7 is None:
        raise ValueError(f"Table 7 needs {ranks7} runs with one seed in the records")
    if seed3 is None:
        raise ValueError(f"Figure 3 needs {ranks3} runs with one seed in the records")
    if len(seeds4) < 2:
        raise ValueError(f"Figure 4 needs r={FIGURE4_RANK} runs with two seeds in the records")
    return {"table7": [(r, seed7) for r in TABLE7_RANKS],
            "figure3": [(r, seed3) for r in FIGURE3_RANKS],
            "figure4": [(FIGURE4_RANK, s) for s in seeds4]}  # fmt: skip


# ---------------------------------------------------------------- the numbers


def pack_grid(grid: torch.Tensor) -> dict[str, Any]:
    """A (k1, k2) grid of φ in [0, 1] as ``{"shape", "uint16"}`` (see the module doc)."""
    q = (grid.double().clamp(0.0, 1.0) * _SCALE).round().to(torch.int32).numpy()
    data = q.astype("<u2").tobytes()
    return {"shape": list(grid.shape), "uint16": base64.b64encode(data).decode("ascii")}


def unpack_grid(packed: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`pack_grid`: float64 (k1, k2)."""
    raw = np.frombuffer(base64.b64decode(packed["uint16"]), dtype="<u2")
    return raw.reshape(packed["shape"]).astype(np.float64) / _SCALE


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # records never hold NaN


def table7_rows(small: Adapter, large: Adapter, target: str = "q", seed: int = 0,
                draws: int = RANDOM_DRAWS) -> list[dict[str, Any]]:  # fmt: skip
    """Table 7's quantities for every layer, at both ranks (one dict per layer and rank).

    Norms are Frobenius, float64. Random: mean over ``draws`` standard
    Gaussian matrices of W's shape, drawn from ``torch.Generator().manual_seed(seed)``
    afresh for each row. ``amplification`` is None where ‖UᵀWV‖_F is 0.
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
                for _ in range(draws)
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
                "amplification": delta_norm / proj_delta if proj_delta > 0 else None,
            })  # fmt: skip
    return rows


def similarity_grids(one: Adapter, two: Adapter, targets: tuple[str, ...]) -> list[dict]:
    """Eq. 4 between the A matrices of two runs, per layer and target, packed."""
    keys = sorted(k for k in one.factors if k[1] in targets)
    return [{"layer": lay, "target": t,
             "grid": pack_grid(subspace_similarity_grid(one.factors[(lay, t)][0],
                                                        two.factors[(lay, t)][0]))}
            for lay, t in keys]  # fmt: skip


def random_grid(shape: tuple[int, int], seed: int) -> dict[str, Any]:
    """Eq. 4 between two independent standard Gaussian matrices of ``shape`` (Figure 4's
    right panel), from ``torch.Generator().manual_seed(seed)``, packed."""
    g = torch.Generator().manual_seed(seed)
    return pack_grid(subspace_similarity_grid(torch.randn(shape, generator=g),
                                              torch.randn(shape, generator=g)))  # fmt: skip


def init_analysis(pairs: dict[str, tuple[Adapter, Adapter]]) -> dict[str, Any]:
    """How far training moved A, and Eq. 4 on the inits and on A − A_init, per pair.

    ``moved``: per run, min, median and max over the adapted matrices of
    ‖A − A_init‖_F / ‖A_init‖_F. ``pairs``: per figure, φ at the cells (1, 1),
    (min(8, r1), min(8, r2)) and (r1, r2) of the inits and of the learned parts, per
    layer and target; ``replicated``: the (layer, target) whose inits coincide
    (φ(r1, r2) of the inits ≥ 0.99: one random stream drew both).
    """
    inits: dict[str, dict] = {}
    runs: dict[str, Adapter] = {}
    for one, two in pairs.values():
        for ad in (one, two):
            rid = ad.record["run_id"]
            if rid not in inits:
                inits[rid], runs[rid] = initial_factors(ad), ad
    moved = []
    for rid, ad in runs.items():
        rel = sorted(float(torch.linalg.matrix_norm(ad.factors[k][0] - a0)
                           / torch.linalg.matrix_norm(a0)) for k, a0 in inits[rid].items())  # fmt: skip
        moved.append({"run_id": rid, "r": ad.r, "seed": ad.record["seed"],
                      "min": rel[0], "median": rel[len(rel) // 2], "max": rel[-1]})  # fmt: skip
    out = []
    for fig, (one, two) in pairs.items():
        cells = [(1, 1), (min(8, one.r), min(8, two.r)), (one.r, two.r)]
        rows = []
        for key in sorted(one.factors):
            a0, b0 = inits[one.record["run_id"]][key], inits[two.record["run_id"]][key]
            g0 = subspace_similarity_grid(a0, b0)
            gl = subspace_similarity_grid(one.factors[key][0] - a0, two.factors[key][0] - b0)
            rows.append({"layer": key[0], "target": key[1],
                         "init": [float(g0[i - 1, j - 1]) for i, j in cells],
                         "learned": [float(gl[i - 1, j - 1]) for i, j in cells]})  # fmt: skip
        out.append({"figure": fig, "runs": [one.record["run_id"], two.record["run_id"]],
                    "ranks": [one.r, two.r], "seeds": [one.record["seed"], two.record["seed"]],
                    "cells": [list(c) for c in cells], "rows": rows,
                    "replicated": [[x["layer"], x["target"]] for x in rows
                                   if x["init"][-1] >= 0.99]})  # fmt: skip
    return {"moved": moved, "pairs": out}


def analyse(runs: dict[tuple[int, int], dict[str, Any]], settings: dict[str, Any],
            root: Path = Path("."), results_dir: Path = Path("results")) -> dict[str, Any]:  # fmt: skip
    """The record's computed part (``table7``, ``figure3``, ``figure4``, ``init``, and the
    model's shape) from the chosen runs.

    Raises:
        MissingAdapterError: one message naming, for each missing adapter, the command
            that recreates it.
        ValueError: a product lacks its runs (:func:`choose`), or ``settings["layer"]`` is
            outside the model.
    """
    use = choose(runs)
    adapters: dict[tuple[int, int], Adapter] = {}
    missing = []
    for key in sorted({k for ks in use.values() for k in ks}):
        try:
            adapters[key] = load_adapter_factors(runs[key], root)
        except MissingAdapterError as err:
            missing.append(f"{err}; recreate with: {recreate_hint(runs[key], results_dir)}")
    if missing:
        raise MissingAdapterError("missing adapters:\n  " + "\n  ".join(missing))
    first = next(iter(adapters.values()))
    n_layers = 1 + max(lay for lay, _ in first.factors)
    layer = n_layers // 2 if settings["layer"] is None else settings["layer"]
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers - 1}]; got {layer}")
    targets = tuple(settings["targets"])
    (s7, l7), (s3, l3), (one4, two4) = ([adapters[k] for k in use[p]] for p in use)
    a4 = one4.factors[min(k for k in one4.factors if k[1] in targets)][0]
    out = {
        "shape": {"n_layers": n_layers, "d_in": int(a4.shape[1])},
        "table7": {"layer": layer, "target": settings["target"], "ranks": [s7.r, l7.r],
                   "seed": s7.record["seed"],
                   "rows": table7_rows(s7, l7, settings["target"], settings["random_seed"],
                                       settings["random_draws"])},
        "figure3": {"runs": [s3.record["run_id"], l3.record["run_id"]], "ranks": [s3.r, l3.r],
                    "seeds": [s3.record["seed"]] * 2, "zoom": settings["zoom"],
                    "grids": similarity_grids(s3, l3, targets)},
        "figure4": {"runs": [one4.record["run_id"], two4.record["run_id"]],
                    "ranks": [one4.r, two4.r],
                    "seeds": [one4.record["seed"], two4.record["seed"]],
                    "grids": similarity_grids(one4, two4, targets),
                    "random": random_grid(tuple(a4.shape), settings["random_seed"])},
        "init": None,
    }  # fmt: skip
    if settings["replay_init"]:
        out["init"] = init_analysis({"Figure 3": (s3, l3), "Figure 4": (one4, two4)})
    return out


# ---------------------------------------------------------------- the record


def source_entry(record: dict[str, Any]) -> dict[str, Any]:
    """What the analysis record keeps of a source run: identity, score and when/by what
    code it was made (a retrained source finishes at another time)."""
    m = record.get("metrics", {})
    return {"experiment": record["experiment"], "run_id": record["run_id"],
            "row": record["config"].get("row"), "r": int(record["method"]["r"]),
            "seed": record["seed"], "score": m.get("main"), "metric": m.get("main_metric"),
            "code_version": record["provenance"].get("code_version"),
            "finished_at": record["provenance"].get("finished_at")}  # fmt: skip


def record_id(experiment: str, sources: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """``<experiment>_subspace-<8 hex>``: a hash of the source run ids and the settings
    (a retrained source keeps its id, so its analysis replaces the old one)."""
    key = json.dumps({"runs": sorted(s["run_id"] for s in sources), "settings": settings},
                     sort_keys=True)  # fmt: skip
    return f"{experiment}_{SUFFIX}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def is_current(path: Path, sources: list[dict[str, Any]], settings: dict[str, Any]) -> bool:
    """Whether the record at ``path`` was computed from these very source runs (the same
    finish times and code) with these settings, by code that has not changed since."""
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (done.get("status") == "ok" and done.get("settings") == settings
            and done.get("source") == sources and not is_stale(done))  # fmt: skip


def build_record(results_dir: Path, experiment: str, settings: dict[str, Any],
                 root: Path = Path(".")) -> tuple[Path, dict[str, Any] | None]:  # fmt: skip
    """The record's path, and the record (None when the one there is current).

    ``settings``: ``layer`` (Table 7's, 0-based; None: the middle block), ``target``
    (Table 7's matrix), ``targets`` (the figures'), ``zoom`` (Figure 3's j ≤ zoom panel),
    ``random_draws``, ``random_seed``, ``replay_init``, ``force``.

    Raises:
        ValueError: no LoRA records, or a product lacks its runs.
        MissingAdapterError: an adapter is gone (the message says how to recreate it).
    """
    settings = dict(settings)
    force = settings.pop("force", False)
    runs = select_runs(load_records(results_dir, experiment))
    if not runs:
        raise ValueError(
            f"no LoRA records in {results_dir}/runs/{experiment}; run "
            f"`python -m experiments.train experiment={experiment}` (make analysis)"
        )
    use = choose(runs)
    chosen = [runs[k] for k in sorted({k for ks in use.values() for k in ks})]
    sources = [source_entry(r) for r in chosen]
    out = results_dir / "runs" / f"{experiment}_{SUFFIX}"
    path = out / f"{record_id(experiment, sources, settings)}.json"
    if not force and is_current(path, sources, settings):
        return path, None
    computed = analyse(runs, settings, root, results_dir)
    first = chosen[0]
    record = {
        "schema_version": SCHEMA_VERSION, "status": "ok", "kind": KIND,
        "run_id": path.stem, "experiment": out.name,
        "model": first["model"], "task": first["task"],
        "model_config": first["config"]["model"], "method": first["method"]["name"],
        "source": sources, "settings": settings, **computed, "provenance": provenance(),
    }  # fmt: skip
    return path, record


def main(argv: list[str] | None = None) -> None:
    """``python -m experiments.analysis_job [--experiment NAME] [--layer N] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default=EXPERIMENT, help="the training experiment")
    # the same default as conf/config.yaml's paths.results_dir
    default = Path(os.environ.get("LORA_RESULTS_DIR") or "results/local")
    parser.add_argument("--results-dir", type=Path, default=default)
    parser.add_argument("--layer", type=int, default=None,
                        help="Table 7's layer (0-based; default: the middle one)")  # fmt: skip
    parser.add_argument("--no-init", action="store_true",
                        help="skip replaying the inits (no model load for them)")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="recompute a current record")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = {"layer": args.layer, "target": "q", "targets": ["q", "v"], "zoom": 8,
                "random_draws": RANDOM_DRAWS, "random_seed": 0,
                "replay_init": not args.no_init, "force": args.force}  # fmt: skip
    try:
        path, record = build_record(args.results_dir, args.experiment, settings)
    except (ValueError, FileNotFoundError) as err:
        print(f"analysis: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if record is None:
        print(f"analysis: {path} is current (--force recomputes it)")
        return
    write_atomic(path, record)
    print(f"analysis: wrote {path}")


if __name__ == "__main__":
    main()
