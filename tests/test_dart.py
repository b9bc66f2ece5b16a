"""DART (Table 13): reading the v1.1.1 JSON release from a local folder (hand-written
fixture rows in DART's format), linearisation as the LoRA converter, test grouping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.core.data import DataError
from experiments.webnlg import dart
from experiments.webnlg.data import group_references, training_pairs

FIXTURES = Path(__file__).parent / "fixtures" / "dart"


@pytest.fixture(scope="module")
def data():
    return dart.load_dart(FIXTURES)


def test_reads_local_release_and_lowercases_predicates(data):
    assert [len(data[s]) for s in ("train", "dev", "test")] == [2, 1, 3]
    assert data["train"][0].context == (
        "Quillbury Rovers : home_ground : Fenwick Park | Quillbury Rovers : founded : 1911"
    )
    # table-context tokens are kept as the converter keeps them
    assert data["train"][1].context.startswith("[TABLECONTEXT] : [title] : Osterland Rivers")
    assert data["dev"][0].references == ("Mossberry tart comes from Eastmarch.",)


def test_every_annotation_is_a_training_pair(data):
    pairs = training_pairs(data["train"])
    assert len(pairs) == 3
    assert pairs[1][1] == "Fenwick Park is the home of Quillbury Rovers, who were founded in 1911."


def test_test_references_grouped_by_identical_input(data):
    groups = group_references(data["test"])
    assert [g.context for g in groups] == [
        "Tamsin Orrow : party : Lantern Party",
        "Brindle : country : Osterland | Brindle : population : 40,200",
    ]
    assert len(groups[0].references) == 3 and all(g.seen for g in groups)


def test_data_files_and_hub_fallback(tmp_path):
    files = dart.data_files(FIXTURES)
    assert [f.name for f in files] == [f for f, _ in dart.SPLITS.values()]
    assert dart.data_files(tmp_path) == []  # no dart/ folder: the Hub is read


def test_dart_folder_missing_a_split_names_the_file(tmp_path):
    shutil.copytree(FIXTURES / "dart", tmp_path / "dart")
    (tmp_path / "dart" / "dart-v1.1.1-full-test.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"dart-v1\.1\.1-full-test\.json"):
        dart.load_dart(tmp_path)


def test_malformed_json_names_file_and_line(tmp_path):
    shutil.copytree(FIXTURES / "dart", tmp_path / "dart")
    path = tmp_path / "dart" / "dart-v1.1.1-full-dev.json"
    path.write_text(path.read_text().replace('"Region",', '"Region"'))
    with pytest.raises(DataError, match=r"full-dev\.json:3: not valid JSON"):
        dart.load_dart(tmp_path)


def test_malformed_triple_names_file_and_row(tmp_path):
    shutil.copytree(FIXTURES / "dart", tmp_path / "dart")
    path = tmp_path / "dart" / "dart-v1.1.1-full-test.json"
    rows = json.loads(path.read_text())
    rows[2]["tripleset"][1] = ["Brindle", "POPULATION"]
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"full-test\.json: row 2: triple"):
        dart.load_dart(tmp_path)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_dart_runs_end_to_end_on_fixtures(tmp_path, data):
    from experiments.train import run
    from tests.test_config import compose_cfg
    from tests.test_webnlg import build_tiny_gpt2, smoke_overrides

    texts = [t for entries in data.values() for e in entries for t in (e.context, *e.references)]
    model_dir = build_tiny_gpt2(tmp_path / "tiny", texts)
    record = run(compose_cfg(smoke_overrides("dart", model_dir, FIXTURES, tmp_path)))
    assert record["status"] == "ok" and record["task"] == "dart"
    assert set(record["metrics"]["test"]) == {"all"}  # Table 13: no seen/unseen split
    assert record["data"]["train_size"] == 3 and record["data"]["test_references"] == 4
    assert record["data"]["source"] == str(FIXTURES)
