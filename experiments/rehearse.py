"""``make rehearse``: every paper preset end to end on its real architecture, no weights.

    python -m experiments.rehearse                      # every paper preset, all rows
    python -m experiments.rehearse --preset table3_gpt2_medium --rows lora,full_ft

Each preset runs as ``python -m experiments.train experiment=<preset> debug=rehearse``
over all its rows (``hparams``) and all its sweep points: random weights on the real
dimensions (:mod:`experiments.core.rehearsal`), the data dir's real files subsampled,
2 optimizer steps, a tiny eval and, for NLG, a tiny decode. Records go to
``<results>/runs/<preset>_rehearsal`` (emptied first: a rehearsal never skips a point),
and ``<results>/tables/<preset>_rehearsal.md`` opens with a REHEARSAL banner.

Before a preset runs, each row is composed and its method applied to the architecture
on the meta device: a row that is unknown, has a bad setting or does not fit the model
fails with one line naming the preset and row, and its points count as failed.

Without CUDA the GPU trainer group runs on the CPU in fp32 (``trainer.use_cpu=true
trainer.precision=fp32``: bf16 autocast on a CPU is 10x slower and fp16 needs CUDA);
the output says so. GLUE files missing from the data dir (the offline copy lacks MNLI,
QQP and QNLI's train split) are replaced by stand-in files in the GLUE layout, built from
real rows of a task with the same shape (RTE pairs for MNLI, MRPC pairs for QQP, QNLI's
dev rows for its train split); the output names them.

One line per preset: points run, points failed, wall time; exit 1 if any point failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: the paper presets ``make rehearse`` runs (a DeBERTa preset joins when one exists)
PAPER_PRESETS = (
    "table2_roberta_base",
    "table2_roberta_large",
    "table3_gpt2_medium",
    "table3_gpt2_large",
)
#: the tiny decode of the NLG presets (beam search kept, so its code path runs)
TINY_DECODE = {"max_mrs": 2, "max_new_tokens": 32, "num_beams": 2, "batch_size": 2}
BANNER = (
    "> **REHEARSAL, NOT A RESULT.** Made by `make rehearse` (`debug=rehearse`): random "
    "weights on the preset's real architecture ({arch}), a stand-in tokenizer, a few "
    "training examples and 2 optimizer steps. It shows that the preset runs end to end; "
    "every number below is meaningless."
)
#: GLUE files the rehearsal can stand in for: task folder -> file -> (source task
#: folder, source file, header of the written file, label of row i (None: the source's))
STAND_INS: dict[str, dict[str, tuple[str, str, list[str], Any]]] = {
    "MNLI": {
        name: (
            "RTE",
            src,
            ["index", "sentence1", "sentence2", "gold_label"],
            lambda i: ("entailment", "neutral", "contradiction")[i % 3],
        )
        for name, src in (
            ("train.tsv", "train.tsv"),
            ("dev_matched.tsv", "dev.tsv"),
            ("dev_mismatched.tsv", "dev.tsv"),
        )
    },  # fmt: skip
    "QQP": {
        name: ("MRPC", src, ["id", "question1", "question2", "is_duplicate"], None)
        for name, src in (("train.tsv", "train.tsv"), ("dev.tsv", "dev.tsv"))
    },
    "QNLI": {"train.tsv": ("QNLI", "dev.tsv", ["index", "question", "sentence", "label"], None)},
}
#: columns of the source files the stand-ins read (two texts, then the label)
_SOURCE_COLUMNS = {
    "RTE": ("sentence1", "sentence2", "label"),
    "MRPC": ("#1 String", "#2 String", "Quality"),
    "QNLI": ("question", "sentence", "label"),
}
STAND_IN_ROWS = 64


def paper_presets() -> list[str]:
    """:data:`PAPER_PRESETS`, plus any DeBERTa preset in conf/experiment."""
    deberta = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*deberta*.yaml"))
    return [*PAPER_PRESETS, *deberta]


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split("\t")
    index = [header.index(c) for c in columns]
    rows = []
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) == len(header):
            rows.append([fields[i] for i in index])
        if len(rows) == STAND_IN_ROWS:
            break
    return rows


def rehearsal_data(data_dir: Path, dest: Path) -> tuple[Path, list[str]]:
    """``dest``: the data dir's files (linked) plus stand-ins for missing GLUE files.

    Returns:
        ``dest`` and the stand-in files written, as ``MNLI/train.tsv`` and the like.
    """
    dest.mkdir(parents=True, exist_ok=True)
    glue_src = data_dir / "glue" if (data_dir / "glue").is_dir() else data_dir
    for item in data_dir.iterdir():
        if item.name != "glue" and not (dest / item.name).exists():
            (dest / item.name).symlink_to(item.resolve())
    glue = dest / "glue"
    glue.mkdir(exist_ok=True)
    folders = {p.name for p in glue_src.iterdir() if p.is_dir()} | set(STAND_INS)
    written = []
    for folder in sorted(folders):
        (glue / folder).mkdir(exist_ok=True)
        if (glue_src / folder).is_dir():
            for f in (glue_src / folder).iterdir():
                if not (glue / folder / f.name).exists():
                    (glue / folder / f.name).symlink_to(f.resolve())
        for name, (src_task, src_file, header, label) in STAND_INS.get(folder, {}).items():
            target = glue / folder / name
            source = glue_src / src_task / src_file
            if target.exists() or not source.is_file():
                continue
            rows = _read_rows(source, _SOURCE_COLUMNS[src_task])
            lines = ["\t".join(header)]
            for i, (a, b, lab) in enumerate(rows):
                lines.append("\t".join([str(i), a, b, label(i) if label else lab]))
            target.write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(f"{folder}/{name}")
    return dest, written


def _compose(overrides: list[str], hydra_node: bool = False):
    from hydra import compose, initialize_config_dir

    from experiments.core.schema import register_configs

    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_node)


def plan(
    preset: str, rows: list[str] | None = None, extra: list[str] | None = None
) -> dict[str, Any]:
    """What rehearsing ``preset`` runs: its rows, sweep (``extra`` overrides of a swept
    key replace its values), family, model and one line per row that cannot rehearse
    (``problems``: row -> reason)."""
    from omegaconf import OmegaConf

    extra = extra or []
    base = [f"experiment={preset}", "debug=rehearse", f"experiment_name={preset}_rehearsal"]
    cfg = _compose([*base, *extra], hydra_node=True)
    all_rows = list(cfg.hparams) if cfg.get("hparams") else []
    rows = rows or all_rows or [None]
    sweep = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=False) or {}
    sweep = {k: [v.strip() for v in str(vals).split(",")] for k, vals in sweep.items()}
    sweep.pop("row", None)
    for item in extra:
        key, _, value = item.partition("=")
        if key in sweep:
            sweep[key] = [v.strip() for v in value.split(",")]
    base += [o for o in extra if o.partition("=")[0] not in sweep]
    problems: dict[str | None, str] = {}
    for row in rows:
        try:
            check_row(base, row, sweep)
        except Exception as err:  # noqa: BLE001 - any reason is the row's one line
            problems[row] = _one_line(err)
    return {
        "rows": rows,
        "sweep": sweep,
        "family": str(cfg.task.family),
        "model": cfg.model,
        "precision": str(cfg.trainer.precision),
        "use_cpu": bool(cfg.trainer.use_cpu),
        "problems": problems,
    }


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


def check_row(base: list[str], row: str | None, sweep: dict[str, list[str]]) -> None:
    """Compose ``row`` at each task of the sweep, check its settings and apply its method
    to the rehearsed architecture on the meta device.

    Raises:
        ConfigError, ValueError, and whatever composing or building raises.
    """
    import torch

    from experiments.core import rehearsal
    from experiments.core.schema import check_settings, validate
    from experiments.tasks import TASK_NAMES, all_task_names, known_tasks

    tasks = sweep.get("task", [None])
    for task in tasks:
        overrides = [*base, *([f"row={row}"] if row else []), *([f"task={task}"] if task else [])]
        cfg = _compose(overrides)
        check_settings(cfg, all_task_names(), TASK_NAMES)
        method = validate(cfg, all_task_names())
        spec = known_tasks()[cfg.task.name]
        num_labels = getattr(spec, "num_labels", None)
        config = (rehearsal.model_config(cfg.model, num_labels=num_labels) if num_labels
                  else rehearsal.model_config(cfg.model))  # fmt: skip
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        auto = AutoModelForSequenceClassification if num_labels else AutoModelForCausalLM
        with torch.device("meta"):
            model = auto.from_config(config)
        method.apply(model)


def outcomes(sweep_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(sweep_dir.rglob("outcome.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def mark_table(tables: Path, name: str, arch: str) -> list[Path]:
    """Open each Markdown table of experiment ``name`` with the REHEARSAL banner."""
    marked = []
    for md in sorted(tables.glob(f"{name}*.md")):
        text = md.read_text()
        if not text.startswith("> **REHEARSAL"):
            md.write_text(BANNER.format(arch=arch) + "\n\n" + text)
        marked.append(md)
    return marked


def rehearse(preset: str, results: Path, data: Path | None, work: Path,
             rows: list[str] | None = None, extra: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Rehearse one preset; returns its counts, wall time and what it said."""
    from experiments.core import rehearsal

    start = time.monotonic()
    name = f"{preset}_rehearsal"
    notes: list[str] = []
    try:
        p = plan(preset, rows, extra)
    except Exception as err:  # noqa: BLE001 - a preset that does not compose
        return {"preset": preset, "run": 0, "failed": 1, "seconds": time.monotonic() - start,
                "lines": [f"rehearse {preset}: cannot rehearse: {_one_line(err)}"],
                "notes": notes}  # fmt: skip
    per_row = math.prod(len(v) for v in p["sweep"].values())
    lines = [f"rehearse {preset} row {row}: cannot rehearse: {why}"
             for row, why in p["problems"].items()]  # fmt: skip
    good = [r for r in p["rows"] if r not in p["problems"]]
    failed = per_row * len(p["problems"])
    run = 0
    try:
        arch = rehearsal.describe(p["model"])
    except Exception as err:  # noqa: BLE001
        arch = f"{p['model'].name}: {_one_line(err)}"
    notes.append(f"random weights, {arch}")
    if good:
        overrides = [f"experiment={preset}", "debug=rehearse", f"experiment_name={name}",
                     f"paths.results_dir={results}", f"paths.output_dir={work / 'outputs'}",
                     f"hydra.sweep.dir={work / 'sweep' / preset}"]  # fmt: skip
        if good != [None]:
            overrides.append("row=" + ",".join(good))
        if data is not None:
            overrides.append(f"data.dir={data}")
        if not _cuda() and (not p["use_cpu"] or p["precision"] != "fp32"):
            overrides += ["trainer.use_cpu=true", "trainer.precision=fp32"]
            notes.append(f"trainer {p['precision']} on GPU -> fp32 on CPU (no CUDA)")
        if p["family"] != "glue":
            overrides += [f"task.decode.{k}={v}" for k, v in TINY_DECODE.items()]
        overrides += extra or []
        shutil.rmtree(results / "runs" / name, ignore_errors=True)
        shutil.rmtree(work / "sweep" / preset, ignore_errors=True)
        log = work / f"{preset}.log"
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, "-m", "experiments.train", *overrides],
                                  cwd=REPO, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        found = outcomes(work / "sweep" / preset)
        expected = per_row * len(good)
        bad = [o for o in found if o["status"] not in ("done", "skipped")]
        run = len(found)
        failed += len(bad) + max(0, expected - len(found))
        for o in bad:
            where = " ".join(o.get("overrides") or [])
            lines.append(f"rehearse {preset} ({where}): {o['status']}: {o['reason']}")
        if len(found) < expected:
            lines.append(f"rehearse {preset}: {expected - len(found)} of {expected} points "
                         f"never ran (exit {proc.returncode}); see {log}")  # fmt: skip
        if any(o["status"] == "done" for o in found):
            tables = subprocess.run(
                [sys.executable, "-m", "experiments.tables", "--results-dir", str(results),
                 "--experiment", name], cwd=REPO, capture_output=True, text=True,
            )  # fmt: skip
            marked = mark_table(results / "tables", name, arch)
            if tables.returncode != 0 or not marked:
                failed += 1
                lines.append(
                    f"rehearse {preset}: the table did not build: "
                    f"{(tables.stderr or tables.stdout).strip().splitlines()[-1:]}"
                )
            else:
                notes.append(f"table {marked[0]}")
    return {"preset": preset, "run": run, "failed": failed,
            "seconds": time.monotonic() - start, "lines": lines, "notes": notes}  # fmt: skip


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def summary_line(r: dict[str, Any]) -> str:
    secs = round(r["seconds"])
    return (f"rehearse {r['preset']}: {r['run']} points run, {r['failed']} failed, "
            f"wall time {secs // 60} min {secs % 60} s ({'; '.join(r['notes'])})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", action="append", help="default: every paper preset")
    parser.add_argument("--rows", help="comma-separated rows (default: all of the preset's)")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(os.environ.get("LORA_RESULTS_DIR") or "results/local"),
    )
    parser.add_argument("overrides", nargs="*", help="extra overrides for every point")
    args = parser.parse_args(argv)
    if args.results_dir.resolve() == (REPO / "results").resolve():
        parser.error("rehearsal records never go to the published results/; use results/local")
    presets = args.preset or paper_presets()
    rows = args.rows.split(",") if args.rows else None
    data_env = os.environ.get("LORA_DATA_DIR")
    offline = (os.environ.get("HF_HUB_OFFLINE") or "").upper() in ("1", "ON", "YES", "TRUE")
    if not data_env and offline:
        print("rehearse: no data: set LORA_DATA_DIR to the local data folder (the Makefile "
              "uses ../shared/data), or HF_HUB_OFFLINE=0 to read the Hub", flush=True)  # fmt: skip
        return 1
    total_failed = 0
    with tempfile.TemporaryDirectory(prefix="lora-rehearse-") as tmp:
        work = Path(tmp)
        data, stand_ins = (rehearsal_data(Path(data_env), work / "data")
                           if data_env else (None, []))  # fmt: skip
        if stand_ins:
            print(f"rehearse: stand-in data (missing from {data_env}): "
                  f"{', '.join(stand_ins)}", flush=True)  # fmt: skip
        for preset in presets:
            r = rehearse(preset, args.results_dir.resolve(), data, work, rows, args.overrides)
            for line in r["lines"]:
                print(line, flush=True)
            print(summary_line(r), flush=True)
            total_failed += r["failed"]
            if r["failed"]:
                keep = args.results_dir / "rehearsal-logs"
                keep.mkdir(parents=True, exist_ok=True)
                for log in work.glob(f"{preset}.log"):
                    shutil.copy(log, keep / log.name)
                print(f"rehearse {preset}: log kept at {keep / (preset + '.log')}", flush=True)
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
