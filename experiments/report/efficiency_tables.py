"""The training-efficiency tables (step time, peak memory, checkpoint size, vs peft) from a
bench record.

:mod:`experiments.perf.bench` measures and writes the record; this renders it, both right
after the run and whenever ``python -m experiments.tables`` rebuilds the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.core.labels import METHOD_LABELS, METHODS, fmt_ratio, peak_key
from experiments.report.common import STALE_MARK, any_stale, footer, hardware_line
from experiments.report.render import md_table, write_md_csv

#: Columns of the efficiency CSV: one compared pair (a against b) per row.
CSV_COLUMNS = ("section", "model", "measure", "unit", "a", "a_value", "a_std", "a_min", "b",
               "b_value", "b_std", "b_min", "ratio", "ratio_se", "target_max", "met")  # fmt: skip


def fmt_bytes(n: float) -> str:
    """Human size with binary units, e.g. ``1.42 GiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.1f}±{stats['std']:.1f}"


def _side(prefix: str, name: str, value: dict[str, float] | float) -> dict[str, Any]:
    """CSV cells of one compared side: timing stats (ms) or a single number."""
    if not isinstance(value, dict):
        return {prefix: name, f"{prefix}_value": value}
    named = (("value", "mean"), ("std", "std"), ("min", "min"))
    return {prefix: name, **{f"{prefix}_{k}": round(value[s], 3) for k, s in named}}


def _csv_row(section: str, model: str, measure: str, unit: str, a: tuple, b: tuple, ratio: float,
             se: float | None = None, target: dict | None = None) -> dict:  # fmt: skip
    """One CSV row: ``a`` and ``b`` are (name, stats or value)."""
    row = {"section": section, "model": model, "measure": measure, "unit": unit,
           **_side("a", *a), **_side("b", *b), "ratio": ratio, "ratio_se": se}  # fmt: skip
    if target:
        row.update(target_max=target["bound"], met=target["met"])
    return row


def _method_label(method: str, lora: dict[str, Any]) -> str:
    if method == "full_ft":
        return METHOD_LABELS[method]
    targets = ",".join(lora["targets"])
    return f"{METHOD_LABELS[method]} (r={lora['r']}, α={lora['lora_alpha']}, {targets})"


def _train_memory_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    s = record["settings"]
    cuda = s["device"].startswith("cuda")
    mem_name, mem_key = ("peak GPU allocated" if cuda else "peak RSS"), peak_key(s["device"])
    train = {m["model"]: m for m in record["models"] if "train" in m}
    mem = {(m["model"], m["method"]): m for m in record["memory"]}
    types = {m["model"]: m["model_type"] for m in record["models"] + record["memory"]}
    names = [n for n in types if n in train or (n, "lora") in mem]
    if not names:
        return [], []
    table, rows = [], []
    for name in names:
        t = train[name]["train"] if name in train else None
        for method in METHODS:
            m, lora = mem.get((name, method)), method == "lora"
            table.append([name, _method_label(method, s["lora"][types[name]]),
                          _ms(t["stats"][method]) if t else "",
                          fmt_ratio(*t["ratio"]["lora"]) if t and lora else "",
                          f"{m[mem_key]:.0f}" if m else "",
                          f"{m['ratio']:.3f}" if m and lora else ""])  # fmt: skip
        if t:
            rows.append(_csv_row("train", name, "training step", "ms", ("lora", t["stats"]["lora"]),
                                 ("full_ft", t["stats"]["full_ft"]), *t["ratio"]["lora"],
                                 targets.get(("train_step", name))))  # fmt: skip
        if (name, "lora") in mem:
            lo, ft = mem[(name, "lora")], mem[(name, "full_ft")]
            rows.append(_csv_row("memory", name, mem_name, "MiB", ("lora", lo[mem_key]),
                                 ("full_ft", ft[mem_key]), lo["ratio"],
                                 target=targets.get(("memory", name))))  # fmt: skip
    how = ("`torch.cuda.max_memory_allocated`" if cuda else "peak resident set size (VmHWM), "
           "which includes the Python and torch runtime (a few hundred MiB) in both "
           "methods")  # fmt: skip
    header = ["Model", "Method", "Step time (ms)", "LoRA / FT", f"{mem_name} (MiB)", "LoRA / FT"]
    md = ["", f"## Training step time and {mem_name}", "", *md_table(header, table), "",
          f"Memory: each (model, method) in a fresh process, {s['memory_steps']} training "
          f"step(s) after the model is built; {how}."]  # fmt: skip
    return md, rows


def _checkpoint_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    table, rows = [], []
    for m in (m for m in record["models"] if "checkpoint" in m):
        c = m["checkpoint"]
        ratio = c["lora"]["bytes"] / c["full_ft"]["bytes"]
        lora = record["settings"]["lora"][m["model_type"]]
        for method in METHODS:
            p = c[method]["params"]
            table.append([m["model"], _method_label(method, lora), f"{p['method']:,}",
                          f"{p['trainable']:,}", f"{p['total']:,}", fmt_bytes(c[method]["bytes"]),
                          f"{ratio:.2e}" if method == "lora" else ""])  # fmt: skip
        a, b = c["lora"]["params"]["trainable"], c["full_ft"]["params"]["trainable"]
        rows.append(_csv_row("checkpoint", m["model"], "trainable parameters", "params",
                             ("lora", a), ("full_ft", b), a / b))  # fmt: skip
        rows.append(_csv_row("checkpoint", m["model"], "checkpoint size", "bytes",
                             ("lora", c["lora"]["bytes"]), ("full_ft", c["full_ft"]["bytes"]),
                             ratio))  # fmt: skip
    if not table:
        return [], []
    header = ["Model", "Method", "Trainable (paper count)", "Trainable (with head)", "Total",
              "Checkpoint on disk", "LoRA / FT"]  # fmt: skip
    md = ["", "## Trainable parameters and checkpoint size", "", *md_table(header, table), "",
          "LoRA: `lora.save_adapter` (trainable tensors as safetensors + JSON config); "
          "full FT: `save_pretrained` (safetensors). The paper's example (§4.2): GPT-3 175B, "
          "350 GB -> 35 MB with r=4 on W_q, W_v (ratio 1.0e-04). The paper count leaves out "
          "the task head, which every method trains."]  # fmt: skip
    return md, rows


def _peft_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    p = record.get("peft")
    if not p:
        return [], []
    table, rows = [], []
    for key, what, target in (("forward_unmerged", "forward, unmerged (eval)", "peft_forward"),
                              ("train_step", "training step", "peft_train"),
                              ("forward_merged", "forward, merged (eval)", None)):  # fmt: skip
        st = p[key]["stats"]
        table.append([what, _ms(st["ours"]), _ms(st["peft"]), fmt_ratio(*p[key]["ratio"]["ours"]),
                      _ms(st["base"]) if "base" in st else ""])  # fmt: skip
        rows.append(_csv_row("peft", p["model"], what, "ms", ("ours", st["ours"]),
                             ("peft", st["peft"]), *p[key]["ratio"]["ours"],
                             targets.get((target, p["model"]))))  # fmt: skip
    lo = p["lora"]
    header = ["Measure", "Ours (ms)", "peft (ms)", "ours / peft", "base model (ms)"]
    md = ["", f"## Our LoRA vs peft {p['peft']} ({p['model']}, r={lo['r']}, "
          f"α={lo['lora_alpha']}, {','.join(lo['targets'])})", "", *md_table(header, table), "",
          "Same base weights, rank, α, dropout and modules; both train the task head. "
          "Merged: ours `lora.merge_lora`, peft `merge_adapter()` (wrappers kept in "
          "both)."]  # fmt: skip
    return md, rows


def render(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables and CSV rows (dicts keyed by :data:`CSV_COLUMNS`) of a record."""
    s, hw, stale = record["settings"], record["hardware"], any_stale([record])
    title = "# Training efficiency: LoRA vs full fine-tuning, and our LoRA vs peft's"
    md = [title + (STALE_MARK if stale else ""), "",
          f"Random weights, {s['dtype']}, batch {s['batch']} × sequence {s['seq']}, AdamW, on "
          f"{hardware_line(hw)}. Times are mean±std over {s['trials']} timed rounds after "
          f"{s['warmup']} warm-up round(s), the compared runs interleaved in one process in a "
          "random order each round; time ratios are the median of the per-round ratios ± its "
          "standard error."]  # fmt: skip
    targets = {(t["key"], t["where"]): t for t in record["targets"]}
    rows: list[dict[str, Any]] = []
    for section in (_train_memory_section, _checkpoint_section, _peft_section):
        lines, section_rows = section(record, targets)
        md += lines
        rows += section_rows
    md += ["", "## Targets", "", *md_table(["Target", "Where", "Measured", "Met"], [
        [t["target"], t["where"], t["figure"], "yes" if t["met"] else "**no**"]
        for t in record["targets"]])]  # fmt: skip
    if record.get("notes"):
        md += ["", "## Notes", "", record["notes"].strip()]
    md += footer([record], stale)
    return "\n".join(md) + "\n", rows


def write_bench_table(record: dict[str, Any], out: Path) -> list[Path]:
    """Write ``<out>/<name>.md`` and ``.csv`` of a bench record; returns the paths."""
    return write_md_csv(out, record["settings"]["name"], *render(record), CSV_COLUMNS)
