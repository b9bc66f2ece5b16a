"""One report page from the built tables: ``results/report/index.html`` and its Markdown
twin ``results/report/README.md``.

    python -m experiments.report_page                       # results/ -> results/report
    python -m experiments.report_page --results-dir results/local

The page holds, in the paper's order, every table that ``make tables`` (``tables/``) and
``make analysis`` (``analysis/``) built, the figures, and per table its provenance, read
from the records it was built from (``runs/<experiment>/``): commits and dates, models,
training examples, seeds, and time. A table that was not built yet gets one line naming
the make target that builds it; tables the page does not know go under "Other tables".
Nothing is trained or recomputed here. Markdown is rendered by markdown-it-py.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from experiments.core.load import load_records
from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.common import provenance_line


@dataclass(frozen=True)
class Section:
    """One entry of the page.

    Attributes:
        title: the heading.
        paper: what it reproduces in the paper.
        tables: paths (relative to the results folder) of the Markdown tables, ``.md``.
        target: the make target that builds it.
        experiments: the ``runs/<experiment>`` folders its provenance is read from;
            ``<experiment>:<name>`` keeps a perf folder's records of that output name.
        figures: paths of figures shown unless a table already links them.
    """

    title: str
    paper: str
    tables: tuple[str, ...]
    target: str
    experiments: tuple[str, ...]
    figures: tuple[str, ...] = ()


SECTIONS: tuple[Section, ...] = (
    Section("Table 1: inference latency", "Table 1 and Figure 5 (§3)",
            ("tables/table1_latency.md",), "latency", ("latency:table1_latency",)),
    Section("Table 2: GLUE, MiniLM-L6 demo", "Table 2 (§5.3), at CPU scale",
            ("tables/demo.md",), "demo", ("demo",)),
    Section("Table 2 demo: the learning-rate search", "the demo's fair tuning (not a paper table)",
            ("tables/demo_lr_search.md",), "demo-search", ("demo_lr_search",)),
    Section("Table 2: GLUE, RoBERTa-base", "Table 2 (§5.3), the paper's own setting",
            ("tables/table2_roberta_base.md",), "table2", ("table2_roberta_base",)),
    Section("Table 3 demo: E2E NLG, FT vs LoRA, SmolLM2-135M", "Table 3 (§5.5), at CPU scale",
            ("tables/e2e_demo.md",), "e2e-demo", ("e2e_demo",)),
    Section("Table 3: E2E NLG, SmolLM2-135M", "Table 3 (§5.5), GPT-2 M rows",
            ("tables/e2e_smollm2.md",), "table3-smollm2", ("e2e_smollm2",)),
    Section("Table 5: which weight matrices", "Table 5 (§7.1)",
            ("tables/table5_minilm.md",), "table5", ("table5_minilm",)),
    Section("Table 5 on E2E: which weight matrices, SmolLM2-135M", "Table 5 (§7.1), on E2E",
            ("tables/table5_smollm2.md",), "table5-e2e", ("table5_smollm2",)),
    Section("Table 6: rank r", "Table 6 (§7.2)",
            ("tables/table6_minilm.md",), "table6", ("table6_minilm",)),
    Section("Table 7 and Figures 3-4: the low-rank updates", "Table 7, Figures 3 and 4 (§7.2-7.3)",
            ("analysis/table7.md", "analysis/subspace_similarity.md"), "analysis",
            ("analysis_minilm",),
            ("analysis/figure3_subspace_r8_r64.png", "analysis/figure4_subspace_seeds_r64.png")),
    Section("Table 14: WebNLG, SmolLM2-135M", "Table 14 (App. E.1)",
            ("tables/webnlg_smollm2.md",), "webnlg-demo", ("webnlg_smollm2",)),
    Section("Table 16: low-data regime", "Table 16 (App. F.3)",
            ("tables/table16_sst2.md",), "table16", ("table16_sst2",)),
    Section("Table 18: rank r on E2E", "Table 18 (App. H.2)",
            ("tables/table18_smollm2.md",), "table18", ("table18_smollm2",)),
    Section("Training efficiency", "§4.2's claims (memory, checkpoint size, speed)",
            ("tables/efficiency.md", "tables/efficiency_smollm2.md"), "bench", ("bench",)),
    Section("Beyond the paper: LoRA's successors", "not in the paper: rsLoRA, DoRA, PiSSA, "
            "VeRA and LoRA+ with the same learning-rate search",
            ("tables/successors_minilm.md", "tables/successors_minilm_latency.md"), "successors",
            ("successors_minilm", "latency:successors_minilm_latency")),
    Section("Beyond the paper: LoRA's successors at the demo's budget", "not in the paper: "
            "the successors against the demo's FT, LoRA and AdapterH, paired intervals",
            ("tables/successors_demo.md", "tables/successors_demo_latency.md"),
            "successors-demo", ("successors_demo", "latency:successors_demo_latency")),
    Section("Beyond the paper: when does LoRA match FT?", "not in the paper: target set at a "
            "matched count, lr ratio, batch size, rank; the spectrum of ΔW",
            ("tables/parity.md", "tables/parity_spectrum.md"), "parity",
            ("parity", "parity_spectrum")),
    Section("Beyond the paper: target sets with their own learning rate", "not in the paper: "
            "the parity study's target sets, each with its own lr search",
            ("tables/parity_target_lr.md",), "parity-target-lr", ("parity_target_lr",)),
)  # fmt: skip

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_HEADING = re.compile(r"^(#{1,4}) ", re.MULTILINE)


def slug(title: str) -> str:
    """GitHub's heading anchor: ``Table 5: which ...`` -> ``table-5-which-...``."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def _relink(text: str, source: Path, page_dir: Path) -> str:
    """Point the relative links of a table in ``source`` at it from ``page_dir``."""

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z]+:|^#|^/", target):
            return m.group(0)
        rel = Path(_relpath(source / target, page_dir))
        return f"{m.group(1)}{rel.as_posix()}{m.group(3)}"

    return _LINK.sub(fix, text)


def _relpath(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())


def _demote(text: str) -> str:
    """A table's own headings go two levels under the page's section heading."""
    return _HEADING.sub(lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text)


# -- provenance ----------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _run_seconds(record: dict[str, Any]) -> float | None:
    timing = record.get("timing") or {}
    parts = [timing.get(k) for k in ("train_seconds", "decode_seconds", "score_seconds")]
    parts = [p for p in parts if isinstance(p, int | float)]
    return sum(parts) if parts else None


def provenance(records: list[dict[str, Any]]) -> list[str]:
    """Markdown bullets for a table's records: commits and dates, models, training
    examples per task, seeds, and time (summed over runs, and first start to last finish,
    which includes any pause between resumed runs). Empty for no records.
    """
    if not records:
        return []
    lines = [f"- **Records**: {provenance_line(records)}"]
    models = sorted({str(m) for r in records for m in _models(r)})
    if models:
        lines.append(f"- **Model**: {', '.join(models)}")
    sizes: dict[str, set[int]] = {}
    for r in records:
        n = (r.get("data") or {}).get("train_size")
        if isinstance(n, int) and r.get("task"):
            sizes.setdefault(r["task"], set()).add(n)
    if sizes:
        lines.append("- **Training examples**: " + "; ".join(
            f"{GLUE_TASKS[t].display if t in GLUE_TASKS else t.upper()} "
            + "/".join(f"{n:,}" for n in sorted(ns)) for t, ns in sorted(sizes.items())))  # fmt: skip
    seeds = sorted({r["seed"] for r in records if isinstance(r.get("seed"), int)})
    if seeds:
        lines.append(f"- **Seeds**: {', '.join(map(str, seeds))}")
    secs = [(r, _run_seconds(r)) for r in records]
    timed = [(r, s) for r, s in secs if s is not None]
    if timed:
        total = sum(s for _, s in timed)
        text = (
            f"- **Time**: {_duration(total)} of training and evaluation summed over "
            f"{len(timed)} run{'s' if len(timed) > 1 else ''}"
        )
        span = _span(timed)
        if span is not None:
            text += f"; {_duration(span)} from the first start to the last finish"
        lines.append(text + ".")
    hardware = {_hardware(r) for r in records} - {""}
    if hardware:
        lines.append(f"- **Hardware**: {'; '.join(sorted(hardware))}")
    return lines


def _models(record: dict[str, Any]) -> list[str]:
    if isinstance(record.get("model"), str):
        return [record["model"]]
    settings = record.get("settings") or {}
    return list(settings.get("models") or ([settings["model"]] if "model" in settings else []))


def _hardware(record: dict[str, Any]) -> str:
    hw = (record.get("provenance") or {}).get("hardware") or {}
    if not hw:
        return ""
    where = f"GPU {hw['gpu']}" if hw.get("gpu") else f"{hw.get('cpu_count', '?')} CPU cores"
    return f"{where}, {hw.get('torch_threads', '?')} torch thread(s) per run"


def _span(timed: list[tuple[dict[str, Any], float]]) -> float | None:
    """Seconds from the earliest (finish - run time) to the latest finish."""
    ends = []
    for r, s in timed:
        at = (r.get("provenance") or {}).get("finished_at")
        if not at:
            return None
        ends.append((datetime.fromisoformat(at).timestamp(), s))
    return max(e for e, _ in ends) - min(e - s for e, s in ends)


# -- the page ------------------------------------------------------------------------------


def section_records(section: Section, results: Path) -> list[dict]:
    """The records behind a section (``<experiment>:<name>``: by output name)."""
    out = []
    for entry in section.experiments:
        experiment, _, name = entry.partition(":")
        out += [r for r in load_records(results, experiment)
                if not name or r.get("settings", {}).get("name") == name]  # fmt: skip
    return out


def _section_md(section: Section, results: Path, page_dir: Path) -> tuple[str, bool]:
    """The section's Markdown body and whether any of its tables was built."""
    present = [results / t for t in section.tables if (results / t).is_file()]
    head = f"*Paper: {section.paper}. Built by `make {section.target}`.*"
    if not present:
        return f"{head}\n\nNot run yet: `make {section.target}`.\n", False
    records = section_records(section, results)
    parts = [head, ""]
    prov = provenance(records)
    if prov:
        parts += ["**Provenance**", "", *prov, ""]
    linked = set()
    for path in present:
        text = path.read_text()
        linked |= {(path.parent / m.group(2)).resolve() for m in _LINK.finditer(text)}
        parts += [_demote(_relink(text, path.parent, page_dir)).strip(), ""]
        csv = path.with_suffix(".csv")
        if csv.is_file():
            parts += [f"Data: [{csv.name}]({_relpath(csv, page_dir)})", ""]
    for fig in section.figures:
        path = results / fig
        if path.is_file() and path.resolve() not in linked:
            parts += [f"![{path.stem}]({_relpath(path, page_dir)})", ""]
    return "\n".join(parts), True


def _other_tables(results: Path, known: set[Path]) -> list[Path]:
    folder = results / "tables"
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.md")) if p.resolve() not in known]


def build_markdown(results_dir: Path, page_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    """The page as Markdown, and its (section title, body Markdown) pairs for the HTML."""
    results_dir, page_dir = Path(results_dir), Path(page_dir)
    blocks: list[tuple[str, str]] = []
    status: list[str] = []
    for section in SECTIONS:
        body, built = _section_md(section, results_dir, page_dir)
        blocks.append((section.title, body))
        mark = "built" if built else f"not run yet: `make {section.target}`"
        status.append(f"- [{section.title}](#{slug(section.title)}): {mark}")
    known = {(results_dir / t).resolve() for s in SECTIONS for t in s.tables}
    for path in _other_tables(results_dir, known):
        experiment = path.stem
        section = Section(f"Other: {experiment}", "not one of the paper's tables",
                          (str(path.relative_to(results_dir)),), "tables", (experiment,))  # fmt: skip
        body, _ = _section_md(section, results_dir, page_dir)
        blocks.append((section.title, body))
        status.append(f"- [{section.title}](#{slug(section.title)}): built")
    intro = [
        "# LoRA (Hu et al. 2021) reproduced: the report",
        "",
        "Every table regenerated from the records in `runs/` (by `make tables` and "
        "`make analysis`), in the paper's order, with the paper's values beside ours and "
        "each table's provenance: the commits and dates of its records, the model, the "
        "training examples, the seeds and the time the runs took. Rebuild this page with "
        "`make report`.",
        "",
        *status,
    ]
    md = "\n".join(intro) + "\n"
    for title, body in blocks:
        md += f"\n## {title}\n\n{body}"
    return md, blocks


_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1180px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 2.2em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
h4 { font-size: 1em; }
section { margin-bottom: 2em; }
.scroll { overflow-x: auto; margin: .8em 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafafa; }
td em { color: #6a4b00; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
ul { padding-left: 1.4em; }
p { max-width: 75em; }
"""


def render_html(md: str, blocks: list[tuple[str, str]]) -> str:
    """The HTML page: the intro and each section rendered by markdown-it-py."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    intro = md.split("\n## ", 1)[0]
    body = [parser.render(intro)]
    for title, block in blocks:
        body.append(f'<section id="{slug(title)}">\n<h2>{html.escape(title)}</h2>\n'
                    f"{parser.render(block)}</section>")  # fmt: skip
    content = "\n".join(body)
    content = content.replace("<table>", '<div class="scroll"><table>').replace(
        "</table>", "</table></div>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>LoRA reproduction: report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{content}\n</body>\n</html>\n"
    )


def write_page(results_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write ``index.html`` and ``README.md`` to ``out_dir`` (default
    ``<results_dir>/report``); returns both paths.
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    md, blocks = build_markdown(results_dir, out_dir)
    (out_dir / "README.md").write_text(md)
    (out_dir / "index.html").write_text(render_html(md, blocks))
    return [out_dir / "index.html", out_dir / "README.md"]
