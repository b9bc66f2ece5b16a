"""Print the three parameter counts of any model and method, without loading weights.

    python -m experiments.params model=roberta-base method=lora
    python -m experiments.params model=gpt2-medium task=e2e method=lora method.r=4

The model is built from ``model.arch`` (the dimensions in ``conf/model/*.yaml``) on
the meta device, so this runs offline in seconds even for DeBERTa-XXL; use it to size
budgets as the paper's Table 5 does.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.core.labels import fmt_params, method_label
from experiments.core.models import build_from_arch
from experiments.core.schema import ConfigError, register_configs, validate
from experiments.tasks import known_tasks
from lora.params import count_parameters

register_configs()


def count(cfg: DictConfig) -> dict[str, int]:
    """Counts for the composed config: ``{"method", "trainable", "total"}``.

    Raises:
        ConfigError: a bad setting.
    """
    tasks = known_tasks()
    method = validate(cfg, tasks)
    spec = tasks[cfg.task.name]
    num_labels = getattr(spec, "num_labels", None)
    if num_labels is not None:
        model = build_from_arch(cfg.model, "sequence_classification", num_labels=num_labels)
    else:
        model = build_from_arch(cfg.model, "causal_lm")
    method.apply(model)
    return count_parameters(model, method.modules_to_save).as_dict()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        counts = count(cfg)
    except (ConfigError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    label = method_label({"name": cfg.method.name, **cfg.method})
    print(f"{cfg.model.name} / {cfg.task.name} / {label}")
    print(f"  method (as the paper counts, no head): {counts['method']:>15,}  "
          f"({fmt_params(counts['method'])})")  # fmt: skip
    print(f"  trainable (with task head):            {counts['trainable']:>15,}")
    print(f"  total:                                 {counts['total']:>15,}")


if __name__ == "__main__":
    main()
