"""Command line: ``python -m experiments.latency`` (experiments/perf/latency.py, conf/latency.yaml).

The Hydra decorator lives here, not in experiments/perf/latency.py: Hydra resolves
``config_path`` against the module that holds ``@hydra.main``, so ``../conf`` from this
file finds the repository's ``conf/`` under ``python -m`` and ``make`` alike.
"""

import hydra
from omegaconf import DictConfig

from experiments.perf import latency
from experiments.perf.schema import register_configs
from experiments.perf.timing import run_cli

register_configs()  # the schema conf/latency.yaml lists first, and its presets' search path


@hydra.main(version_base="1.3", config_path="../conf", config_name="latency")
def main(cfg: DictConfig) -> None:
    run_cli(latency.run, cfg, latency.log)


if __name__ == "__main__":
    main()
