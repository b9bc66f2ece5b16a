"""Every config group composes, and bad values fail in one line before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from experiments.core.schema import ConfigError, register_configs, validate
from experiments.tasks import known_tasks
from experiments.train import run
from tests.conftest import FIXTURES, ROOT

CONF = ROOT / "conf"


def compose_cfg(overrides: list[str]):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "task", "method", "trainer", "logger", "debug"])
def test_every_option_composes_and_validates(group):
    for option in _options(group):
        cfg = compose_cfg([f"{group}={option}"])
        validate(cfg, known_tasks())


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiment_presets_compose(experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.experiment_name
    validate(cfg, known_tasks())


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_row_of_every_preset_validates(experiment):
    """Paper-row presets: each row resolves its method and per-task settings."""
    from omegaconf import OmegaConf

    cfg = compose_cfg([f"experiment={experiment}"])
    preset = OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml")
    sweep = OmegaConf.select(preset, "hydra.sweeper.params", default={}) or {}
    tasks = str(sweep.get("task", cfg.task.name)).split(",")
    # the rows the preset sweeps (its hparams may hold shared entries that are no row)
    rows = str(sweep["row"]).split(",") if "row" in sweep else list(cfg.hparams) or [None]
    # every row once and every task once (the full product adds nothing but time)
    points = [(row, tasks[0]) for row in rows] + [(rows[0], task) for task in tasks[1:]]
    for row, task in points:
        overrides = [f"experiment={experiment}", f"task={task}"]
        if row is not None:
            overrides.append(f"row={row}")
        row_cfg = compose_cfg(overrides)
        method = validate(row_cfg, known_tasks())
        assert row_cfg.train.lr > 0 and method.name


def test_unknown_row_lists_rows():
    with pytest.raises(
        ConfigError, match=r"invalid setting row: 'x' is not a row .* rows: full_ft, lora"
    ):
        validate(compose_cfg(["experiment=demo", "row=x"]), known_tasks())


def test_method_learning_rates_differ():
    assert compose_cfg(["method=lora"]).train.lr > 5 * compose_cfg(["method=full_ft"]).train.lr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.r=0", "invalid setting method: r must be an integer >= 1; got 0"),
        ("+foo=1", "unknown setting 'foo' (top-level settings are: model, task,"),
        (
            "+trainer.learning_rate=-1",
            "unknown setting 'trainer.learning_rate' (trainer has: use_cpu, precision,",
        ),
        ("+train.lrr=1", "unknown setting 'train.lrr'; did you mean train.lr?"),
        ("train.weight_decay=nan", "invalid setting train.weight_decay: must be a finite number"),
        ("task.name=boolq", "invalid setting task.name: 'boolq' is not a known task; known: mnli"),
        (
            "trainer.precision=fp8",
            "invalid setting trainer.precision: 'fp8'; allowed: fp32, fp16, bf16",
        ),
        ("train.lr=-1", "invalid setting train.lr: must be > 0"),
        ("data.max_train_samples=0", "invalid setting data.max_train_samples"),
        ("data.heldout=-5", "invalid setting data.heldout: must be > 0 or null; got -5"),
        ("+data.heldoutt=5", "unknown setting 'data.heldoutt'; did you mean data.heldout?"),
        ("model.source=s3", "invalid setting model.source: 's3'; allowed: hub, package"),
    ],
)
def test_bad_values_fail_in_one_line_before_loading(override, message, tmp_path, monkeypatch):
    import experiments.glue.task as glue_task

    def must_not_load(*args, **kwargs):
        raise AssertionError("a model or dataset was loaded before validation")

    monkeypatch.setattr(glue_task, "load_glue", must_not_load)
    monkeypatch.setattr(glue_task, "load_model", must_not_load)
    cfg = compose_cfg([override, f"paths.results_dir={tmp_path}"])
    with pytest.raises(ConfigError) as info:
        run(cfg)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_type_errors_caught_at_compose():
    with pytest.raises(Exception, match="train.epochs"):
        compose_cfg(["train.epochs=many"])


def test_cli_prints_one_line_error(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "experiments.train", "method.r=0", f"data.dir={FIXTURES / 'glue'}",
         f"paths.results_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "error: invalid setting method: r must be an integer >= 1; got 0"
    )
    assert not list(Path(tmp_path).rglob("*.json"))


def test_light_task_names_match_the_families():
    from experiments.tasks import FAMILIES, TASK_NAMES

    assert {f: tuple(fam.tasks) for f, fam in FAMILIES.items()} == TASK_NAMES


def test_settings_are_checked_without_torch():
    """Config errors come within seconds: the entry point and its checks import no torch,
    transformers or datasets (the method check, through lora, comes after them)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from experiments.train import check_settings, check_inputs, TASK_NAMES, all_task_names\n"
        f"with initialize_config_dir(version_base='1.3', config_dir={str(CONF)!r}):\n"
        f"    cfg = compose('config', overrides=['task=rte', 'data.dir={FIXTURES / 'glue'}'])\n"
        "check_settings(cfg, all_task_names(), TASK_NAMES)\n"
        "check_inputs(cfg)\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'lora') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_hub_model_offline_is_a_one_line_input_error(tmp_path, monkeypatch):
    from experiments.core.schema import check_inputs

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    glue = f"data.dir={FIXTURES / 'glue'}"
    cfg = compose_cfg(["model=roberta-base", glue])
    validate(cfg, known_tasks())  # counting parameters needs no weights
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=0.*model.pretrained=/path/to/folder"):
        check_inputs(cfg)
    with pytest.raises(ConfigError, match="model.pretrained: folder /nope/model does not exist"):
        check_inputs(compose_cfg(["model.source=hub", "model.pretrained=/nope/model", glue]))
