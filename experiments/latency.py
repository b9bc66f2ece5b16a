"""Command line: `python -m experiments.latency` (see experiments/perf/latency.py and conf/latency.yaml)."""

from experiments.perf.latency import main

if __name__ == "__main__":
    main()
