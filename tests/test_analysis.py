"""lora.analysis: Eq. 4 subspace similarity and Table 7's projections, on matrices
whose answers are known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from lora.analysis import (
    amplification_factor,
    effective_rank,
    intruder_dimensions,
    lora_delta,
    projected_norm,
    right_singular_vectors,
    subspace_similarity,
    subspace_similarity_grid,
)


def _rows(d: int, pairs: list[tuple[int, float]]) -> torch.Tensor:
    """A matrix whose k-th row is scale_k · e_{index_k} in R^d (singular values = scales)."""
    a = torch.zeros(len(pairs), d)
    for k, (index, scale) in enumerate(pairs):
        a[k, index] = scale
    return a


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


def test_identical_subspaces_give_one():
    a = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    for i in range(1, 9):
        assert subspace_similarity(a, a, i, i) == pytest.approx(1.0, abs=1e-12)
    # a subspace inside a larger one also gives 1: top-2 of a vs top-8 of a
    assert subspace_similarity(a, a, 2, 8) == pytest.approx(1.0, abs=1e-12)


def test_orthogonal_subspaces_give_zero():
    a1 = _rows(12, [(0, 3.0), (1, 2.0), (2, 1.0)])
    a2 = _rows(12, [(5, 4.0), (6, 3.0), (7, 2.0), (8, 1.0)])
    assert subspace_similarity(a1, a2, 3, 4) == 0.0
    assert torch.count_nonzero(subspace_similarity_grid(a1, a2)) == 0


def test_partial_overlap_known_values():
    # A_1's top directions: e0, e1. A_2's: e0, e2, e1 (singular values 5 > 4 > 1).
    a1 = _rows(6, [(0, 3.0), (1, 2.0)])
    a2 = _rows(6, [(0, 5.0), (2, 4.0), (1, 1.0)])
    assert subspace_similarity(a1, a2, 1, 1) == pytest.approx(1.0)
    assert subspace_similarity(a1, a2, 2, 1) == pytest.approx(1.0)  # e0 in span{e0, e1}
    assert subspace_similarity(a1, a2, 2, 2) == pytest.approx(0.5)  # {e0,e1} vs {e0,e2}
    assert subspace_similarity(a1, a2, 2, 3) == pytest.approx(1.0)
    # the grid agrees entry by entry with the scalar function
    grid = subspace_similarity_grid(a1, a2)
    assert grid.shape == (2, 3) and grid.dtype == torch.float64
    expected = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.5, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(grid, expected)


def test_angle_between_single_directions_gives_cos_squared():
    theta = 0.3
    a1 = torch.tensor([[1.0, 0.0, 0.0]])
    a2 = torch.tensor([[math.cos(theta), math.sin(theta), 0.0]])
    assert subspace_similarity(a1, a2, 1, 1) == pytest.approx(math.cos(theta) ** 2)


def test_invariant_to_scaling_and_row_rotation():
    g = torch.Generator().manual_seed(1)
    a1 = torch.randn(8, 40, generator=g, dtype=torch.float64)
    a2 = torch.randn(16, 40, generator=g, dtype=torch.float64)
    base = subspace_similarity_grid(a1, a2)
    # Q·A keeps A's right-singular vectors (A = UΣVᵀ -> (QU)ΣVᵀ), so every entry stays
    rotated = subspace_similarity_grid(7.5 * _orthogonal(8, 2) @ a1, 0.01 * _orthogonal(16, 3) @ a2)
    torch.testing.assert_close(rotated, base, atol=1e-10, rtol=0)
    # and A against a rotated, rescaled copy of itself matches on every i = j
    grid = subspace_similarity_grid(a1, 3.0 * _orthogonal(8, 4) @ a1)
    torch.testing.assert_close(grid.diagonal(), torch.ones(8, dtype=torch.float64))


def test_grid_range_shape_and_dtype_independence():
    g = torch.Generator().manual_seed(5)
    a1, a2 = torch.randn(8, 64, generator=g), torch.randn(64, 64, generator=g)
    grid = subspace_similarity_grid(a1, a2)
    assert grid.shape == (8, 64)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    # A_2 spans all of R^64, so its top-64 contains A_1's subspace
    assert grid[:, -1].tolist() == pytest.approx([1.0] * 8)
    grid16 = subspace_similarity_grid(a1.to(torch.bfloat16).float(), a2)
    assert grid16.shape == grid.shape
    assert subspace_similarity(a1, a2, 3, 5) == pytest.approx(grid[2, 4].item())


def test_random_subspaces_near_their_expected_overlap():
    # E[φ(i, j)] = max(i, j) / d for independent random subspaces of R^d
    g = torch.Generator().manual_seed(6)
    d, trials = 200, 50
    values = [
        subspace_similarity(torch.randn(4, d, generator=g), torch.randn(20, d, generator=g), 4, 20)
        for _ in range(trials)
    ]
    assert sum(values) / trials == pytest.approx(20 / d, rel=0.15)


@pytest.mark.parametrize(
    ("a1", "a2", "i", "j", "match"),
    [
        (torch.ones(8), torch.ones(2, 8), 1, 1, "A_1 must be a non-empty 2-D"),
        (torch.ones(2, 8), torch.ones(2, 9), 1, 1, "same number of columns"),
        (torch.ones(2, 8), torch.ones(2, 8), 0, 1, r"i must be an integer in \[1, 2\]"),
        (torch.ones(2, 8), torch.ones(3, 8), 1, 4, r"j must be an integer in \[1, 3\]"),
        (torch.ones(2, 8), torch.ones(3, 8), 1.0, 1, "i must be an integer"),
        (torch.full((2, 8), float("nan")), torch.ones(3, 8), 1, 1, "A_1 must be finite"),
    ],
)
def test_subspace_similarity_bad_input(a1, a2, i, j, match):
    with pytest.raises(ValueError, match=match):
        subspace_similarity(a1, a2, i, j)


def test_right_singular_vectors_order_and_shape():
    a = _rows(5, [(3, 1.0), (1, 4.0)])  # largest singular value on e1
    u = right_singular_vectors(a)
    assert u.shape == (5, 2)
    assert u[:, 0].abs().tolist() == pytest.approx([0, 1, 0, 0, 0])
    assert u[:, 1].abs().tolist() == pytest.approx([0, 0, 0, 1, 0])


def test_projected_norm_known_values():
    w = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    # W's own top-2 directions keep σ1, σ2: sqrt(16 + 9) = 5
    assert projected_norm(w, w, 2) == pytest.approx(5.0)
    # all of a square W: its Frobenius norm sqrt(30)
    assert projected_norm(w, torch.eye(4) + torch.diag(torch.arange(4.0)), 4) == pytest.approx(
        math.sqrt(30)
    )
    # M = e3 e4ᵀ picks W[2, 3]
    w2 = torch.arange(20.0).reshape(4, 5)
    m = torch.zeros(4, 5)
    m[2, 3] = -0.1  # sign and scale of M do not matter
    assert projected_norm(w2, m, 1) == pytest.approx(13.0)
    # a direction W does not touch gives 0
    m2 = torch.zeros(4, 4)
    m2[0, 1] = 1.0
    assert projected_norm(w, m2, 1) == 0.0


def test_projected_norm_never_exceeds_frobenius_norm():
    g = torch.Generator().manual_seed(7)
    w, m = torch.randn(30, 20, generator=g), torch.randn(30, 20, generator=g)
    norms = [projected_norm(w, m, r) for r in (1, 5, 20)]
    assert norms == sorted(norms)  # a larger subspace holds more of W
    # r=20 still leaves 10 of the 30 output directions out
    assert norms[-1] < torch.linalg.matrix_norm(w.double()).item()
    w, m = w[:20], m[:20]  # square: the full subspace holds all of W
    assert projected_norm(w, m, 20) == pytest.approx(torch.linalg.matrix_norm(w.double()).item())


def test_projected_norm_bad_input():
    with pytest.raises(ValueError, match="W and M must have the same shape"):
        projected_norm(torch.ones(3, 4), torch.ones(4, 3), 1)
    with pytest.raises(ValueError, match=r"r must be an integer in \[1, 3\]"):
        projected_norm(torch.ones(3, 4), torch.ones(3, 4), 4)
    with pytest.raises(ValueError, match="M must be a non-empty 2-D"):
        projected_norm(torch.ones(3, 4), torch.ones(3, 4, 1), 1)


def test_amplification_factor_known_value():
    w = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    delta = torch.zeros(4, 4)
    delta[3, 3] = 0.5  # ΔW amplifies W's weakest direction, σ = 1
    assert amplification_factor(delta, w, 1) == pytest.approx(0.5)
    delta2 = torch.zeros(4, 4)
    delta2[0, 0], delta2[1, 1] = 6.0, 8.0  # ‖ΔW‖ = 10; W there: sqrt(16 + 9) = 5
    assert amplification_factor(delta2, w, 2) == pytest.approx(2.0)


def test_amplification_factor_undefined_raises():
    w = torch.diag(torch.tensor([4.0, 3.0, 0.0]))
    delta = torch.zeros(3, 3)
    delta[2, 2] = 1.0
    with pytest.raises(ValueError, match="W must have a component"):
        amplification_factor(delta, w, 1)


def test_lora_delta():
    a = torch.tensor([[1.0, 2.0, 3.0]])  # r=1, d_in=3
    b = torch.tensor([[1.0], [-1.0]])  # d_out=2
    expected = torch.tensor([[2.0, 4.0, 6.0], [-2.0, -4.0, -6.0]], dtype=torch.float64)
    torch.testing.assert_close(lora_delta(a, b, 2.0), expected)
    with pytest.raises(ValueError, match="lora_B must have as many columns"):
        lora_delta(a, torch.ones(2, 2), 1.0)


def _with_spectrum(d_out: int, d_in: int, sigma: list[float], seed: int) -> torch.Tensor:
    """U·diag(σ)·Vᵀ with random orthonormal U (d_out, len σ) and V (d_in, len σ)."""
    u, v = _orthogonal(d_out, seed)[:, : len(sigma)], _orthogonal(d_in, seed + 1)[:, : len(sigma)]
    return u @ torch.diag(torch.tensor(sigma, dtype=torch.float64)) @ v.T


def test_effective_rank_known_spectrum():
    delta = _with_spectrum(12, 10, [3.0, 2.0, 1.0], seed=10)  # ‖ΔW‖² = 9 + 4 + 1 = 14
    assert effective_rank(delta, 0.5) == 1  # 9 ≥ 7
    assert effective_rank(delta) == 2  # 9 < 12.6 ≤ 13
    assert effective_rank(delta, 0.95) == 3  # 13 < 13.3
    assert effective_rank(delta, 1.0) == 3  # the numerical zeros are not counted
    assert effective_rank(delta.float()) == 2  # the input dtype does not matter
    assert effective_rank(torch.zeros(5, 4)) == 0
    # exactly half of ‖ΔW‖² = 8 is already held by σ_1² = 4: ≥, not >
    assert effective_rank(torch.diag(torch.tensor([2.0, 2.0])), 0.5) == 1


def test_effective_rank_of_a_lora_update_is_at_most_r():
    g = torch.Generator().manual_seed(11)
    delta = lora_delta(torch.randn(3, 40, generator=g), torch.randn(30, 3, generator=g), 2.0)
    assert 1 <= effective_rank(delta, 0.99) <= 3
    assert effective_rank(delta, 1.0) == 3
    # a full-rank matrix of equal singular values needs all of them for energy 1
    assert effective_rank(_orthogonal(6, 12)) == 6


def test_intruder_dimensions_none_for_w0_and_its_rescaling():
    w0 = _with_spectrum(20, 8, [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], seed=13)
    assert intruder_dimensions(w0, w0, k=8) == 0
    u, _, vh = torch.linalg.svd(w0, full_matrices=False)
    rescaled = u @ torch.diag(torch.tensor([0.5, 9.0, 3.0, 20.0, 1.0, 7.0, 2.0, 4.0],
                                           dtype=torch.float64)) @ vh  # fmt: skip
    assert intruder_dimensions(w0, rescaled, k=8) == 0


def test_intruder_dimensions_counts_an_orthogonal_direction():
    w0 = _with_spectrum(20, 8, [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], seed=14)
    u0, _, vh0 = torch.linalg.svd(w0, full_matrices=False)
    # a unit vector outside W0's column space (8 of the 20 output dimensions)
    q, _ = torch.linalg.qr(torch.cat([u0, torch.randn(20, 1, dtype=torch.float64)], dim=1))
    u = q[:, 8]
    assert (u0.T @ u).tolist() == pytest.approx([0.0] * 8, abs=1e-12)
    # along W0's weakest input direction the SVD is exact: W0's other 7 left vectors stay
    # and the new top one is (1·u0_8 + 10·u) / √101, with |cos| ≤ 1/√101 ≈ 0.0995 to W0
    tuned = w0 + 10.0 * torch.outer(u, vh0[7])
    assert intruder_dimensions(w0, tuned, k=1) == 1
    assert intruder_dimensions(w0, tuned, k=8) == 1
    assert intruder_dimensions(w0, tuned, k=8, eps=0.05) == 0  # 0.0995 is not below 0.05
    # along a random input direction the large new top direction is still an intruder
    v = torch.randn(8, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    assert intruder_dimensions(w0, w0 + 100.0 * torch.outer(u, v / v.norm()), k=1) == 1
    # W0's thin SVD: with one spare output dimension (9 x 8) the full SVD's extra vector
    # would be ±u itself, and the new direction would wrongly match it
    w0 = _with_spectrum(9, 8, [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0], seed=16)
    u0, _, vh0 = torch.linalg.svd(w0, full_matrices=False)
    q, _ = torch.linalg.qr(torch.cat([u0, torch.randn(9, 1, dtype=torch.float64)], dim=1))
    assert intruder_dimensions(w0, w0 + 10.0 * torch.outer(q[:, 8], vh0[7]), k=8) == 1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: effective_rank(torch.ones(3)), "delta must be a non-empty 2-D"),
        (lambda: effective_rank(torch.ones(3, 3), 0.0), r"energy must be a number in \(0, 1\]"),
        (lambda: effective_rank(torch.ones(3, 3), 1.5), "energy must be a number"),
        (lambda: effective_rank(torch.ones(3, 3), True), "energy must be a number"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(3, 4)), "same shape"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(4, 3), k=0),
         r"k must be an integer in \[1, 3\]"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(4, 3), k=4), "k must be"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(4, 3), k=1, eps=0),
         r"eps must be a number in \(0, 1\]"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(4, 3), k=1, eps=1.1),
         "eps must be a number"),
        (lambda: intruder_dimensions(torch.ones(4, 3), torch.ones(4), k=1), "w_tuned must be"),
    ],
)  # fmt: skip
def test_spectral_diagnostics_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- harness side
# experiments/report/analysis.py on fake records and adapters (no model is loaded).


def _fake_run(tmp_path, r: int, seed: int, d: int = 80, layers: int = 2):
    """A record and the adapter folder its run would have saved, BERT names."""
    import json

    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(100 * r + seed)
    rid = f"fake-r{r}-s{seed}"
    tensors = {}
    for layer in range(layers):
        for name in ("query", "value"):
            key = f"bert.encoder.layer.{layer}.attention.self.{name}"
            tensors[f"{key}.lora_A"] = torch.randn(r, d, generator=g)
            tensors[f"{key}.lora_B"] = torch.randn(d, r, generator=g)
    tensors["classifier.weight"] = torch.zeros(2, d)  # the head is not a LoRA factor
    folder = tmp_path / "outputs" / "runs" / "analysis_minilm" / rid / "adapter"
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"method": "lora", "r": r, "lora_alpha": 16, "base_model": {"model_type": "bert"}}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    record = {
        "schema_version": 1, "status": "ok", "experiment": "analysis_minilm", "run_id": rid,
        "seed": seed, "method": {"name": "lora", "r": r}, "metrics": {"main": 0.9},
        "config": {"paths": {"output_dir": str(tmp_path / "outputs")}, "model": {"name": "x"}},
        "provenance": {"finished_at": "2024-01-01T00:00:00+00:00"},
    }  # fmt: skip
    runs = tmp_path / "results" / "runs" / "analysis_minilm"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{rid}.json").write_text(json.dumps(record))
    return record, tensors


def test_report_builds_table7_and_figures(tmp_path, monkeypatch):
    import csv

    from experiments.report import analysis as report

    d = 80
    w = torch.diag(torch.linspace(10.0, 1.0, d))  # the fake "pretrained" W_q and W_v
    fakes = {(r, s): _fake_run(tmp_path, r, s, d) for r, s in ((4, 1), (8, 1), (64, 1), (64, 2))}
    monkeypatch.setattr(report, "_base_state", lambda _model: {
        f"bert.encoder.layer.{i}.attention.self.{n}.weight": w
        for i in range(2) for n in ("query", "value")
    })  # fmt: skip
    # replayed inits: half of each trained A, so A - A_init = A / 2 moved by exactly 1.00
    monkeypatch.setattr(report, "initial_factors", lambda ad: {
        k: 0.5 * a for k, (a, _) in ad.factors.items()
    })  # fmt: skip
    paths = report.build(tmp_path / "results", "analysis_minilm", tmp_path / "tables",
                         tmp_path / "figures", layer=1)  # fmt: skip
    names = {p.name for p in paths}
    assert {"table7.md", "table7.csv", "figure3_subspace_r8_r64.png",
            "figure4_subspace_seeds_r64.png", "subspace_similarity.md"} <= names  # fmt: skip
    with open(tmp_path / "tables" / "table7.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4  # 2 layers x r in {4, 64}
    # the r=4 row of layer 1 equals a direct computation with ΔW = (16/4)·B·A
    _, tensors = fakes[(4, 1)]
    key = "bert.encoder.layer.1.attention.self.query"
    delta = lora_delta(tensors[f"{key}.lora_A"], tensors[f"{key}.lora_B"], 16 / 4)
    row = next(x for x in rows if x["r"] == "4" and x["layer"] == "1")
    assert float(row["proj_delta"]) == pytest.approx(projected_norm(w, delta, 4))
    top4 = [10.0 - 9.0 * k / (d - 1) for k in range(4)]  # W's 4 largest singular values
    assert float(row["proj_w"]) == pytest.approx(math.sqrt(sum(x * x for x in top4)), rel=1e-5)
    assert float(row["amplification"]) == pytest.approx(amplification_factor(delta, w, 4))
    md = (tmp_path / "tables" / "table7.md").read_text()
    assert "21.67" in md and "layer 1" in md  # the paper's value beside ours
    summary = (tmp_path / "figures" / "subspace_similarity.md").read_text()
    assert "| r=8, seed 1 | 1.00 | 1.00 | 1.00 |" in summary


def test_report_names_the_command_for_a_missing_adapter(tmp_path):
    import shutil

    from experiments.report import analysis as report

    for r, s in ((4, 1), (8, 1), (64, 1), (64, 2)):
        _fake_run(tmp_path, r, s)
    shutil.rmtree(tmp_path / "outputs" / "runs" / "analysis_minilm" / "fake-r8-s1")
    with pytest.raises(
        report.MissingAdapterError, match=r"fake-r8-s1\.json && make analysis RESULTS="
    ):
        report.build(tmp_path / "results", "analysis_minilm", tmp_path / "t", tmp_path / "f")
