"""The report page (results/report/index.html and README.md) from fixture tables."""

from __future__ import annotations

import pytest

from experiments.core.records import SCHEMA_VERSION, write_atomic
from experiments.report.page import SECTIONS, section_records, slug, write_page
from experiments.report_page import main

DEMO_MD = """# demo: GLUE dev results

| Model | Method | SST-2 |
|---|---|---|
| minilm-l6 | LoRA (r=8, W_q,W_v) | 79.6 |
| *paper* | *RoB-base (LoRA)* | *95.1* |

![score against rank](demo_rank.png)
"""


def _demo_record(results, seed, finished, seconds):
    method = {"name": "lora", "r": 8, "targets": ["q", "v"]}
    write_atomic(results / "runs" / "demo" / f"run-s{seed}.json", {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": "demo",
        "model": "minilm-l6", "task": "sst2", "method": method, "seed": seed,
        "metrics": {"main": 0.796}, "params": {"method": 1, "trainable": 2, "total": 3},
        "data": {"train_size": 2000}, "config": {"method": method},
        "timing": {"train_seconds": seconds},
        "provenance": {"git_commit": "0123456789abcdef", "git_dirty": False,
                       "finished_at": finished,
                       "hardware": {"cpu_count": 2, "gpu": None, "torch_threads": 1}},
    })  # fmt: skip


@pytest.fixture
def results(tmp_path):
    """A results folder with the demo table, its figure and records, Table 7 and its
    figure (not linked from the table), and a table the page has no section for."""
    res = tmp_path / "results"
    (res / "tables").mkdir(parents=True)
    (res / "analysis").mkdir()
    (res / "tables" / "demo.md").write_text(DEMO_MD)
    (res / "tables" / "demo.csv").write_text("source,SST-2\nours,79.6\n")
    (res / "tables" / "demo_rank.png").write_bytes(b"\x89PNG")
    (res / "tables" / "sweep_rank.md").write_text("# sweep_rank: GLUE dev results\n\nrows\n")
    (res / "tables" / "efficiency_smollm2.md").write_text("# Training efficiency: smollm2\n")
    (res / "analysis" / "table7.md").write_text("# Table 7\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (res / "analysis" / "figure3_subspace_r8_r64.png").write_bytes(b"\x89PNG")
    # two runs of 100 s, finished 20 s apart: 200 s summed, 120 s first start to last finish
    _demo_record(res, 1, "2026-11-22T01:00:00+00:00", 100.0)
    _demo_record(res, 2, "2026-11-22T01:00:20+00:00", 100.0)
    return res


def test_page_holds_built_tables_provenance_figures_and_missing_lines(results):
    html_path, md_path = write_page(results)
    assert html_path == results / "report" / "index.html" and md_path.name == "README.md"
    md = md_path.read_text()
    # every section appears once, in the paper's order; missing ones name their target
    positions = [md.index(f"\n## {s.title}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    assert (
        f"- [Table 5: which weight matrices](#{slug('Table 5: which weight matrices')}): "
        "not run yet: "
        "`make table5`" in md
    )
    targets = ("table5", "table5-e2e", "table6", "table16", "table18", "webnlg-demo", "table2")
    for target in (*targets, "successors"):
        assert f"Not run yet: `make {target}`." in md
    assert "Not run yet: `make demo`" not in md
    # the demo table with its provenance, demoted heading, relinked figure and CSV link
    demo = md.split("\n## Table 2: GLUE, MiniLM-L6 demo\n")[1].split("\n## ")[0]
    assert "Built from 2 runs at commit 0123456, finished 2026-11-22." in demo
    assert "**Model**: minilm-l6" in demo and "**Training examples**: SST-2 2,000" in demo
    assert "**Seeds**: 1, 2" in demo
    assert "3 min 20 s of training and evaluation summed over 2 runs; 2 min 00 s from" in demo
    assert "### demo: GLUE dev results" in demo
    assert "![score against rank](../tables/demo_rank.png)" in demo
    assert "Data: [demo.csv](../tables/demo.csv)" in demo
    # Table 7's figure is not linked from its table, so the page shows it
    assert "![figure3_subspace_r8_r64](../analysis/figure3_subspace_r8_r64.png)" in md
    assert "\n## Other: sweep_rank\n" in md
    efficiency = md.split("\n## Training efficiency\n")[1].split("\n## ")[0]
    assert "### Training efficiency: smollm2" in efficiency  # its own section, not "Other"
    assert "Other: efficiency_smollm2" not in md
    html = html_path.read_text()
    assert '<section id="table-2-glue-minilm-l6-demo">' in html
    assert '<div class="scroll"><table>' in html and "<em>95.1</em>" in html
    assert '<img src="../tables/demo_rank.png" alt="score against rank"' in html
    assert "<code>make table18</code>" in html


def test_page_builds_with_no_tables_at_all(tmp_path):
    (tmp_path / "results").mkdir()
    _, md_path = write_page(tmp_path / "results", tmp_path / "page")
    md = md_path.read_text()
    assert md.count("Not run yet:") == len(SECTIONS)
    assert (tmp_path / "page" / "index.html").read_text().count("Not run yet:") == len(SECTIONS)


def test_command_line_names_a_missing_results_folder(tmp_path, capsys):
    with pytest.raises(SystemExit, match="--results-dir .*nope: no such folder"):
        main(["--results-dir", str(tmp_path / "nope")])
    main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out


def test_a_perf_section_reads_only_the_records_of_its_output_name(tmp_path):
    for name in ("table1_latency", "successors_minilm_latency"):
        write_atomic(tmp_path / "runs" / "latency" / f"{name}.json", {
            "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": "latency",
            "run_id": name, "settings": {"name": name, "preset": "cpu"}, "points": [],
            "variants": [], "targets": [], "hardware": {},
            "provenance": {"git_commit": "0123456789abcdef", "git_dirty": False},
        })  # fmt: skip
    table1 = next(s for s in SECTIONS if s.target == "latency")
    successors = next(s for s in SECTIONS if s.target == "successors")
    assert [r["run_id"] for r in section_records(table1, tmp_path)] == ["table1_latency"]
    assert [r["run_id"] for r in section_records(successors, tmp_path)] == [
        "successors_minilm_latency"
    ]
