"""The spectral signature of ΔW for FT and LoRA runs with saved weights.

    python -m experiments.spectrum                          # the parity study's runs
    python -m experiments.spectrum --experiment parity --results-dir results

For every ok record of ``--experiment`` whose run saved its weights
(``train.save_adapter=true``: LoRA's A and B, or FT's whole state), and for every matrix
the paper names in every block (W_q, W_k, W_v, W_o, and the MLP's ffn_in, ffn_out) that
the run changed:

* ΔW = W_tuned − W0 (FT) or (α/r)·B·A (LoRA), against the pretrained W0 of the record's
  model;
* :func:`lora.analysis.effective_rank` of ΔW (share of ‖ΔW‖²_F, ``--energy``, 0.9);
* :func:`lora.analysis.intruder_dimensions` of W0 + ΔW against W0 (top ``--k`` = 10
  left singular vectors, ``--eps`` = 0.5).

One record per source run goes to ``<results-dir>/runs/<experiment>_spectrum/``, written
atomically, with the source's run id, code version and finish time; a run whose weights
are gone (``outputs/`` is not committed) is reported and skipped, and the exit code is 1.
A run whose record was computed from it with the same settings is skipped (``--force``
recomputes it). Run it from the checkout that trained: the weights' paths are relative.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from tqdm import tqdm

from experiments.core.records import (
    SCHEMA_VERSION,
    load_records,
    provenance,
    write_atomic,
)
from lora.analysis import effective_rank, intruder_dimensions
from lora.arch import arch_spec
from lora.checkpoint import CONFIG_NAME, WEIGHTS_NAME

MATRICES = ("q", "k", "v", "o", "ffn_in", "ffn_out")
KIND = "spectrum"


def weights_dir(record: dict[str, Any]) -> Path:
    """Where a run saved its weights: ``<output_dir>/runs/<experiment>/<run_id>/adapter``."""
    out = Path(record["config"]["paths"]["output_dir"])
    return out / "runs" / record["experiment"] / record["run_id"] / "adapter"


def _base_state(model_cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    from experiments.core.models import load_model  # heavy: only once weights are found

    model = load_model(OmegaConf.create(model_cfg), "sequence_classification")
    return {k: v.detach().double() for k, v in model.state_dict().items()}


def deltas(record: dict[str, Any], base: dict[str, torch.Tensor]) -> dict[tuple[int, str], tuple]:
    """``(layer, matrix) -> (W0, ΔW)``, float64 (d_out, d_in), for every matrix the run
    changed.

    Raises:
        FileNotFoundError: the run's weights are not on disk.
        ValueError: the saved method is neither full FT nor LoRA.
    """
    folder = weights_dir(record)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found")
    config = json.loads((folder / CONFIG_NAME).read_text())
    method = config.get("method")
    if method not in ("full_ft", "lora") or config.get("use_dora"):
        raise ValueError(f"{folder}: ΔW of method {method!r} is not defined here (FT, LoRA)")
    tensors = {k: v.double() for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
    spec = arch_spec((config.get("base_model") or {}).get("model_type") or "bert")
    paths = {name: spec.targets[name].path for name in MATRICES
             if name in spec.targets and spec.targets[name].slice_index is None}  # fmt: skip
    block = re.compile(rf"^(.*{re.escape(spec.blocks)}\.(\d+))\.")
    layers = sorted({(m.group(1), int(m.group(2))) for k in base if (m := block.match(k))},
                    key=lambda x: x[1])  # fmt: skip
    if method == "lora":
        r, alpha = int(config["r"]), float(config["lora_alpha"])
        scaling = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
    out = {}
    for prefix, layer in layers:
        for name, path in paths.items():
            key = f"{prefix}.{path}"
            w0 = base[f"{key}.weight"]
            if method == "full_ft":
                if f"{key}.weight" not in tensors:
                    continue
                delta = tensors[f"{key}.weight"] - w0
            else:
                if f"{key}.lora_A" not in tensors:
                    continue
                delta = scaling * tensors[f"{key}.lora_B"] @ tensors[f"{key}.lora_A"]
            if not torch.any(delta):  # FT leaves a matrix as it was: nothing to measure
                continue
            if delta.shape != w0.shape:  # GPT-2's Conv1D stores (in, out)
                w0 = w0.T
            out[(layer, name)] = (w0, delta)
    return out


def spectrum(record: dict[str, Any], base: dict[str, torch.Tensor], energy: float, k: int,
             eps: float) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per changed matrix: layer, matrix, effective rank, intruders, and the
    Frobenius norms of ΔW and W0."""
    rows = []
    for (layer, name), (w0, delta) in sorted(deltas(record, base).items()):
        rows.append({"layer": layer, "matrix": name,
                     "effective_rank": effective_rank(delta, energy),
                     "intruders": intruder_dimensions(w0, w0 + delta, k=k, eps=eps),
                     "delta_norm": float(delta.norm()), "w0_norm": float(w0.norm())})  # fmt: skip
    return rows


def _current(path: Path, record: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether the spectrum record at ``path`` was computed from this very run (a rerun
    under the same id finishes at another time) with these settings."""
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    source = done.get("source", {})
    return (done.get("settings") == settings
            and source.get("finished_at") == record["provenance"].get("finished_at")
            and source.get("code_version") == record["provenance"].get("code_version"))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="parity")
    parser.add_argument("--results-dir", default="results", type=Path)
    parser.add_argument("--energy", type=float, default=0.9)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.5)
    parser.add_argument("--force", action="store_true", help="recompute existing records")
    args = parser.parse_args(argv)
    records = [r for r in load_records(args.results_dir, args.experiment)
               if r["config"]["train"].get("save_adapter")]  # fmt: skip
    if not records:
        sys.exit(f"spectrum: no records with saved weights under "
                 f"{args.results_dir / 'runs' / args.experiment}")  # fmt: skip
    out = args.results_dir / "runs" / f"{args.experiment}_{KIND}"
    settings = {"energy": args.energy, "k": args.k, "eps": args.eps}
    bases: dict[str, dict[str, torch.Tensor]] = {}
    missing = done = 0
    for record in tqdm(records, desc="spectrum", unit="run"):
        path = out / f"{record['run_id']}.json"
        if path.exists() and not args.force and _current(path, record, settings):
            continue
        key = json.dumps(record["config"]["model"], sort_keys=True)
        try:
            if key not in bases and weights_dir(record).is_dir():
                bases[key] = _base_state(record["config"]["model"])
            rows = spectrum(record, bases.get(key) or {}, **settings)
        except (FileNotFoundError, ValueError) as err:  # weights gone, or not FT/LoRA
            missing += 1
            tqdm.write(f"spectrum: skipping {record['run_id']}: {err}")
            continue
        source = {"experiment": record["experiment"], "run_id": record["run_id"],
                  "row": record["config"].get("row"),
                  "code_version": record["provenance"].get("code_version"),
                  "finished_at": record["provenance"].get("finished_at"),
                  "batch_size": record["config"]["train"]["batch_size"],
                  "lr": record["config"]["train"]["lr"]}  # fmt: skip
        write_atomic(path, {
            "schema_version": SCHEMA_VERSION, "status": "ok", "kind": KIND,
            "run_id": record["run_id"], "experiment": f"{args.experiment}_{KIND}",
            "model": record["model"], "task": record["task"], "method": record["method"],
            "seed": record["seed"], "source": source, "settings": settings, "spectrum": rows,
            "provenance": provenance(),
        })  # fmt: skip
        done += 1
    print(f"spectrum: {done} records written to {out}, {missing} runs without weights")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
