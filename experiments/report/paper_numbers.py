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


#: Paper Table 5 (§7.1; GPT-3 175B, 18M-parameter budget): the adapted matrices and r of
#: each column, then per dataset (with the caption's seed fluctuation) accuracy in %.
PAPER_TABLE5_COLUMNS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("q",), 8), (("k",), 8), (("v",), 8), (("o",), 8),
    (("q", "k"), 4), (("q", "v"), 4), (("q", "k", "v", "o"), 2),
)  # fmt: skip
PAPER_TABLE5: dict[str, tuple[float, ...]] = {
    "WikiSQL (±0.5%)": (70.4, 70.0, 73.0, 73.2, 71.4, 73.7, 73.7),
    "MultiNLI (±0.1%)": (91.0, 90.8, 91.0, 91.3, 91.3, 91.3, 91.7),
}

#: Paper Table 6 (§7.2; GPT-3 175B): dataset -> adapted matrices -> accuracy (%) at each
#: r of :data:`PAPER_TABLE6_RANKS`.
PAPER_TABLE6_RANKS = (1, 2, 4, 8, 64)
PAPER_TABLE6: dict[str, dict[tuple[str, ...], tuple[float, ...]]] = {
    "WikiSQL (±0.5%)": {
        ("q",): (68.8, 69.6, 70.5, 70.4, 70.0),
        ("q", "v"): (73.4, 73.3, 73.7, 73.8, 73.5),
        ("q", "k", "v", "o"): (74.1, 73.7, 74.0, 74.0, 73.9),
    },
    "MultiNLI (±0.1%)": {
        ("q",): (90.7, 90.9, 91.1, 90.7, 90.7),
        ("q", "v"): (91.3, 91.4, 91.3, 91.6, 91.4),
        ("q", "k", "v", "o"): (91.2, 91.7, 91.7, 91.5, 91.4),
    },
}

#: Paper Table 16 (App. F.3; GPT-3 175B, MNLI-matched validation accuracy %): training
#: examples of each column, then method -> (the paper's label, one value per column).
PAPER_TABLE16_SIZES = (100, 1_000, 10_000, 392_702)
PAPER_TABLE16: dict[str, tuple[str, tuple[float, ...]]] = {
    "full_ft": ("GPT-3 (Fine-Tune)", (60.2, 85.8, 88.9, 89.5)),
    "prefix_embed": ("GPT-3 (PrefixEmbed)", (37.6, 75.2, 79.5, 88.6)),
    "prefix_layer": ("GPT-3 (PrefixLayer)", (48.3, 82.5, 85.9, 89.6)),
    "lora": ("GPT-3 (LoRA)", (63.8, 85.6, 89.2, 91.7)),
}

#: Paper Table 18 (App. H.2; GPT-2 M on E2E after 26,000 steps, one run): r ->
#: (val loss, BLEU, NIST, METEOR, ROUGE_L, CIDEr) as printed (METEOR, ROUGE_L raw).
PAPER_TABLE18: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (1.23, 68.72, 8.7215, 0.4565, 0.7052, 2.4329),
    2: (1.21, 69.17, 8.7413, 0.4590, 0.7052, 2.4639),
    4: (1.18, 70.38, 8.8439, 0.4689, 0.7186, 2.5349),
    8: (1.17, 69.57, 8.7457, 0.4636, 0.7196, 2.5196),
    16: (1.16, 69.61, 8.7483, 0.4629, 0.7177, 2.4985),
    32: (1.16, 69.33, 8.7736, 0.4642, 0.7105, 2.5255),
    64: (1.16, 69.24, 8.7174, 0.4651, 0.7180, 2.5070),
    128: (1.16, 68.73, 8.6718, 0.4628, 0.7127, 2.5030),
    256: (1.16, 68.92, 8.6982, 0.4629, 0.7128, 2.5012),
    512: (1.16, 68.78, 8.6857, 0.4637, 0.7128, 2.5025),
    1024: (1.17, 69.37, 8.7495, 0.4659, 0.7149, 2.5090),
}

#: Paper Table 14 (WebNLG; paper.md §1.3): column "<metric>_<U|S|A>" (unseen, seen, all
#: categories), BLEU ×100, METEOR and TER fractions; means only (the ± of three rows dropped).
WEBNLG_COLUMNS = tuple(f"{m}_{s}" for m in ("BLEU", "METEOR", "TER") for s in "USA")


def _webnlg(values: str) -> dict[str, float]:
    return dict(zip(WEBNLG_COLUMNS, (float(v) for v in values.split()), strict=True))


PAPER_TABLE14: list[PaperRow] = [
    PaperRow("gpt2-medium", "full_ft", "GPT-2 M (FT)", "354M", _webnlg("27.7 64.2 46.5 .30 .45 .38 .76 .33 .53")),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "0.37M", _webnlg("45.1 54.5 50.2 .36 .39 .38 .46 .40 .43")),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "11M", _webnlg("48.3 60.4 54.9 .38 .43 .41 .45 .35 .39")),
    PaperRow("gpt2-medium", "ft_top2", "GPT-2 M (FT^Top2)", "24M", _webnlg("18.9 53.6 36.0 .23 .38 .31 .99 .49 .72")),
    PaperRow("gpt2-medium", "prefix_layer", "GPT-2 M (Prefix)", "0.35M", _webnlg("45.6 62.9 55.1 .38 .44 .41 .49 .35 .40")),
    PaperRow("gpt2-medium", "lora", "GPT-2 M (LoRA)", "0.35M", _webnlg("46.7 62.1 55.3 .38 .44 .41 .46 .33 .39")),
    PaperRow("gpt2-large", "full_ft", "GPT-2 L (FT)", "774M", _webnlg("43.1 65.3 55.5 .38 .46 .42 .53 .33 .42")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "0.88M", _webnlg("49.8 61.1 56.0 .38 .43 .41 .44 .35 .39")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "23M", _webnlg("49.2 64.7 57.7 .39 .46 .43 .46 .33 .39")),
    PaperRow("gpt2-large", "prefix_layer", "GPT-2 L (Prefix)", "0.77M", _webnlg("47.7 63.4 56.3 .39 .45 .42 .48 .34 .40")),
    PaperRow("gpt2-large", "lora", "GPT-2 L (LoRA)", "0.77M", _webnlg("48.4 64.0 57.0 .39 .45 .42 .45 .32 .38")),
]  # fmt: skip
