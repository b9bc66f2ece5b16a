"""experiments/report: robust loading, stale rows, provenance, labels, one pipeline."""

from __future__ import annotations

import ast
import json
import logging
import shutil
from pathlib import Path

import pytest

from experiments.core.labels import LATENCY_LABELS, METHOD_LABELS, fmt_params, method_label
from experiments.core.load import load_records
from experiments.core.records import SCHEMA_VERSION
from experiments.report import common
from experiments.report.efficiency_tables import render as render_bench
from experiments.report.tables import write_tables
from tests.conftest import ROOT
from tests.test_tables import LORA, _record, _rows


def _two_good_records(tmp_path):
    _record(tmp_path, "exp", "roberta-base", "rte", LORA, 1, 0.8)
    _record(tmp_path, "exp", "roberta-base", "rte", {"name": "full_ft"}, 1, 0.7)


def test_corrupt_and_old_records_are_skipped_with_one_warning_each(tmp_path, caplog):
    _two_good_records(tmp_path)
    folder = tmp_path / "runs" / "exp"
    (folder / "corrupt.json").write_text('{"status": "ok", "experiment": "ex')
    good = json.loads(next(folder.glob("*full_ft*.json")).read_text())
    (folder / "old.json").write_text(json.dumps({**good, "schema_version": 0}))
    del good["metrics"]["main"]
    (folder / "nometric.json").write_text(json.dumps(good))
    (folder / "nan.json").write_text('{"schema_version": NaN}')
    (folder / "other.json").write_text(json.dumps({**good, "status": "failed"}))  # silent
    with caplog.at_level(logging.WARNING, logger="experiments.core.load"):
        written = write_tables(tmp_path)
    assert tmp_path / "tables" / "exp.md" in written
    assert len(_rows((tmp_path / "tables" / "exp.md").read_text())) == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4 and all("\n" not in w for w in warnings)
    for name, why in (
        ("corrupt", "not readable JSON"),
        ("old", "schema_version 0"),
        ("nometric", "missing metrics.main"),
        ("nan", "not readable JSON"),
    ):
        assert any(str(folder / f"{name}.json") in w and why in w for w in warnings), name


def test_stale_rows_are_marked(tmp_path, monkeypatch):
    _two_good_records(tmp_path)
    monkeypatch.setattr(common, "is_stale", lambda r: r["method"]["name"] == "lora")
    write_tables(tmp_path)
    md = (tmp_path / "tables" / "exp.md").read_text()
    labels = [cells[1] for cells in _rows(md)]
    assert labels == ["FT", f"LoRA (r=8, W_q,W_v){common.STALE_MARK}"]
    assert common.STALE_NOTE in md and "rerun_stale=true" in md
    monkeypatch.setattr(common, "is_stale", lambda r: False)
    write_tables(tmp_path)
    assert common.STALE_NOTE not in (tmp_path / "tables" / "exp.md").read_text()


def test_provenance_line_names_commits_and_dates():
    def rec(commit, dirty, day):
        return {"provenance": {"git_commit": commit, "git_dirty": dirty,
                               "finished_at": f"2026-11-{day}T00:00:00+00:00"}}  # fmt: skip

    line = common.provenance_line([rec("aaaaaaa1", True, 21), rec("bbbbbbb2", False, 23),
                                   rec("aaaaaaa1", True, 22)])  # fmt: skip
    assert line == ("Built from 3 runs at commits aaaaaaa + uncommitted changes (2 runs), "
                    "bbbbbbb (1 run), finished 2026-11-21 to 2026-11-23.")  # fmt: skip


def test_method_labels_cover_variants_and_composed_methods():
    lora = {"name": "lora", "r": 8, "targets": ["q", "v"]}
    assert method_label(lora) == "LoRA (r=8, W_q,W_v)"
    assert method_label({**lora, "use_dora": True}) == "DoRA (r=8, W_q,W_v)"
    assert method_label({**lora, "use_rslora": True}) == "rsLoRA (r=8, W_q,W_v)"
    assert method_label({**lora, "init": "pissa"}) == "PiSSA (r=8, W_q,W_v)"
    assert method_label({**lora, "loraplus_lr_ratio": 16}) == "LoRA+ (r=8, W_q,W_v)"
    assert (
        method_label({"name": "vera", "r": 256, "targets": ["q", "v"]}) == "VeRA (r=256, W_q,W_v)"
    )
    assert method_label({"name": "lora+prefix_embed"}) == "LoRA+PE"
    assert method_label({"name": "lora+prefix_layer"}) == "LoRA+PL"
    assert method_label({"name": "adapter_h", "r": 8}) == "AdapterH (r=8)"
    assert method_label({"name": "prefix_layer", "l_p": 16, "l_i": 4}) == "PreLayer (l_p=16, l_i=4)"
    assert method_label({"name": "full_ft"}) == "FT" == METHOD_LABELS["full_ft"]
    assert LATENCY_LABELS["adapter_h"] == METHOD_LABELS["adapter_h"]
    assert fmt_params(294_912) == "0.29M" and fmt_params(1_500_000_000) == "1.50B"
    assert fmt_params(15_360) == "15.4K"


def test_efficiency_table_uses_the_paper_label_for_full_ft():
    # the published GPT-2 M / RoBERTa-base record (results/runs/bench also holds SmolLM2's)
    texts = [p.read_text() for p in sorted((ROOT / "results/runs/bench").glob("*.json"))]
    record = json.loads(next(t for t in texts if "gpt2-medium" in t))
    md, _ = render_bench(record)
    assert "| gpt2-medium | FT |" in md and "Full FT" not in md


def test_a_stale_perf_record_marks_its_table(monkeypatch):
    record = json.loads(next((ROOT / "results/runs/bench").glob("*.json")).read_text())
    monkeypatch.setattr(common, "is_stale", lambda r: True)
    md, _ = render_bench(record)
    assert md.splitlines()[0].endswith(common.STALE_MARK) and common.STALE_NOTE in md


def test_report_modules_import_without_cycles():
    folder = ROOT / "experiments" / "report"
    graph = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("experiments.report.")
        }

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n)))
                   for n in graph.get(start, ()))  # fmt: skip

    assert not [m for m in graph if reaches(m, m)]
    assert not any(
        n.startswith("experiments.perf") for p in folder.glob("*.py") for n in _imports(p)
    )  # fmt: skip; report never imports the jobs


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_every_committed_table_is_rebuilt_from_records(tmp_path):
    """`make tables` rebuilds every committed table, latency and efficiency included, and a
    second rebuild after deleting the tables gives the same bytes."""
    shutil.copytree(ROOT / "results" / "runs", tmp_path / "runs")
    old = [p.name for p in (tmp_path / "runs").glob("*/*.json")
           if json.loads(p.read_text()).get("schema_version") != SCHEMA_VERSION]  # fmt: skip
    if old:  # the tables cannot be rebuilt until these are rerun (or migrated)
        pytest.skip(f"{len(old)} committed records have an old schema_version, e.g. {old[0]}")
    write_tables(tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    committed = {p.name for p in (ROOT / "results" / "tables").iterdir()}
    assert committed <= set(first)  # other experiments' new records may add tables
    shutil.rmtree(tmp_path / "tables")
    write_tables(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()} == first
    # every record loads but the failed runs (a diverged edge step of a search is one)
    ok = [p for p in (tmp_path / "runs").glob("*/*.json") if not p.name.endswith(".failed.json")]
    assert len(load_records(tmp_path)) == len(ok)
