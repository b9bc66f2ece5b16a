"""Several processes per run (torchrun / accelerate launch): who writes, who decides.

Every rank composes the config and runs the same points in the same order; only rank 0
writes records and logs. Ranks are read from the launcher's environment variables, so
nothing here starts a process group unless a run really has several processes.
"""

from __future__ import annotations

import os
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def from_main(value: Any, cpu: bool = True) -> Any:
    """Rank 0's ``value`` on every rank, so that all ranks take the same branch.

    A record written (or seen on a shared file system) between two ranks' checks would
    otherwise let one rank skip a point while the others wait for it in a collective.
    """
    if world_size() == 1:
        return value
    import torch.distributed as dist
    from accelerate import PartialState

    # The Trainer's own PartialState call later reuses this group (same backend choice).
    PartialState(cpu=cpu)
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def replica_overrides() -> list[str]:
    """Hydra overrides for ranks > 0: no files in the run folder, warnings only.

    All ranks otherwise share (or race for) the same timestamped run folder and its
    ``.hydra/`` files and log file, and each would print every summary line.
    """
    r = rank()
    if r == 0:
        return []
    return [
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra.job_logging.root.level=WARNING",
        "hydra.hydra_logging.root.level=WARNING",
        f"hydra.run.dir=${{paths.output_dir}}/hydra/replica{r}",
        f"hydra.sweep.dir=${{paths.output_dir}}/hydra/replica{r}",
    ]


def accelerate_type() -> str | None:
    """How accelerate actually distributed this run (``MULTI_GPU``, ``FSDP``, ``MULTI_CPU``
    ...), or None before any Trainer set it up. On CPU an FSDP config falls back to DDP
    (``MULTI_CPU``) without a word, so the record says which one ran."""
    from accelerate.state import AcceleratorState

    if not AcceleratorState._shared_state:
        return None
    return str(AcceleratorState().distributed_type.value)
