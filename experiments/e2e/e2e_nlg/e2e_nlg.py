"""E2E NLG Challenge metrics as a local Hugging Face ``evaluate`` module.

Load it offline with ``experiments.e2e.metrics.load_metric()`` (or ``evaluate.load`` on this
folder). ``evaluate`` copies this file into its modules cache before importing it, so it must
import the installed ``experiments`` package rather than a neighbouring file.
"""

import datasets
import evaluate

from experiments.e2e.metrics import compute_e2e_metrics

_CITATION = """\
@inproceedings{dusek2020evaluating,
  title={Evaluating the state-of-the-art of End-to-End Natural Language Generation:
         The {E2E} {NLG} Challenge},
  author={Du{\\v{s}}ek, Ond{\\v{r}}ej and Novikova, Jekaterina and Rieser, Verena},
  booktitle={Computer Speech \\& Language},
  volume={59},
  pages={123--156},
  year={2020}
}
"""

_DESCRIPTION = """\
The five E2E NLG Challenge scores as printed by e2e-metrics' `measure_scores.py -p`: BLEU and
NIST (mteval-v13a, case-insensitive, corpus level), METEOR 1.5, ROUGE-L and CIDEr (MS-COCO
caption scorers after the PTB tokenizer). Used for Table 3 of the LoRA paper (Hu et al. 2021).
Needs a Java runtime.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of str, one system output per instance.
    references: list of list of str (several references per instance, any number >= 1 each),
        or list of str (one reference per instance).
Returns:
    dict with "BLEU", "METEOR", "ROUGE_L" (fractions in [0, 1]), "NIST" and "CIDEr" (raw).
Examples:
    >>> from experiments.e2e.metrics import load_metric
    >>> e2e = load_metric()
    >>> scores = e2e.compute(
    ...     predictions=["The Wren is a pub by the river."],
    ...     references=[["The Wren is a pub near the river.", "Near the river is The Wren pub."]],
    ... )
    >>> round(scores["BLEU"], 4), sorted(scores)
    (0.5969, ['BLEU', 'CIDEr', 'METEOR', 'NIST', 'ROUGE_L'])
"""

_STRING = datasets.Value("string")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class E2eNlg(evaluate.Metric):
    """BLEU, NIST, METEOR, ROUGE_L and CIDEr on the official E2E script's scale."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": _STRING, "references": datasets.Sequence(_STRING)}
                ),
                datasets.Features({"predictions": _STRING, "references": _STRING}),
            ],
            codebase_urls=["https://github.com/tuetschek/e2e-metrics"],
            reference_urls=["https://arxiv.org/abs/1901.07931"],
        )

    def _compute(
        self, predictions: list[str], references: list[list[str]] | list[str]
    ) -> dict[str, float]:
        groups = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
        return compute_e2e_metrics(groups, list(predictions))
