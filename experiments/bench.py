"""Command line: ``python -m experiments.bench`` (experiments/perf/bench.py, conf/bench.yaml).

The Hydra decorator lives here, not in experiments/perf/bench.py: Hydra resolves
``config_path`` against the module that holds ``@hydra.main``, so ``../conf`` from this
file finds the repository's ``conf/`` under ``python -m`` and ``make`` alike.
"""

import hydra
from omegaconf import DictConfig

from experiments.perf import bench
from experiments.perf.schema import register_configs
from experiments.perf.timing import run_cli

register_configs()  # the schema conf/bench.yaml lists first, and its presets' search path


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    run_cli(bench.run, cfg, bench.log)


if __name__ == "__main__":
    main()
