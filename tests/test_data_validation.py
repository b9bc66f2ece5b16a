"""Damaged GLUE and E2E files stop a run with one line naming the file and line.

Each case copies the fixture data to a temporary folder, damages one file, and checks
the exact message from the loader and, as a subprocess, from ``python -m
experiments.train`` (stderr is that one line, ``error: ...``, with no traceback).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.core.data import DataError
from experiments.e2e.data import load_e2e
from experiments.glue.data import load_glue
from tests.conftest import FIXTURES, ROOT

Damage = Callable[[bytes], bytes]


def cut_last_row(raw: bytes) -> bytes:
    """A download that stopped inside the last row: its last field is gone."""
    return raw.rstrip(b"\n").rsplit(b"\t", 1)[0]


def replace_line(number: int, new: bytes) -> Damage:
    def damage(raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        lines[number - 1] = new
        return b"\n".join(lines)

    return damage


def replace(old: bytes, new: bytes) -> Damage:
    def damage(raw: bytes) -> bytes:
        assert old in raw
        return raw.replace(old, new, 1)

    return damage


RTE_HEADER = b"index\tsentence1\tsentence2\tlabel"
# (case id, task, GLUE folder, file, damage, message after "<path>")
GLUE_CASES = [
    ("cut-last-row", "rte", "RTE", "train.tsv", cut_last_row,
     ":13: 3 tab-separated fields, expected the header's 4; the row is cut short or has a "
     "stray tab"),
    ("rte-label", "rte", "RTE", "train.tsv", replace(b"\tentailment\n", b"\tmaybe\n"),
     ":2: label 'maybe' not in {entailment, not_entailment}"),
    ("sst2-label", "sst2", "SST-2", "train.tsv", replace(b" \t0\n", b" \t7\n"),
     ":2: label '7' not in {0, 1}"),
    ("stsb-range", "stsb", "STS-B", "dev.tsv", replace(b"\t4.800\n", b"\t5.5\n"),
     ":2: label '5.5' is not a number in [0, 5]"),
    ("stsb-text", "stsb", "STS-B", "dev.tsv", replace(b"\t4.800\n", b"\thigh\n"),
     ":2: label 'high' is not a number in [0, 5]"),
    ("not-utf8", "rte", "RTE", "train.tsv", replace(b"guitar", b"gu\xefitar"),
     ":2: not UTF-8 (byte 0xef at column 24); re-save the file as UTF-8"),
    ("latin1", "rte", "RTE", "dev.tsv", replace_line(3, "3\tCaf\xe9 X.\tY.\tentailment"
                                                     .encode("latin-1")),
     ":3: not UTF-8 (byte 0xe9 at column 6); re-save the file as UTF-8"),
    ("empty-file", "rte", "RTE", "train.tsv", lambda raw: b"",
     ": empty file, expected a header with columns sentence1, sentence2, label"),
    ("missing-column", "rte", "RTE", "train.tsv",
     replace(RTE_HEADER, b"index\tsentence1\tsentence2\tgold"),
     ":1: header lacks column 'label' (RTE needs sentence1, sentence2, label); header "
     "found: index, sentence1, sentence2, gold"),
    ("header-only", "rte", "RTE", "dev.tsv", lambda raw: RTE_HEADER + b"\n",
     ": no data rows after the header"),
    ("blank-line-inside", "rte", "RTE", "train.tsv", replace_line(4, b""),
     ":4: blank line inside the data; remove it"),
    ("cola-cut", "cola", "CoLA", "dev.tsv", cut_last_row,
     ":6: 3 tab-separated fields, expected the CoLA format's 4; the row is cut short or "
     "has a stray tab"),
    ("cola-empty", "cola", "CoLA", "train.tsv", lambda raw: b"",
     ": empty file, expected rows of 4 tab-separated fields"),
]  # fmt: skip

E2E_DEV_MR = b'"name[Blue Lantern], eatType[pub], area[city centre]"'
E2E_CASES = [
    ("empty-file", "devset.csv", lambda raw: b"",
     ": empty file, expected a header with columns mr,ref"),
    ("missing-column", "devset.csv", replace(b"mr,ref\r\n", b"mr,reference\r\n"),
     ":1: header lacks column 'ref' (expected mr,ref); header found: mr,reference"),
    ("cut-in-quotes", "trainset.csv", lambda raw: raw[: raw.rindex(b"Sun Dial")],
     ":13: unexpected end of data; the row is cut short (quote not closed)"),
    ("cut-after-mr", "devset.csv", lambda raw: raw.rstrip(b"\n").rsplit(b",", 1)[0],
     ":5: 1 comma-separated fields, expected the header's 2; the row is cut short or "
     "unquoted"),
    ("empty-ref", "devset.csv", replace_line(3, E2E_DEV_MR + b","),
     ":3: empty ref; every row needs mr and ref"),
    ("not-utf8", "testset_w_refs.csv", replace(b"pub", b"p\xffub"),
     ":4: not UTF-8 (byte 0xff at column 27); re-save the file as UTF-8"),
    ("bad-mr", "devset.csv", replace(b"eatType[pub], area", b"stars[5], area"),
     ":2: cannot parse E2E meaning representation 'name[Blue Lantern], stars[5], "
     "area[city centre]': expected 'slot[value], ...' with slots name, eatType, food, "
     "priceRange, customer rating, area, familyFriendly, near"),
]  # fmt: skip


def damaged_glue(tmp_path: Path, folder: str, filename: str, damage: Damage) -> Path:
    shutil.copytree(FIXTURES / "glue" / folder, tmp_path / "glue" / folder)
    path = tmp_path / "glue" / folder / filename
    path.write_bytes(damage(path.read_bytes()))
    return path


def damaged_e2e(tmp_path: Path, filename: str, damage: Damage) -> Path:
    shutil.copytree(FIXTURES / "e2e_data", tmp_path / "e2e")
    path = tmp_path / "e2e" / filename
    path.write_bytes(damage(path.read_bytes()))
    return path


def train_stderr(tmp_path: Path, task: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.train", f"task={task}", f"data.dir={tmp_path}",
           f"paths.results_dir={tmp_path}/results", f"paths.output_dir={tmp_path}/outputs"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def assert_one_line_exit(out: subprocess.CompletedProcess, message: str) -> None:
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr == f"error: {message}\n"


@pytest.mark.parametrize(
    ("task", "folder", "filename", "damage", "tail"),
    [pytest.param(*case[1:], id=case[0]) for case in GLUE_CASES],
)
def test_damaged_glue_file_fails_in_one_line(tmp_path, task, folder, filename, damage, tail):
    path = damaged_glue(tmp_path, folder, filename, damage)
    with pytest.raises(DataError) as info:
        load_glue(task, tmp_path)
    assert str(info.value) == f"{path}{tail}"


@pytest.mark.parametrize(
    ("filename", "damage", "tail"), [pytest.param(*case[1:], id=case[0]) for case in E2E_CASES]
)
def test_damaged_e2e_file_fails_in_one_line(tmp_path, filename, damage, tail):
    path = damaged_e2e(tmp_path, filename, damage)
    with pytest.raises(DataError) as info:
        load_e2e(tmp_path)
    assert str(info.value) == f"{path}{tail}"


# End to end, one subprocess per case (about 10 s each): three in the default suite,
# every case under -m slow.
QUICK = {"cut-last-row", "rte-label", "cut-in-quotes"}


def _mark(case_id: str) -> list:
    return [] if case_id in QUICK else [pytest.mark.slow]


@pytest.mark.parametrize(
    ("task", "folder", "filename", "damage", "tail"),
    [pytest.param(*case[1:], id=case[0], marks=_mark(case[0])) for case in GLUE_CASES],
)
def test_train_prints_glue_data_error_as_one_line(tmp_path, task, folder, filename, damage, tail):
    path = damaged_glue(tmp_path, folder, filename, damage)
    assert_one_line_exit(train_stderr(tmp_path, task), f"{path}{tail}")
    assert not list(tmp_path.glob("results/runs/*/*.json"))  # no record, not even failed


@pytest.mark.parametrize(
    ("filename", "damage", "tail"),
    [pytest.param(*case[1:], id=case[0], marks=_mark(case[0])) for case in E2E_CASES],
)
def test_train_prints_e2e_data_error_as_one_line(tmp_path, filename, damage, tail):
    path = damaged_e2e(tmp_path, filename, damage)
    assert_one_line_exit(train_stderr(tmp_path, "e2e"), f"{path}{tail}")


def test_trailing_blank_lines_and_crlf_still_load(tmp_path):
    clean = load_glue("rte", FIXTURES)
    path = damaged_glue(tmp_path, "RTE", "train.tsv", lambda raw: raw + b"\n\n")
    dev = tmp_path / "glue" / "RTE" / "dev.tsv"
    dev.write_bytes(dev.read_bytes().replace(b"\n", b"\r\n"))
    data = load_glue("rte", tmp_path)
    assert path.read_bytes().endswith(b"\n\n\n")
    assert data["train"].to_list() == clean["train"].to_list()
    assert data["dev"].to_list() == clean["dev"].to_list()
    e2e_clean = load_e2e(FIXTURES / "e2e_data")
    e2e = damaged_e2e(tmp_path / "e", "devset.csv", lambda raw: raw + b"\n")
    assert load_e2e(e2e.parents[1])["dev"] == e2e_clean["dev"]


@pytest.mark.skipif(
    not Path(os.environ.get("LORA_DATA_DIR", "/nonexistent"), "glue").is_dir(),
    reason="LORA_DATA_DIR is not set: no real GLUE data to check",
)
def test_real_glue_files_pass_the_checks():
    from experiments.glue.data import get_task, read_tsv

    root = Path(os.environ["LORA_DATA_DIR"])
    sizes = {t: {k: len(v) for k, v in load_glue(t, root).items()}
             for t in ("sst2", "mrpc", "cola", "rte", "stsb")}  # fmt: skip
    assert sizes == {
        "sst2": {"train": 67349, "dev": 872},
        "mrpc": {"train": 3668, "dev": 408},  # BOM in the header
        "cola": {"train": 8551, "dev": 1043},  # no header
        "rte": {"train": 2490, "dev": 277},
        "stsb": {"train": 5749, "dev": 1500},
    }
    assert len(read_tsv(root / "glue" / "QNLI" / "dev.tsv", get_task("qnli"))) == 5463
