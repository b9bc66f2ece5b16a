"""Result records: one JSON file per run, written atomically, with provenance.

Layout: ``<results_dir>/runs/<experiment_name>/<run_id>.json``. The run id is a
readable tag plus a hash of every setting that changes the result, so re-running a
sweep finds the records it already has and skips those points (resume). A failed
run writes ``<run_id>.failed.json`` instead, which never blocks a retry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "datasets", "accelerate", "hydra-core", "peft", "lora-repro")
# Settings that do not change a run's result, left out of its identity.
_NOT_IDENTITY = ("paths", "logger", "trainer", "notes", "hparams")


def method_tag(method: dict[str, Any]) -> str:
    """Short readable name of a method config, e.g. ``lora-r8-qv``."""
    name = method.get("name") or method.get("method")
    if name == "lora":
        return f"lora-r{method.get('r')}-{''.join(method.get('targets', []))}"
    if "r" in method:
        return f"{name}-r{method['r']}"
    return str(name)


def run_id(cfg: DictConfig) -> str:
    """Deterministic id of a run: ``<model>-<task>-<method>-s<seed>-<hash8>``."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    identity = {k: v for k, v in resolved.items() if k not in _NOT_IDENTITY}
    identity["data"] = {k: v for k, v in identity.get("data", {}).items() if k != "dir"}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    tag = method_tag(resolved["method"])
    return f"{cfg.model.name}-{cfg.task.name}-{tag}-s{cfg.seed}-{digest}"


def record_path(cfg: DictConfig, rid: str, failed: bool = False) -> Path:
    suffix = ".failed.json" if failed else ".json"
    return Path(cfg.paths.results_dir) / "runs" / cfg.experiment_name / f"{rid}{suffix}"


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        return out.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """Git commit, package versions, hardware and command line of this process."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": versions,
        "python": platform.python_version(),
        "hardware": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "command": sys.argv,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_record(
    cfg: DictConfig, rid: str, status: str, result: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    """Assemble the record: identity, status, results, resolved config, provenance."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": rid,
        "experiment": cfg.experiment_name,
        "status": status,
        "model": cfg.model.name,
        "task": cfg.task.name,
        "method": resolved["method"],
        "seed": cfg.seed,
        **(result or {}),
        **extra,
        "config": resolved,
        "provenance": provenance(),
    }


def load_records(results_dir: str | os.PathLike, experiment: str | None = None) -> list[dict]:
    """All successful records under ``results_dir/runs`` (one experiment, or all)."""
    root = Path(results_dir) / "runs"
    pattern = f"{experiment}/*.json" if experiment else "*/*.json"
    records = []
    for path in sorted(root.glob(pattern)):
        if path.name.endswith(".failed.json"):
            continue
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            records.append(record)
    return records
