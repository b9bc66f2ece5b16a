"""Drive the LoRA-vs-FT factor study (``make parity``, conf/experiment/parity.yaml).

    python -m experiments.parity                      # both stages, resumable
    python -m experiments.parity --stage 1            # targets, lr ratio, batch only
    python -m experiments.parity -- paths.results_dir=/tmp/x data.max_train_samples=64

1. ``python -m experiments.train experiment=parity``: the preset's sweep (targets at a
   matched count, lr ratio, batch size), seeds 1-3, per task (:data:`STAGE1`).
2. The target set whose LoRA runs have the best mean held-out score
   (:func:`best_targets`), the demo's W_q,W_v r=8 among them, then the rank rows on it:
   ``hparams.rank_targets=<it>``, ``row=r1,r4,r16,r64``.

Both stages skip points that have a record, so a killed study resumes. The exit code is
the sweeps': non-zero when a point failed (the others still run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from experiments.core.load import load_records

PRESET = "parity"
#: the targets factor's rows, and the demo's LoRA row that is its W_q,W_v cell
TARGET_ROWS = ("qkvo_r4", "mlp_r3", "all_r2")
BASE = ("demo", "lora")
RANK_ROWS = "r1,r4,r16,r64"
#: per task, stage 1's rows; STS-B's 30x FT lr is the base LoRA lr (3e-3), whose runs
#: the demo already has (the table takes them for that cell)
STAGE1 = {
    "sst2": "qkvo_r4,mlp_r3,all_r2,lr_x1,lr_x3,lr_x10,lr_x30,ft_b8,ft_b128,lora_b8,lora_b128",
    "stsb": "qkvo_r4,mlp_r3,all_r2,lr_x1,lr_x3,lr_x10,ft_b8,ft_b128,lora_b8,lora_b128",
}


def best_targets(results_dir: str | Path) -> tuple[Any, dict[str, float]]:
    """The target set to vary the rank on: best mean held-out score over tasks and seeds.

    Returns:
        ``(targets, scores)``: the winner's ``method.targets`` (a list, or ``"all-linear"``)
        and each candidate row's mean held-out score (natural units, e.g. accuracy 0.85).

    Raises:
        SystemExit: a candidate lacks records, or some (task, seed) point of the W_q,W_v
            row (stage 1 unfinished or failed).
    """
    scores: dict[str, list[float]] = defaultdict(list)
    points: dict[str, set[tuple[str, int]]] = defaultdict(set)
    targets: dict[str, Any] = {}
    sources = [(PRESET, row) for row in TARGET_ROWS] + [BASE]
    for experiment, row in sources:
        for record in load_records(results_dir, experiment):
            if record["config"].get("row") == row:
                scores[row].append(record["metrics"]["heldout"]["score"])
                points[row].add((record["task"], record["seed"]))
                targets[row] = record["method"]["targets"]
    missing = [row for _, row in sources if row not in scores]
    if missing:
        sys.exit(f"parity: no records for target rows {', '.join(missing)} in {results_dir}; "
                 "run stage 1 (and make demo for the W_q,W_v row) first")  # fmt: skip
    short = [row for row in scores if points[row] != points[BASE[1]]]
    if short:  # a row missing a task would be averaged on the other alone
        sys.exit(f"parity: target rows {', '.join(short)} lack some (task, seed) points of "
                 f"the W_q,W_v row ({len(points[BASE[1]])}); finish stage 1 first")  # fmt: skip
    means = {row: statistics.fmean(v) for row, v in scores.items()}
    best = max(means, key=lambda row: (means[row], row == BASE[1]))  # a tie keeps W_q,W_v
    return targets[best], means


def _train(overrides: list[str]) -> int:
    cmd = [sys.executable, "-m", "experiments.train", f"experiment={PRESET}", *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, check=False).returncode


def _targets_override(targets: Any) -> str:
    text = targets if isinstance(targets, str) else "[" + ",".join(targets) + "]"
    return f"hparams.rank_targets={text}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", type=int, choices=(1, 2), help="run one stage only")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    results_dir = next((o.split("=", 1)[1] for o in args.overrides
                        if o.startswith("paths.results_dir=")), None)  # fmt: skip
    # the same default as conf/config.yaml's paths.results_dir
    results_dir = results_dir or os.environ.get("LORA_RESULTS_DIR") or "results/local"
    start, status = time.perf_counter(), 0
    if args.stage in (None, 1):
        for task, rows in STAGE1.items():
            status |= _train([f"hydra.sweeper.params.task={task}",
                              f"hydra.sweeper.params.row='{rows}'", *args.overrides])  # fmt: skip
    if args.stage in (None, 2):
        targets, means = best_targets(results_dir)
        listing = "  ".join(f"{row} {100 * m:.1f}" for row, m in sorted(means.items()))
        print(f"parity: mean held-out score x100 by target set: {listing}; rank rows on "
              f"{OmegaConf.to_yaml(targets).strip() if not isinstance(targets, str) else targets}",
              flush=True)  # fmt: skip
        status |= _train([_targets_override(targets), f"hydra.sweeper.params.row='{RANK_ROWS}'",
                          *args.overrides])  # fmt: skip
    took = time.perf_counter() - start
    print(
        f"parity: wall time {int(took // 60)} min {int(took % 60)} s"
        + ("; a point failed (see the sweep summaries above)" if status else ""),
        flush=True,
    )
    sys.exit(1 if status else 0)


if __name__ == "__main__":
    main()
