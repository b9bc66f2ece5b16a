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
# experiments/analysis_job.py on a tiny BERT and adapters made here; then
# experiments/report/analysis.py on a hand-made record (no model is loaded).

_TARGET_NAMES = {"q": "query", "v": "value"}


def _tiny_bert():
    """A 2-block BERT (d 96) with fixed weights, drawn without touching the global RNG."""
    from transformers import BertConfig, BertForSequenceClassification

    with torch.random.fork_rng():
        torch.manual_seed(1234)
        cfg = BertConfig(hidden_size=96, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, vocab_size=100, max_position_embeddings=32)  # fmt: skip
        return BertForSequenceClassification(cfg).eval()


def _fake_load_model(cfg, head, **kwargs):
    """``experiments.core.models.load_model`` for the tiny BERT: like the real one, the
    head's init is drawn from the global RNG (so the replayed A_init follows the seed)."""
    model = _tiny_bert()
    torch.nn.init.normal_(model.classifier.weight)
    return model


def _train_run(tmp_path, r: int, seed: int):
    """A record and the adapter its run saved: A_init as the task draws it (set_seed, load,
    apply LoRA), "trained" to A = 1.5·A_init, B random."""
    import json

    from safetensors.torch import save_file
    from transformers import set_seed

    from lora.methods import make_method

    method = {"name": "lora", "r": r, "lora_alpha": 16, "targets": ["q", "v"]}
    set_seed(seed)
    model = _fake_load_model(None, "sequence_classification")
    make_method("lora", **{k: v for k, v in method.items() if k != "name"}).apply(model)
    g = torch.Generator().manual_seed(10 * r + seed)
    tensors = {}
    for name, p in model.named_parameters():
        if name.endswith(".lora_A"):
            tensors[name] = 1.5 * p.detach().clone()
        elif name.endswith(".lora_B"):
            tensors[name] = torch.randn(p.shape, generator=g)
    rid = f"tiny-r{r}-s{seed}"
    folder = tmp_path / "outputs" / "runs" / "analysis_minilm" / rid / "adapter"
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"method": "lora", "r": r, "lora_alpha": 16, "base_model": {"model_type": "bert"}}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    record = {
        "schema_version": 1, "status": "ok", "experiment": "analysis_minilm", "run_id": rid,
        "model": "tiny-bert", "task": "sst2", "seed": seed, "method": method,
        "metrics": {"main": 0.9, "main_metric": "accuracy"},
        "config": {"paths": {"output_dir": str(tmp_path / "outputs")}, "row": f"r{r}_s{seed}",
                   "model": {"name": "tiny-bert", "arch": {"hidden_size": 96}},
                   "method": method},
        "provenance": {"finished_at": "2024-01-01T00:00:00+00:00", "code_version": "c0"},
    }  # fmt: skip
    runs = tmp_path / "results" / "runs" / "analysis_minilm"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{rid}.json").write_text(json.dumps(record))
    return record, tensors


_SETTINGS = {"layer": None, "target": "q", "targets": ["q", "v"], "zoom": 8,
             "random_draws": 3, "random_seed": 0, "replay_init": True}  # fmt: skip
_POINTS = ((4, 1), (8, 1), (64, 1), (64, 2))


@pytest.fixture
def tiny_runs(tmp_path, monkeypatch):
    import experiments.core.models as models
    from experiments import analysis_job

    monkeypatch.setattr(models, "load_model", _fake_load_model)
    analysis_job._base_state.cache_clear()
    yield {p: _train_run(tmp_path, *p) for p in _POINTS}
    analysis_job._base_state.cache_clear()


def test_job_writes_an_analysis_record(tmp_path, tiny_runs):
    import json

    from experiments import analysis_job as job
    from experiments.core.load import load_records, problem
    from experiments.core.records import is_stale, write_atomic

    results = tmp_path / "results"
    path, record = job.build_record(results, "analysis_minilm", _SETTINGS)
    assert record is not None and path.parent.name == "analysis_minilm_subspace"
    write_atomic(path, record)
    assert not list(path.parent.glob("*.tmp"))  # the rename left no temporary file
    (done,) = load_records(results, "analysis_minilm_subspace")
    assert problem(done) is None and done["kind"] == "analysis" and done["status"] == "ok"
    assert done["run_id"] == path.stem and done["model"] == "tiny-bert"
    assert {s["run_id"] for s in done["source"]} == {f"tiny-r{r}-s{s}" for r, s in _POINTS}
    assert "experiments/analysis_job.py" in done["provenance"]["code_files"]
    assert not is_stale(done)
    assert done["shape"] == {"n_layers": 2, "d_in": 96}
    t7 = done["table7"]
    assert t7["layer"] == 1 and t7["ranks"] == [4, 64] and len(t7["rows"]) == 4
    # layer 1, r=4 equals a direct computation on the tiny model's W_q and the saved factors
    _, tensors = tiny_runs[(4, 1)]
    key = "bert.encoder.layer.1.attention.self.query"
    w = _tiny_bert().state_dict()[f"{key}.weight"]
    delta = lora_delta(tensors[f"{key}.lora_A"], tensors[f"{key}.lora_B"], 16 / 4)
    row = next(x for x in t7["rows"] if x["r"] == 4 and x["layer"] == 1)
    assert row["proj_delta"] == pytest.approx(projected_norm(w, delta, 4))
    assert row["amplification"] == pytest.approx(amplification_factor(delta, w, 4))
    assert row["w_norm"] == pytest.approx(torch.linalg.matrix_norm(w.double()).item())
    # the figures' grids: Eq. 4 between the saved A matrices, packed to within 1e-5
    g = next(x for x in done["figure3"]["grids"] if x["layer"] == 0 and x["target"] == "v")
    a8 = tiny_runs[(8, 1)][1]["bert.encoder.layer.0.attention.self.value.lora_A"]
    a64 = tiny_runs[(64, 1)][1]["bert.encoder.layer.0.attention.self.value.lora_A"]
    expected = subspace_similarity_grid(a8, a64).numpy()
    assert job.unpack_grid(g["grid"]).shape == (8, 64)
    assert abs(job.unpack_grid(g["grid"]) - expected).max() < 1e-5
    assert done["figure4"]["seeds"] == [1, 2] and len(done["figure4"]["grids"]) == 4
    # replayed inits: A = 1.5·A_init, so training "moved" every A by exactly 0.5
    for moved in done["init"]["moved"]:
        assert (moved["min"], moved["max"]) == (pytest.approx(0.5), pytest.approx(0.5))
    # learned parts are 0.5·A_init: the same subspaces as the inits
    for pair in done["init"]["pairs"]:
        for x in pair["rows"]:
            assert x["learned"] == pytest.approx(x["init"], abs=1e-6)
    json.dumps(done, allow_nan=False)  # strict JSON


def test_job_keeps_a_current_record_and_redoes_a_retrained_source(tmp_path, tiny_runs):
    import json

    from experiments import analysis_job as job
    from experiments.core.records import write_atomic

    results = tmp_path / "results"
    path, record = job.build_record(results, "analysis_minilm", _SETTINGS)
    write_atomic(path, record)
    assert job.build_record(results, "analysis_minilm", _SETTINGS) == (path, None)
    assert job.build_record(results, "analysis_minilm", {**_SETTINGS, "force": True})[1]
    # a different layer is another analysis (another id)
    other, rec = job.build_record(results, "analysis_minilm", {**_SETTINGS, "layer": 0})
    assert other != path and rec["table7"]["layer"] == 0
    # the r=8 run retrained: same run id, later finish, so the record is redone
    src = results / "runs" / "analysis_minilm" / "tiny-r8-s1.json"
    rec8 = json.loads(src.read_text())
    rec8["provenance"]["finished_at"] = "2025-01-01T00:00:00+00:00"
    src.write_text(json.dumps(rec8))
    again, fresh = job.build_record(results, "analysis_minilm", _SETTINGS)
    assert again == path and fresh is not None
    # and a record whose code changed since is redone too
    stale = json.loads(path.read_text())
    stale["provenance"]["code_version"] = "older"
    path.write_text(json.dumps(stale))
    assert job.build_record(results, "analysis_minilm", _SETTINGS)[1] is not None


def test_job_names_the_command_for_a_missing_adapter(tmp_path, tiny_runs):
    import shutil

    from experiments import analysis_job as job

    shutil.rmtree(tmp_path / "outputs" / "runs" / "analysis_minilm" / "tiny-r8-s1")
    with pytest.raises(job.MissingAdapterError,
                       match=r"tiny-r8-s1\.json && make analysis RESULTS="):  # fmt: skip
        job.build_record(tmp_path / "results", "analysis_minilm", _SETTINGS)


def test_job_says_which_runs_a_product_lacks(tmp_path, tiny_runs):
    from experiments import analysis_job as job

    (tmp_path / "results" / "runs" / "analysis_minilm" / "tiny-r64-s2.json").unlink()
    with pytest.raises(ValueError, match="Figure 4 needs r=64 runs with two seeds"):
        job.build_record(tmp_path / "results", "analysis_minilm", _SETTINGS)


def _hand_record(code_files=None, code_version=None) -> dict:
    """An analysis record with known numbers: 2 layers, r=4 and r=64, d_in 96."""
    from experiments.analysis_job import pack_grid
    from experiments.core.records import SCHEMA_VERSION
    from experiments.core.records import code_version as version

    files = ["experiments/analysis_job.py"] if code_files is None else code_files
    rows = [{"layer": lay, "r": r, "seed": 1, "run_id": f"run-r{r}", "proj_delta": 0.1 * r + lay,
             "proj_w": 10.0 + lay, "proj_random": 0.25 * r, "w_norm": 30.0 + lay,
             "delta_norm": 2.0 + r, "amplification": (2.0 + r) / (0.1 * r + lay)}
            for r in (4, 64) for lay in (0, 1)]  # fmt: skip

    def grids(k1, k2):
        return [{"layer": lay, "target": t, "grid": pack_grid(torch.full((k1, k2), v))}
                for lay in (0, 1) for t, v in (("q", 0.25 + lay / 2), ("v", 0.125))]  # fmt: skip

    source = [{"experiment": "analysis_minilm", "run_id": f"run-r{r}", "row": f"r{r}", "r": r,
               "seed": 1, "score": 0.8 + r / 1000, "metric": "accuracy",
               "code_version": "c", "finished_at": "2024-01-01T00:00:00+00:00"}
              for r in (4, 8, 64)]  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION, "status": "ok", "kind": "analysis",
        "run_id": "analysis_minilm_subspace-00000000", "experiment": "analysis_minilm_subspace",
        "model": "tiny-bert-x", "task": "sst2", "method": "lora",
        "model_config": {"name": "tiny-bert-x", "arch": {"hidden_size": 96}},
        "source": source, "settings": {**_SETTINGS, "random_draws": 7},
        "shape": {"n_layers": 2, "d_in": 96},
        "table7": {"layer": 1, "target": "q", "ranks": [4, 64], "seed": 1, "rows": rows},
        "figure3": {"runs": ["run-r8", "run-r64"], "ranks": [8, 64], "seeds": [1, 1],
                    "zoom": 8, "grids": grids(8, 64)},
        "figure4": {"runs": ["run-r64", "run-r64b"], "ranks": [64, 64], "seeds": [1, 2],
                    "grids": grids(64, 64), "random": pack_grid(torch.full((64, 64), 0.5))},
        "init": None,
        "provenance": {"code_files": files, "git_commit": "abc1234def",
                       "code_version": code_version or version(files),
                       "finished_at": "2024-02-02T00:00:00+00:00"},
    }  # fmt: skip


def test_renderer_builds_table7_and_figures_from_a_record(tmp_path):
    import csv

    from experiments.core.load import problem
    from experiments.report import analysis as report

    record = _hand_record()
    assert problem(record) is None  # the reader takes it as kind "analysis"
    paths = report.write_analysis(record, tmp_path / "t", tmp_path / "f")
    assert {p.name for p in paths} == {"table7.md", "table7.csv", "subspace_similarity.md",
                                       "figure3_subspace_r8_r64.png",
                                       "figure4_subspace_seeds_r64.png"}  # fmt: skip
    assert all(p.stat().st_size > 0 for p in paths)
    with open(tmp_path / "t" / "table7.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for got, want in zip(rows, record["table7"]["rows"], strict=True):
        assert float(got["proj_delta"]) == pytest.approx(want["proj_delta"])
        assert float(got["amplification"]) == pytest.approx(want["amplification"])
        assert float(got["dev_score"]) == pytest.approx(0.8 + want["r"] / 1000)
    md = (tmp_path / "t" / "table7.md").read_text()
    # the layer-1 row: ΔW_q, W_q, Random at r=4 then r=64, from the record
    assert "| ours, tiny-bert-x layer 1 | 1.40 | 11.00 | 1.00 | 7.40 | 11.00 | 16.00 |" in md
    assert "| amplification ‖ΔW_q‖_F / ‖UᵀW_qV‖_F | 4.29 | 8.92 |" in md
    assert "of tiny-bert-x's 2 blocks" in md and "mean of 7 draws" in md
    assert "to tiny-bert-x's 96" in md and "SST-2 dev accuracy 80.4" in md
    assert "MiniLM" not in md and "‡" not in md
    summary = (tmp_path / "f" / "subspace_similarity.md").read_text()
    assert "| 1 | W_q | 0.75 | 0.75 | 0.75 | 0.75 |" in summary  # the packed grids, unpacked
    assert "| random Gaussian |  | 0.50 | 0.50 | 0.50 | 0.50 |" in summary
    assert "| chance |  | 0.01 | 0.67 | 0.08 | 0.67 |" in summary  # max(i, j) / 96


def test_renderer_marks_stale_records(tmp_path):
    import json

    from experiments.report import analysis as report

    # made by code whose files have changed since
    old = _hand_record(code_version="older")
    report.write_analysis(old, tmp_path / "a", tmp_path / "a")
    assert "‡ this analysis was made by older code" in (tmp_path / "a" / "table7.md").read_text()
    assert "‡" in (tmp_path / "a" / "subspace_similarity.md").read_text()
    # current code, but a source run retrained since (another finish time) or gone
    record = _hand_record()
    runs = tmp_path / "results" / "runs" / "analysis_minilm"
    runs.mkdir(parents=True)
    for s in record["source"]:
        rec = {"schema_version": 1, "status": "ok", "experiment": "analysis_minilm",
               "run_id": s["run_id"], "provenance": {"finished_at": s["finished_at"]}}  # fmt: skip
        (runs / f"{s['run_id']}.json").write_text(json.dumps(rec))
    assert report.stale_note(record, tmp_path / "results") is None
    rec = json.loads((runs / "run-r8.json").read_text())
    rec["provenance"]["finished_at"] = "2025-01-01T00:00:00+00:00"
    (runs / "run-r8.json").write_text(json.dumps(rec))
    (runs / "run-r64.json").unlink()
    assert report.outdated_sources(record, tmp_path / "results") == ["run-r8", "run-r64"]
    report.write_analysis(record, tmp_path / "b", tmp_path / "b", tmp_path / "results")
    md = (tmp_path / "b" / "table7.md").read_text()
    assert "retrained or removed since (run-r8, run-r64)" in md
    assert "| ours, tiny-bert-x layer 1‡ |" in md


def test_tables_route_analysis_records_to_the_analysis_folder(tmp_path):
    from experiments.core.records import write_atomic
    from experiments.report.tables import write_tables

    record = _hand_record()
    write_atomic(tmp_path / "runs" / record["experiment"] / f"{record['run_id']}.json", record)
    written = write_tables(tmp_path, record["experiment"])
    assert tmp_path / "analysis" / "table7.md" in written
    assert "tiny-bert-x layer 1" in (tmp_path / "analysis" / "table7.md").read_text()
