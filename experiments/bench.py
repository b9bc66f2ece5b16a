"""Command line: `python -m experiments.bench` (see experiments/perf/bench.py and conf/bench.yaml)."""

from experiments.perf.bench import main

if __name__ == "__main__":
    main()
