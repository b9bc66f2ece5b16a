"""Drive the successors comparison: one learning-rate search per (method, task),
then the chosen learning rate on every seed.

    python -m experiments.successors                                   # the default preset
    python -m experiments.successors --preset successors_minilm_full   # 12 trials, more data
    python -m experiments.successors --rows lora,dora --tasks mrpc     # a part of it
    python -m experiments.successors --trials 2 -- paths.results_dir=/tmp/x data.heldout=32
    python -m experiments.successors --preset successors_demo --rows rslora,dora,pissa,vera,loraplus \
        --tasks sst2,stsb --extend-edges 3                                # a grid search

For each (row, task) of the plan, one after another per worker (``--jobs`` at a time):

1. ``python -m experiments.train -m experiment=<preset> task=<task> row=<row>``: the
   preset's Optuna sweeper (conf/hydra/sweeper/lr_search.yaml) searches ``train.lr`` at
   the preset's seed and maximises the held-out score (or runs the preset's grid of
   ``train.lr`` under the basic sweeper);
2. with ``--extend-edges N``, up to N rounds of one more run at the next half-decade
   step beyond a winner at the grid's edge (:func:`experiments.core.selection.extensions`),
   until the winner is inside the grid or a step beyond it was tried;
3. the learning rate whose record has the best held-out score
   (:func:`experiments.core.selection.chosen_lr`) runs on ``--seeds``; the
   search's own run at that learning rate is the first seed's record and is skipped.

Every step is a separate process that skips points with a record, so the whole driver
resumes where it was killed. A (row, task) that fails does not stop the others; each
step's log is in ``<output_dir>/successors/<experiment>/``, and the driver exits 1 when a
step failed, naming it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

from experiments.core.load import load_records
from experiments.core.schema import register_configs
from experiments.core.selection import (
    choose,
    chosen_lr,
    config_key,
    extensions,
    tried,
    unit_trials,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
DEFAULT_TASKS = "sst2,mrpc,stsb"
DEFAULT_SEEDS = "1,2,3"


def compose_preset(preset: str, overrides: list[str]):
    """The composed run config of ``experiment=<preset>`` plus ``overrides``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=[f"experiment={preset}", *overrides])


def _train(args: list[str], log: Path) -> int:
    """``python -m experiments.train -m <args>``, output appended to ``log``; exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ python -m experiments.train -m {' '.join(args)}\n")
        f.flush()
        cmd = [sys.executable, "-m", "experiments.train", "-m", *args]
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode


def _sweep_dir(row: str, task: str, phase: str) -> str:
    """A sweep folder of its own per unit and phase: two units started in the same second
    would otherwise share Hydra's timestamped folder, and each other's outcome files."""
    return (f"hydra.sweep.dir=${{paths.output_dir}}/hydra/${{experiment_name}}/"
            f"multirun_${{now:%Y-%m-%d_%H-%M-%S}}_{row}-{task}-{phase}")  # fmt: skip


def run_unit(preset: str, row: str, task: str, seeds: list[int], overrides: list[str],
             cfg, trials: int | None = None, extend: int = 0) -> tuple[str, str]:  # fmt: skip
    """Search, choose, then the seeds, for one (row, task): ``(status, one line)``.

    ``trials`` overrides the preset sweeper's ``n_trials`` (the search only); ``extend``
    is the number of edge-extension rounds after it.
    """
    name = f"{row} on {task}"
    log = Path(cfg.paths.output_dir) / "successors" / cfg.experiment_name / f"{row}-{task}.log"
    try:
        return _run_unit(preset, row, task, seeds, overrides, cfg, trials, log, extend)
    except Exception as err:  # one unit's trouble never stops the others
        return "failed", f"{name}: {type(err).__name__}: {err}; see {log}"


def _edge_step(records: list[dict], row: str, task: str, seed: int, key: str,
               tried: dict[tuple[str, str], set[float]]) -> float | None:  # fmt: skip
    """The next lr beyond this unit's winner at the grid's edge, or None (inside, or
    the step was tried: ``tried`` as :func:`experiments.core.selection.tried` gives it)."""
    trials = unit_trials(records, row, task, seed, key)
    if not trials:
        return None
    steps = extensions(choose(trials), {(row, task): tried.get((row, task), set())})
    return steps[0][2] if steps else None


def _run_unit(preset: str, row: str, task: str, seeds: list[int], overrides: list[str],
              cfg, trials: int | None, log: Path, extend: int = 0) -> tuple[str, str]:  # fmt: skip
    name = f"{row} on {task}"
    point = [f"experiment={preset}", f"task={task}", f"row={row}", *overrides]
    print(f"start: {name} (log: {log})", flush=True)
    start = time.perf_counter()
    search = [f"hydra.sweeper.n_trials={trials}"] if trials else []
    searched = _train([*point, *search, _sweep_dir(row, task, "search")], log)  # non-zero
    # when a trial failed; the others still count
    # only this configuration's trials: the folder may hold runs with other settings
    unit = compose_preset(preset, [*overrides, f"task={task}", f"row={row}"])
    key = config_key({"config": OmegaConf.to_container(unit, resolve=True)})
    for _ in range(extend):
        records = load_records(cfg.paths.results_dir, cfg.experiment_name)
        step = _edge_step(
            records,
            row,
            task,
            cfg.seed,
            key,
            tried(cfg.paths.results_dir, cfg.experiment_name, cfg.seed),
        )
        if step is None:
            break
        print(f"edge: {name}: the winner is at the grid's edge, trying lr {step:g}", flush=True)
        # a step that diverges leaves a failed record: it closes that side, not the unit
        _train([*point, "hydra/sweeper=basic", f"train.lr={step!r}", f"seed={cfg.seed}",
                _sweep_dir(row, task, "edge")], log)  # fmt: skip
    records = load_records(cfg.paths.results_dir, cfg.experiment_name)
    choice = chosen_lr(records, row, task, cfg.seed, key)
    if choice is None:
        return "failed", f"{name}: no trial finished (exit {searched}); see {log}"
    lr, trials = choice
    seeded = _train([*point, "hydra/sweeper=basic", f"train.lr={lr!r}",
                     f"seed={','.join(map(str, seeds))}", _sweep_dir(row, task, "seeds")],
                    log)  # fmt: skip
    took = time.perf_counter() - start
    status = "ok" if searched == 0 and seeded == 0 else "failed"
    line = (f"{name}: lr {lr:.3g} chosen from {trials} trials, seeds {seeds}, "
            f"{took / 60:.1f} min" + ("" if status == "ok" else f"; a step failed, see {log}"))  # fmt: skip
    return status, line


def _int_list(name: str, text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        sys.exit(f"error: invalid setting {name}: {text!r}; expected integers separated by "
                 "commas, e.g. 1,2,3")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="successors_minilm", help="conf/experiment/<name>")
    parser.add_argument("--rows", default=None, help="methods (rows of hparams); default: all")
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--seeds", default=DEFAULT_SEEDS)
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trials per search; default: the preset's sweeper n_trials",
    )
    parser.add_argument("--extend-edges", type=int, default=0, metavar="N",
                        help="rounds of one step beyond a winner at the grid's edge")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="(row, task) units at a time")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    seeds = _int_list("--seeds", args.seeds)
    if args.jobs < 1 or (args.trials is not None and args.trials < 1):
        sys.exit("error: invalid setting --jobs/--trials: must be integers >= 1")
    if args.extend_edges < 0:
        sys.exit("error: invalid setting --extend-edges: must be an integer >= 0")
    try:
        cfg = compose_preset(args.preset, args.overrides)
    except Exception as err:  # a Hydra compose error: one line, no traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        sys.exit(f"error: invalid setting: {first}")
    if cfg.seed not in seeds:  # the table pools every seed at the chosen lr, the search's too
        sys.exit(f"error: invalid setting --seeds: {args.seeds} leaves out the search's seed "
                 f"{cfg.seed} (seed= of {args.preset}), whose run at the chosen lr is tabulated")  # fmt: skip
    rows = args.rows.split(",") if args.rows else list(cfg.hparams)
    unknown = [r for r in rows if r not in cfg.hparams]
    if unknown:
        sys.exit(f"error: invalid setting --rows: {', '.join(unknown)}; rows of "
                 f"{args.preset}: {', '.join(cfg.hparams)}")  # fmt: skip
    # one torch thread per run: --jobs runs share the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    units = [(row, task) for task in args.tasks.split(",") for row in rows]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_unit, args.preset, row, task, seeds, args.overrides, cfg,
                               args.trials, args.extend_edges)
                   for row, task in units]  # fmt: skip
        results = []
        for future in futures:
            status, line = future.result()
            print(f"{'ok' if status == 'ok' else 'FAILED'}: {line}", flush=True)
            results.append(status)
    took = time.perf_counter() - start
    failed = results.count("failed")
    print(f"successors: {len(units)} (method, task) searches, {failed} failed; wall time "
          f"{int(took // 60)} min {int(took % 60)} s", flush=True)  # fmt: skip
    if failed:
        sys.exit(f"error: {failed} (method, task) search(es) failed; see the lines above")


if __name__ == "__main__":
    main()
