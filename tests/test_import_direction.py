"""The import direction: the tables read the jobs' records, never the reverse.

Nothing under ``experiments/`` outside ``experiments/report/`` imports
``experiments.report``, and nothing under ``lora/`` imports ``experiments`` at all. What
both sides need (method labels, number formats, record loading, learning-rate selection)
lives in ``experiments/core``; a job that wants its table built right away runs
``python -m experiments.tables`` in a child process, as ``make tables`` does.

The one exception is report's own command lines, kept at the module names the Makefile
and README use (``python -m experiments.tables``...): they import report and nothing
else of the project, and nothing imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

REPORT = "experiments.report"
#: ``python -m experiments.<name>`` front doors of experiments/report, nothing but delegation.
REPORT_COMMANDS = ("experiments/tables.py", "experiments/report_page.py", "experiments/analysis.py")
#: Calls that import a module named by a string.
_DYNAMIC = {"import_module", "__import__", "run_module"}


def module_name(path: Path, root: Path = ROOT) -> str:
    """``experiments/core/labels.py`` -> ``experiments.core.labels`` (a package: its name)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in the file (function bodies included), as
    (line, absolute name): ``import a.b`` -> ``a.b``; ``from a import b`` -> ``a`` and
    ``a.b`` (``b`` may be a module); relative imports resolved against the file's package;
    and string arguments of ``importlib.import_module``, ``__import__`` and
    ``runpy.run_module``."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0]
            if called in _DYNAMIC and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append((node.lineno, arg.value))
    return sorted(out)


def imported(path: Path, root: Path = ROOT) -> set[str]:
    """The absolute names of :func:`imports`."""
    return {name for _, name in imports(path, root)}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _offenders(paths: list[Path], forbidden: str) -> list[str]:
    """``file:line: module`` of each import statement in ``paths`` that reaches into
    ``forbidden`` (the shortest such name of the statement)."""
    out = []
    for p in paths:
        hits: dict[int, str] = {}
        for line, name in imports(p):
            if _within(name, forbidden) and (line not in hits or len(name) < len(hits[line])):
                hits[line] = name
        out += [f"{p.relative_to(ROOT)}:{line}: {name}" for line, name in sorted(hits.items())]
    return out


def test_no_module_outside_report_imports_report():
    report = ROOT / "experiments" / "report"
    paths = [p for p in _sources("experiments") + _sources("lora")
             if report not in p.parents and p.relative_to(ROOT).as_posix() not in REPORT_COMMANDS]  # fmt: skip
    assert len(paths) > 30  # the scan found the tree
    assert _offenders(paths, REPORT) == []


def test_lora_imports_nothing_of_experiments():
    paths = _sources("lora")
    assert paths
    assert _offenders(paths, "experiments") == []


def test_report_commands_only_delegate_and_nothing_imports_them():
    commands = {module_name(ROOT / c) for c in REPORT_COMMANDS}
    for c in REPORT_COMMANDS:
        project = {n for n in imported(ROOT / c) if _within(n, "experiments") or _within(n, "lora")}
        assert project and all(_within(n, REPORT) for n in project), c
    everything = _sources("experiments") + _sources("lora")
    assert [o for c in sorted(commands) for o in _offenders(everything, c)] == []


@pytest.mark.parametrize(
    ("where", "source", "found"),
    [
        ("experiments/perf/x.py", "import experiments.report.tables\n", True),
        ("experiments/perf/x.py", "from experiments import report\n", True),
        ("experiments/perf/x.py", "from experiments.report.labels import X\n", True),
        ("experiments/perf/x.py", "from ..report import labels\n", True),
        ("experiments/perf/x.py", "from ..report.common import f\n", True),
        ("experiments/x.py", "from .report import common\n", True),
        ("experiments/x.py", "from . import report\n", True),
        ("experiments/core/__init__.py", "from ..report import load\n", True),
        ("experiments/perf/x.py", "def f():\n    from experiments.report import page\n", True),
        ("experiments/perf/x.py", "import importlib\nimportlib.import_module('experiments.report')\n",
         True),
        ("experiments/perf/x.py", "from experiments import reporting, core\n", False),
        ("experiments/perf/x.py", "from ..core.labels import fmt_params\n", False),
        ("experiments/perf/x.py", "from . import report\n", False),  # experiments.perf.report
        ("experiments/perf/x.py", "cmd = ['-m', 'experiments.tables']\n", False),  # a process
    ],
)  # fmt: skip
def test_the_scan_resolves_every_form_of_import(tmp_path, where, source, found):
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    assert any(_within(n, REPORT) for n in imported(path, tmp_path)) is found
