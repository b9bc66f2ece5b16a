"""The paper's published numbers, to print beside ours (Hu et al. 2021).

Source: /work/shared/reference/paper.md §1.2 (Table 2, GLUE dev, ×100, median of 5
seeds), §1.3 (Table 3, E2E) and §3 (Table 1, inference latency). ``prior`` marks the ``*`` rows the paper copied
from earlier work; ``houlsby_setup`` marks its ``†`` rows (sequence length 128,
fixed batch size, no MNLI initialisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GLUE_COLUMNS = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table.

    Attributes:
        model: harness model name (``roberta-base`` ...).
        method: harness method name (``lora``, ``full_ft`` ...).
        label: the paper's row label.
        params: the paper's "# Trainable Parameters" as printed.
        scores: column -> value as printed (×100 for GLUE; BLEU/MET/ROUGE-L ×100 for E2E).
        prior: ``*`` row (numbers from prior work).
        houlsby_setup: ``†`` row.
    """

    model: str
    method: str
    label: str
    params: str
    scores: dict[str, float] = field(default_factory=dict)
    prior: bool = False
    houlsby_setup: bool = False

    @property
    def display(self) -> str:
        return self.label + ("*" if self.prior else "") + ("†" if self.houlsby_setup else "")


def _glue(values: str) -> dict[str, float]:
    return dict(zip(GLUE_COLUMNS, (float(v) for v in values.split()), strict=True))


TABLE2: list[PaperRow] = [
    PaperRow("roberta-base", "full_ft", "RoB-base (FT)", "125.0M",
             _glue("87.6 94.8 90.2 63.6 92.8 91.9 78.7 91.2"), prior=True),
    PaperRow("roberta-base", "bitfit", "RoB-base (BitFit)", "0.1M",
             _glue("84.7 93.7 92.7 62.0 91.8 84.0 81.5 90.8"), prior=True),
    PaperRow("roberta-base", "adapter_d", "RoB-base (AdptD)", "0.3M",
             _glue("87.1 94.2 88.5 60.8 93.1 90.2 71.5 89.7"), prior=True),
    PaperRow("roberta-base", "adapter_d", "RoB-base (AdptD)", "0.9M",
             _glue("87.3 94.7 88.4 62.6 93.0 90.6 75.9 90.3"), prior=True),
    PaperRow("roberta-base", "lora", "RoB-base (LoRA)", "0.3M",
             _glue("87.5 95.1 89.7 63.4 93.3 90.8 86.6 91.5")),
    PaperRow("roberta-large", "full_ft", "RoB-large (FT)", "355.0M",
             _glue("90.2 96.4 90.9 68.0 94.7 92.2 86.6 92.4"), prior=True),
    PaperRow("roberta-large", "lora", "RoB-large (LoRA)", "0.8M",
             _glue("90.6 96.2 90.9 68.2 94.9 91.6 87.4 92.6")),
    PaperRow("roberta-large", "adapter_p", "RoB-large (AdptP)", "3.0M",
             _glue("90.2 96.1 90.2 68.3 94.8 91.9 83.8 92.1"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_p", "RoB-large (AdptP)", "0.8M",
             _glue("90.5 96.6 89.7 67.8 94.8 91.7 80.1 91.9"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_h", "RoB-large (AdptH)", "6.0M",
             _glue("89.9 96.2 88.7 66.5 94.7 92.1 83.4 91.0"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_h", "RoB-large (AdptH)", "0.8M",
             _glue("90.3 96.3 87.7 66.3 94.7 91.5 72.9 91.5"), houlsby_setup=True),
    PaperRow("roberta-large", "lora", "RoB-large (LoRA)", "0.8M",
             _glue("90.6 96.2 90.2 68.2 94.8 91.6 85.2 92.3"), houlsby_setup=True),
    PaperRow("deberta-v2-xxlarge", "full_ft", "DeB-XXL (FT)", "1500.0M",
             _glue("91.8 97.2 92.0 72.0 96.0 92.7 93.9 92.9"), prior=True),
    PaperRow("deberta-v2-xxlarge", "lora", "DeB-XXL (LoRA)", "4.7M",
             _glue("91.9 96.9 92.6 72.4 96.0 92.9 94.9 93.0")),
]  # fmt: skip

E2E_COLUMNS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")


def _e2e(values: str) -> dict[str, float]:
    return dict(zip(E2E_COLUMNS, (float(v) for v in values.split()), strict=True))


TABLE3: list[PaperRow] = [
    PaperRow("gpt2-medium", "full_ft", "GPT-2 M (FT)", "354.92M", _e2e("68.2 8.62 46.2 71.0 2.47"), prior=True),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "0.37M", _e2e("66.3 8.41 45.0 69.8 2.40"), prior=True),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "11.09M", _e2e("68.9 8.71 46.1 71.3 2.47"), prior=True),
    PaperRow("gpt2-medium", "adapter_h", "GPT-2 M (AdapterH)", "11.09M", _e2e("67.3 8.50 46.0 70.7 2.44")),
    PaperRow("gpt2-medium", "ft_top2", "GPT-2 M (FT^Top2)", "25.19M", _e2e("68.1 8.59 46.0 70.8 2.41"), prior=True),
    PaperRow("gpt2-medium", "prefix_layer", "GPT-2 M (PreLayer)", "0.35M", _e2e("69.7 8.81 46.1 71.4 2.49"), prior=True),
    PaperRow("gpt2-medium", "lora", "GPT-2 M (LoRA)", "0.35M", _e2e("70.4 8.85 46.8 71.8 2.53")),
    PaperRow("gpt2-large", "full_ft", "GPT-2 L (FT)", "774.03M", _e2e("68.5 8.78 46.0 69.9 2.45"), prior=True),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "0.88M", _e2e("69.1 8.68 46.3 71.4 2.49")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "23.00M", _e2e("68.9 8.70 46.1 71.3 2.45")),
    PaperRow("gpt2-large", "prefix_layer", "GPT-2 L (PreLayer)", "0.77M", _e2e("70.3 8.85 46.2 71.7 2.47"), prior=True),
    PaperRow("gpt2-large", "lora", "GPT-2 L (LoRA)", "0.77M", _e2e("70.4 8.89 46.8 72.0 2.47")),
]  # fmt: skip


def paper_rows(table: list[PaperRow], model: str, method: str) -> list[PaperRow]:
    """Rows of ``table`` for a harness (model, method) pair; empty when none match."""
    return [row for row in table if row.model == model and row.method == method]


#: Paper Table 1 (§3; NVIDIA Quadro RTX 8000, 100 trials, GPT-2 medium): (batch, seq) ->
#: adapter budget |Θ|, then (mean ms, ±, overhead %) per row; "base" is "Fine-Tune/LoRA".
PAPER_TABLE1: dict[tuple[int, int], dict[str, Any]] = {
    (32, 512): {
        "budget": 500_000,
        "base": (1449.4, 0.8, 0.0),
        "adapter_l": (1482.0, 1.0, 2.2),
        "adapter_h": (1492.2, 1.0, 3.0),
    },
    (16, 256): {
        "budget": 11_000_000,
        "base": (338.0, 0.6, 0.0),
        "adapter_l": (354.8, 0.5, 5.0),
        "adapter_h": (366.3, 0.5, 8.4),
    },
    (1, 128): {
        "budget": 11_000_000,
        "base": (19.8, 2.7, 0.0),
        "adapter_l": (23.9, 2.1, 20.7),
        "adapter_h": (25.8, 2.2, 30.3),
    },
}
