"""METEOR 1.5 through ``pycocoevalcap``, shared by the E2E and WebNLG/DART scorers.

``pycocoevalcap.meteor.Meteor`` runs the METEOR 1.5 jar (``-l en -norm``, the flags of
both the E2E script ``measure_scores.py`` and WebNLG's ``GenerationEval``) as a Java
subprocess spoken to over stdin. :func:`meteor_scorer` gives it a clean lifetime: the
JVM is always stopped, and a crashed jar becomes one ``RuntimeError`` with its last
stderr line instead of a hang or a broken-pipe traceback.

Errors: ``RuntimeError`` when ``java`` is not on PATH (:func:`require_java`) or the jar
fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycocoevalcap.meteor.meteor import Meteor


def require_java(needs: str) -> None:
    """Raise ``RuntimeError("java not found on PATH: <needs>")`` when there is no ``java``.

    Args:
        needs: what needs it and which version, e.g. ``"METEOR 1.5 needs Java 8+"``.
    """
    if shutil.which("java") is None:
        raise RuntimeError(f"java not found on PATH: {needs}")


@contextmanager
def meteor_scorer() -> Iterator[Meteor]:
    """pycocoevalcap's METEOR 1.5 scorer; its JVM is stopped on exit.

    Raises:
        RuntimeError: the jar died during scoring (broken pipe or an unparsable reply);
            the message carries its last stderr line.
    """
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    jvm = scorer.meteor_p
    try:
        yield scorer
    except (OSError, ValueError) as err:
        jvm.kill()
        detail = jvm.stderr.read().decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"METEOR (java) failed: {detail[-1] if detail else err}") from err
    finally:
        # Meteor.__del__ waits for a lock that a failed compute_score never releases, and
        # would report a broken pipe when closing stdin after a crash.
        if scorer.lock.locked():
            scorer.lock.release()
        jvm.kill()
        jvm.wait()
        with suppress(OSError):
            jvm.stdin.close()


def meteor_score(gts: Mapping[Any, Sequence[str]], res: Mapping[Any, Sequence[str]]) -> float:
    """System-level METEOR 1.5 (a fraction in [0, 1]) of ``res`` against ``gts``.

    Args:
        gts: id -> references (one text each, no line breaks: the jar's protocol is
            line-based).
        res: id -> ``[output]``, the same ids.

    Raises:
        RuntimeError: see :func:`meteor_scorer`.
    """
    with meteor_scorer() as scorer:
        value, _ = scorer.compute_score(dict(gts), dict(res))
    return float(value)
