"""Result records: one strict-JSON file per run, written atomically, with provenance.

Layout: ``<results_dir>/runs/<experiment_name>/<run_id>.json``. The run id is a
readable tag plus a hash of every setting that can change the result, including the
trainer (precision, device) and a fingerprint of the data files' contents, so re-running
a sweep finds the records it already has and skips those points (resume). A failed run
writes ``<run_id>.failed.json`` (``status: failed``, a one-line ``reason``, the ``step``
when known) instead, which never blocks a retry. Records carry ``code_files``, the
project files a run was made from (the modules it imported and the config files it
composed), and ``code_version``, a hash of their contents; :func:`is_stale` rehashes
those same files in the current tree, ``pyproject.toml``'s pinned dependencies
among them. Editing the report code therefore leaves training
records current, while any edit to code a run executed marks it stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.core import distributed
from experiments.core.schema import nonfinite_path

SCHEMA_VERSION = 2  # 2: strict JSON, trainer and data contents in the id, code_version
PACKAGES = ("torch", "transformers", "datasets", "accelerate", "hydra-core", "peft", "lora-repro")
# Settings that provably do not change a run's result, left out of its identity. The
# chosen hparams row reaches method/train through interpolation, so the table can go.
_RUN_CONTROL = ("rerun_stale", "verbose")
_NOT_IDENTITY = ("paths", "logger", "notes", "hparams", *_RUN_CONTROL)
#: tracked paths whose code can change a result (git_dirty)
CODE_PATHS = ("lora", "experiments", "conf", "pyproject.toml")
#: the project's packages: a run's imported modules from these are its code
_PACKAGES_ROOTS = ("lora", "experiments")
REPO = Path(__file__).resolve().parents[2]


def method_tag(method: dict[str, Any]) -> str:
    """Short readable name of a method config, e.g. ``lora-r8-qv``."""
    name = method.get("name") or method.get("method")
    if name == "lora":
        return f"lora-r{method.get('r')}-{''.join(method.get('targets', []))}"
    if "r" in method:
        return f"{name}-r{method['r']}"
    return str(name)


# (resolved path, size, mtime_ns) -> sha256 of the contents: a sweep hashes each file once
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's contents, cached per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def data_fingerprint(files: list[Path], hub_dataset: str) -> str:
    """``sha256:<hex>`` over the files' names and contents; ``hub:<id>`` when ``[]``."""
    if not files:
        return f"hub:{hub_dataset}"
    h = hashlib.sha256()
    for path in files:  # names too: train and dev swapped is another run
        h.update(f"{Path(path).name}\0{file_digest(path)}\n".encode())
    return f"sha256:{h.hexdigest()}"


def identity(cfg: DictConfig, fingerprint: str) -> dict[str, Any]:
    """The settings a run id hashes: the resolved config minus :data:`_NOT_IDENTITY`,
    with ``data.dir`` replaced by the data's fingerprint, plus the number of processes
    when it is above 1."""
    resolved = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
                for k, v in cfg.items() if k not in _NOT_IDENTITY}  # fmt: skip
    data = {k: v for k, v in resolved.get("data", {}).items() if k != "dir"}
    if data.get("heldout") is None:  # held-out selection off: the ids made before it
        data.pop("heldout", None)
    data["fingerprint"] = fingerprint
    resolved["data"] = data
    if distributed.world_size() > 1:  # the effective batch is per-device batch x processes
        resolved["world_size"] = distributed.world_size()
    return resolved


def run_id(cfg: DictConfig, fingerprint: str) -> str:
    """Deterministic id of a run: ``<model>-<task>-<method>-s<seed>-<hash8>``.

    Args:
        cfg: the composed run config.
        fingerprint: the data's fingerprint (:func:`data_fingerprint` of the files the
            task family reads; ``experiments.tasks.run_id`` looks them up).
    """
    ident = identity(cfg, fingerprint)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    tag = method_tag(ident["method"])
    return f"{cfg.model.name}-{cfg.task.name}-{tag}-s{cfg.seed}-{digest}"


def record_path(cfg: DictConfig, rid: str, failed: bool = False) -> Path:
    suffix = ".failed.json" if failed else ".json"
    return Path(cfg.paths.results_dir) / "runs" / cfg.experiment_name / f"{rid}{suffix}"


class NonFiniteRecordError(ValueError):
    """A record holds NaN or infinity; records are strict JSON."""


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write strict JSON to a temporary file in the same folder, then rename over ``path``.

    Raises:
        NonFiniteRecordError: ``payload`` holds a NaN or infinity (nothing is written).
    """
    bad = nonfinite_path(payload)
    if bad is not None:
        raise NonFiniteRecordError(f"{bad} is not finite; records never hold NaN or infinity")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=str, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _git(*args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=30, check=True, cwd=REPO
        ).stdout
        return out.strip() if strip else out
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the tree this process runs, once per process; dirty means
    uncommitted or untracked files under :data:`CODE_PATHS`."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:  # not a git checkout (installed package): unknown
        return None, None
    status = _git("status", "--porcelain", "--", *CODE_PATHS)
    return commit, bool(status)


def code_files() -> list[str]:
    """Repo-relative paths of the project code this process ran, sorted: the modules of
    :data:`_PACKAGES_ROOTS` it imported, the entry script (a joblib worker runs the
    task function without importing it), ``pyproject.toml`` (the pinned dependencies)
    and every ``conf/`` file Hydra composed, nested defaults included."""
    files = {"pyproject.toml"}
    paths = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    paths.append(sys.argv[0] if sys.argv else None)
    for path in paths:
        rel = _relative(path) if path else None
        if rel and rel.endswith(".py") and rel.split("/", 1)[0] in _PACKAGES_ROOTS:
            files.add(rel)
    files.update(_composed_conf_files())
    return sorted(f for f in files if (REPO / f).is_file())


def _relative(path: str | os.PathLike) -> str | None:
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except (OSError, ValueError):
        return None


def _composed_conf_files() -> list[str]:
    """The yaml files under conf/ that Hydra composed for this job; [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hc = HydraConfig.get()
    roots = [("", hc.job.config_name)]
    roots += [(g, o) for g, o in hc.runtime.choices.items() if isinstance(o, str)]
    return conf_closure(REPO / "conf", roots)


def conf_closure(conf: Path, roots: list[tuple[str, str]]) -> list[str]:
    """Repo-relative yaml files of ``roots`` ((group, option) pairs under ``conf``) and
    of the defaults they include in turn (``- e2e_smollm2`` in an experiment preset, ``-
    lr_search`` in a sweeper); ``override`` entries are Hydra's chosen options, already
    among the roots. Files outside ``conf`` (plugins' configs) are left out."""
    import yaml

    found: set[Path] = set()
    todo = list(roots)
    while todo:
        group, option = todo.pop()
        path = conf / group / f"{option}.yaml"
        if path in found or not path.is_file():
            continue
        found.add(path)
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
        for entry in defaults:
            items = entry.items() if isinstance(entry, dict) else [("", entry)]
            for key, value in items:
                key = str(key).removeprefix("optional ").strip()
                if key.startswith("override") or not isinstance(value, str):
                    continue
                if value == "_self_":
                    continue
                sub = key[1:] if key.startswith("/") else "/".join(p for p in (group, key) if p)
                todo.append((sub, value))
    return sorted(p.relative_to(conf.parent).as_posix() for p in found)


def code_version(files: list[str] | None = None) -> str:
    """Hash of ``files`` (repo-relative; default :func:`code_files`): their names and
    contents, a missing file hashing as missing."""
    h = hashlib.sha256()
    for rel in sorted(code_files() if files is None else files):
        path = REPO / rel
        h.update(f"{rel}\0{file_digest(path) if path.is_file() else 'missing'}\n".encode())
    return h.hexdigest()[:16]


def is_stale(record: dict[str, Any]) -> bool:
    """True when a file the record was made from has changed since (or the record does
    not list its files: unknown code)."""
    prov = record.get("provenance") or {}
    files = prov.get("code_files")
    if not files:
        return True
    return prov.get("code_version") != code_version(files)


def provenance() -> dict[str, Any]:
    """Git commit, code version, package versions, hardware and command line."""
    import torch  # loaded by then: provenance is written after a run

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    commit, dirty = _git_state()
    files = code_files()
    return {
        "git_commit": commit,
        "git_dirty": dirty,  # of CODE_PATHS: uncommitted or untracked code
        "code_files": files,
        "code_version": code_version(files),
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
        "world_size": distributed.world_size(),  # processes that trained this run
        "distributed_type": distributed.accelerate_type(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def build_record(
    cfg: DictConfig, rid: str, status: str, result: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    """Assemble the record: identity, status, results, resolved config, provenance."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in _RUN_CONTROL:  # how it was run, not what: would split table rows
        resolved.pop(key, None)
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


def one_line(err: BaseException) -> str:
    """``<Type>: <first line of the message>`` (the Type dropped for plain messages)."""
    text = (getattr(err, "reason", None) or str(err)).strip().splitlines()
    first = text[0] if text else ""
    name = type(err).__name__
    return first if name in ("NonFiniteError", "ConfigError") and first else f"{name}: {first}"


def _jsonable(value: Any) -> Any:
    """Non-finite floats as strings: a failure record must always be writable."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def failure_record(cfg: DictConfig, rid: str, err: BaseException) -> dict[str, Any]:
    """The ``.failed.json`` record of a run that raised ``err``: never status ok."""
    step = getattr(err, "step", None)
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    record = build_record(cfg, rid, "failed", None, reason=one_line(err),
                          step=step if isinstance(step, int) else None, traceback=tb)  # fmt: skip
    return _jsonable(record)


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
