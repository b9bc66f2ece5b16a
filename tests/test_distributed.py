"""Data-parallel runs: torchrun with 2 CPU (gloo) processes on the fixture data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from experiments.core import distributed
from tests.conftest import ROOT
from tests.test_harness import tiny_overrides

RANKS = 2


def _free_port() -> int:
    with socket.socket() as s:  # torchrun's --master_port=0 hangs the static rendezvous
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={RANKS}",
           f"--master_port={_free_port()}", "-m", "experiments.train", *args]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_rank_helpers_read_the_launcher_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.from_main("mine") == "mine"  # no process group without a launcher
    assert distributed.replica_overrides() == []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.world_size() == 4 and not distributed.is_main()
    assert "hydra.output_subdir=null" in distributed.replica_overrides()


def test_torchrun_two_ranks_one_record_whole_dev_set(tiny_model_dir, tmp_path):  # noqa: F811
    # 5 dev samples on 2 ranks: the sampler pads to 6, gather_for_metrics must drop the copy.
    # seed=7,7 is the same point twice: rank 1 reaches its skip check while rank 0 may
    # still be writing the record, so only a decision shared by all ranks avoids a hang.
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=rte", "data.max_eval_samples=5",
                               "train.batch_size=4", "train.eval_batch_size=2")  # fmt: skip
    out = _torchrun("-m", *overrides, "seed=7,7")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]

    runs = tmp_path / "runs" / "fixture"
    records = sorted(runs.glob("*.json"))
    assert [p.name.endswith(".failed.json") for p in records] == [False]
    record = json.loads(records[0].read_text())
    assert record["status"] == "ok" and record["provenance"]["world_size"] == RANKS
    assert record["provenance"]["distributed_type"] == "MULTI_CPU"
    assert record["data"]["eval_sizes"] == {"dev": 5}
    assert [e["eval_dev_n_predictions"] for e in record["epochs"]] == [5, 5]
    # counted on the model itself, not the DDP wrapper: the single-process numbers
    from experiments.core.models import load_model
    from lora.methods import make_method
    from lora.params import count_parameters
    from tests.test_config import compose_cfg

    cfg = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=rte"))
    model = load_model(cfg.model, "sequence_classification", num_labels=2)
    method = make_method("lora", r=8, targets=["q", "v"])
    method.apply(model)
    assert record["params"] == count_parameters(model, method.modules_to_save).as_dict()

    # rank 0 alone logs: one summary line, one skip line (the second seed=7 point)
    assert log.count("accuracy = ") == 1 and log.count("skip ") == 1, log[-3000:]
    # one Hydra run folder per sweep (rank 0's); ranks > 0 write nothing there
    hydra_root = tmp_path / "outputs" / "hydra"
    sweeps = list((hydra_root / "fixture").glob("multirun_*"))
    assert len(sweeps) == 1 and (sweeps[0] / "multirun.yaml").is_file()
    assert sorted(p.name for p in sweeps[0].iterdir() if p.is_dir()) == ["0", "1"]
    replica = [p for p in (hydra_root / "replica1").rglob("*") if p.is_file()]
    assert all(p.name == "multirun.yaml" for p in replica), replica


def _fsdp_step(rank: int, port: int, out: dict) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from transformers.models.bert.modeling_bert import BertLayer

    from lora.methods import make_method
    from tests.conftest import tiny_bert

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=RANKS)
    try:
        model = tiny_bert()
        make_method("lora", r=4, targets=["q", "v"]).apply(model)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        # one FSDP unit per block, as TRANSFORMER_BASED_WRAP does
        wrap = dict(auto_wrap_policy=ModuleWrapPolicy({BertLayer}), device_id=torch.device("cpu"))
        try:
            FSDP(model, use_orig_params=False, **wrap)
            out[f"flat{rank}"] = "wrapped"
        except ValueError as err:
            out[f"flat{rank}"] = f"error: {err}"
        model = tiny_bert()
        make_method("lora", r=4, targets=["q", "v"]).apply(model)
        wrapped = FSDP(model, use_orig_params=True, **wrap)
        trainable = [p for p in wrapped.parameters() if p.requires_grad]
        opt = torch.optim.SGD(trainable, lr=1.0)
        ids = torch.randint(1, 100, (4, 8), generator=torch.Generator().manual_seed(rank))
        wrapped(input_ids=ids, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        opt.step()
        with FSDP.summon_full_params(wrapped):
            after = {n.replace("_fsdp_wrapped_module.", ""): p.detach().clone()
                     for n, p in wrapped.named_parameters()}  # fmt: skip
        # name -> sum of the new values, to compare the ranks' updates
        out[rank] = {n: float(after[n].sum()) for n, p in before.items()
                     if not torch.equal(p, after[n])}  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_fsdp_with_lora_needs_use_orig_params():
    """What conf/accelerate/fsdp_lora.yaml relies on, checked with torch's FSDP on gloo
    (accelerate itself builds FSDP only on GPUs): frozen and trainable tensors in one
    block need use_orig_params, and then only LoRA and the head train."""
    import torch.multiprocessing as mp
    import yaml

    conf = yaml.safe_load((ROOT / "conf" / "accelerate" / "fsdp_lora.yaml").read_text())
    assert conf["distributed_type"] == "FSDP"
    assert conf["fsdp_config"]["fsdp_use_orig_params"] is True
    assert conf["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"

    out = mp.Manager().dict()
    mp.spawn(_fsdp_step, args=(_free_port(), out), nprocs=RANKS)
    assert all("requires_grad" in out[f"flat{r}"] for r in range(RANKS)), dict(out)
    # different batches per rank, yet the same update: gradients were reduced
    assert out[0] == pytest.approx(out[1])
    from lora.methods import make_method
    from tests.conftest import tiny_bert

    model = tiny_bert()
    make_method("lora", r=4, targets=["q", "v"]).apply(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora_b = {n for n in trainable if "lora_B" in n}  # lora_A's first gradient is 0 (B = 0)
    assert lora_b and lora_b <= set(out[0]) <= trainable, set(out[0]) ^ trainable
