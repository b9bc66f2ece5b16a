"""experiments.spectrum: ΔW of saved FT and LoRA runs, its effective rank and intruders."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertForSequenceClassification

from experiments import spectrum
from experiments.core.records import SCHEMA_VERSION, write_atomic
from lora.checkpoint import save_adapter
from lora.methods import make_method

Q0 = "bert.encoder.layer.0.attention.self.query"


def _record(root, model_dir, rid, method):
    record = {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": "study", "run_id": rid,
        "model": "tiny-bert", "task": "sst2", "method": method, "seed": 1,
        "metrics": {"main": 0.5}, "params": {"method": 1, "trainable": 1, "total": 1},
        "data": {"train_size": 8}, "provenance": {"code_version": "abc"},
        "config": {"row": rid, "method": method,
                   "model": {"name": "tiny-bert", "source": "hub", "pretrained": str(model_dir)},
                   "paths": {"output_dir": str(root / "outputs")},
                   "train": {"save_adapter": True, "batch_size": 8, "lr": 1e-3}},
    }  # fmt: skip
    write_atomic(root / "runs" / "study" / f"{rid}.json", record)
    return record


def _lora_run(root, model_dir):
    method = {"name": "lora", "r": 2, "lora_alpha": 4, "targets": ["q", "v"]}
    record = _record(root, model_dir, "lora-run", method)
    model = BertForSequenceClassification.from_pretrained(model_dir)
    cfg = make_method("lora", **{k: v for k, v in method.items() if k != "name"})
    cfg.apply(model)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if name.endswith("lora_B"):
            p.data.normal_()
    save_adapter(model, spectrum.weights_dir(record), cfg)
    params = dict(model.named_parameters())
    return (2.0 * params[f"{Q0}.lora_B"] @ params[f"{Q0}.lora_A"]).detach()  # α/r = 2


def _ft_run(root, model_dir):
    record = _record(root, model_dir, "ft-run", {"name": "full_ft"})
    model = BertForSequenceClassification.from_pretrained(model_dir)
    cfg = make_method("full_ft")
    cfg.apply(model)
    w0 = dict(model.named_parameters())[f"{Q0}.weight"]
    u0 = torch.linalg.svd(w0.detach().double())[0]
    # a direction equally far from every left singular vector of W0 (|cos| = 1/sqrt(32)),
    # with a singular value far above W0's: an intruder, and ΔW of rank 1
    u = u0.sum(1) / u0.shape[1] ** 0.5
    v = torch.zeros(w0.shape[1], dtype=torch.float64)
    v[0] = 1.0
    with torch.no_grad():
        w0 += (100.0 * torch.outer(u, v)).float()
    save_adapter(model, spectrum.weights_dir(record), cfg)


def _entries(root, rid):
    path = root / "runs" / "study_spectrum" / f"{rid}.json"
    return json.loads(path.read_text())


def test_lora_and_ft_spectra(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    delta_q0 = _lora_run(tmp_path, tiny_model_dir)
    _ft_run(tmp_path, tiny_model_dir)
    with pytest.raises(SystemExit) as exit_:
        spectrum.main(["--experiment", "study", "--results-dir", str(tmp_path)])
    assert exit_.value.code == 0
    lora = _entries(tmp_path, "lora-run")
    assert lora["kind"] == "spectrum" and lora["source"]["run_id"] == "lora-run"
    rows = {(e["layer"], e["matrix"]): e for e in lora["spectrum"]}
    assert set(rows) == {(layer, m) for layer in (0, 1) for m in ("q", "v")}  # what LoRA adapts
    assert all(1 <= e["effective_rank"] <= 2 for e in rows.values())  # rank-2 ΔW
    assert rows[(0, "q")]["delta_norm"] == pytest.approx(float(delta_q0.norm()), rel=1e-5)
    ft = {(e["layer"], e["matrix"]): e for e in _entries(tmp_path, "ft-run")["spectrum"]}
    assert set(ft) == {(0, "q")}  # FT changed one matrix; unchanged ones are left out
    assert ft[(0, "q")]["effective_rank"] == 1 and ft[(0, "q")]["intruders"] == 1


def test_missing_weights_are_reported_and_existing_records_kept(tiny_model_dir, tmp_path,
                                                                monkeypatch, capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    _lora_run(tmp_path, tiny_model_dir)
    _record(tmp_path, tiny_model_dir, "gone", {"name": "full_ft"})  # no weights on disk
    with pytest.raises(SystemExit) as exit_:
        spectrum.main(["--experiment", "study", "--results-dir", str(tmp_path)])
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "skipping gone" in out and "1 records written" in out and "1 runs without" in out
    before = (tmp_path / "runs" / "study_spectrum" / "lora-run.json").read_text()
    with pytest.raises(SystemExit):
        spectrum.main(["--experiment", "study", "--results-dir", str(tmp_path)])
    assert "0 records written" in capsys.readouterr().out
    assert (tmp_path / "runs" / "study_spectrum" / "lora-run.json").read_text() == before


def test_spectrum_table_from_the_records(tiny_model_dir, tmp_path, monkeypatch):
    from experiments.report.tables import write_tables

    monkeypatch.chdir(tmp_path)
    _lora_run(tmp_path, tiny_model_dir)
    _ft_run(tmp_path, tiny_model_dir)
    with pytest.raises(SystemExit):
        spectrum.main(["--experiment", "study", "--results-dir", str(tmp_path)])
    write_tables(tmp_path, "study_spectrum")
    md = (tmp_path / "tables" / "study_spectrum.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith("| FT") or line.startswith("| LoRA")]  # fmt: skip
    # FT first; its one changed matrix: effective rank 1, one intruder, in layer 0 only
    assert rows[0][:5] == ["FT, batch 8", "SST-2", "W_q", "1.0 / 1.0", ""]
    assert [r[2] for r in rows[1:]] == ["W_q", "W_v"]  # LoRA's two matrices
    assert all(r[3].split(" / ")[0] in ("1.0", "2.0") for r in rows[1:])
    assert "top 10 left singular vectors" in md
