"""The paper's analyses of the low-rank update (Hu et al. 2021, §7.2-7.3), in pure torch.

* :func:`subspace_similarity` and :func:`subspace_similarity_grid`: Eq. 4, the overlap
  between the top singular directions of two LoRA ``A`` matrices (Figures 3, 4, 6, 7).
* :func:`projected_norm` and :func:`amplification_factor`: how much of ``W`` lies in the
  top-r subspace of another matrix, ‖U_Mᵀ W V_M‖_F, and how strongly ΔW amplifies the
  directions it shares with ``W`` (Table 7, §7.3).
* :func:`lora_delta`: ΔW = (α/r)·B·A from saved factors.
* :func:`effective_rank` and :func:`intruder_dimensions`: two later spectral diagnostics
  of a fine-tuned matrix, the rank that holds most of ‖ΔW‖²_F (Biderman et al. 2024) and
  the new top singular directions W0 lacks (Shuttleworth et al. 2024).

All computation is done in float64 on CPU, so results do not depend on the dtype or
device of the inputs; every function returns a Python ``float`` or a float64 tensor.
"""

from __future__ import annotations

import torch

__all__ = [
    "amplification_factor",
    "effective_rank",
    "intruder_dimensions",
    "lora_delta",
    "projected_norm",
    "right_singular_vectors",
    "subspace_similarity",
    "subspace_similarity_grid",
]


def _matrix(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a finite float64 CPU matrix, or a one-line ValueError naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 2 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix; got shape {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError(f"{name} must be real; got dtype {x.dtype}")
    out = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} must be finite; it holds NaN or inf")
    return out


def _count(k: object, name: str, high: int) -> int:
    """``k`` as an int in [1, high], or a one-line ValueError naming ``name``."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= high:
        raise ValueError(f"{name} must be an integer in [1, {high}]; got {k!r}")
    return k


def _fraction(x: object, name: str) -> float:
    """``x`` as a float in (0, 1], or a one-line ValueError naming ``name``."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 < x <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1]; got {x!r}")
    return float(x)


def right_singular_vectors(A: torch.Tensor) -> torch.Tensor:
    """Right-singular vectors of ``A``, one per column, by decreasing singular value.

    Args:
        A: a LoRA down-projection, shape (r, d_in), any real float dtype.

    Returns:
        U_A of Eq. 4: float64, shape (d_in, k) with k = min(r, d_in); column ``i`` is
        the i-th right-singular vector (signs are arbitrary, subspaces are not).

    Raises:
        ValueError: ``A`` is not a non-empty, finite, real 2-D tensor.
    """
    A = _matrix(A, "A")
    return torch.linalg.svd(A, full_matrices=False).Vh.T


def _pair(A_1: torch.Tensor, A_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a1, a2 = _matrix(A_1, "A_1"), _matrix(A_2, "A_2")
    if a1.shape[1] != a2.shape[1]:
        raise ValueError(
            f"A_1 and A_2 must have the same number of columns d_in; got shapes "
            f"{tuple(a1.shape)} and {tuple(a2.shape)}"
        )
    return right_singular_vectors(a1), right_singular_vectors(a2)


def subspace_similarity(A_1: torch.Tensor, A_2: torch.Tensor, i: int, j: int) -> float:
    """Normalized subspace similarity of paper Eq. 4 (§7.2).

    φ(A_1, A_2, i, j) = ‖U_{A_1}^{i⊤} U_{A_2}^{j}‖²_F / min(i, j), where U_A^i holds the
    top-i right-singular vectors of A. It is 1 when one subspace contains the other and
    0 when they are orthogonal; it ignores the scale of A and any rotation of its rows
    (A → Q·A with Q orthogonal leaves U_A unchanged).

    Args:
        A_1: shape (r_1, d_in), e.g. the ``lora_A`` of an r=8 run.
        A_2: shape (r_2, d_in), e.g. the ``lora_A`` of an r=64 run at the same layer.
        i: how many top directions of A_1, in [1, min(r_1, d_in)].
        j: how many top directions of A_2, in [1, min(r_2, d_in)].

    Returns:
        φ in [0, 1] (a Python float).

    Raises:
        ValueError: a non-matrix input, different d_in, or i / j out of range.
    """
    u1, u2 = _pair(A_1, A_2)
    i = _count(i, "i", u1.shape[1])
    j = _count(j, "j", u2.shape[1])
    overlap = u1[:, :i].T @ u2[:, :j]
    return float(overlap.square().sum() / min(i, j))


def subspace_similarity_grid(A_1: torch.Tensor, A_2: torch.Tensor) -> torch.Tensor:
    """φ(A_1, A_2, i, j) of Eq. 4 for every i and j at once (the heat maps of Figs. 3, 4).

    Args:
        A_1: shape (r_1, d_in).
        A_2: shape (r_2, d_in).

    Returns:
        float64 tensor of shape (k_1, k_2), k = min(r, d_in) (so (r_1, r_2) for any LoRA
        with r ≤ d_in); entry [i-1, j-1] is φ(A_1, A_2, i, j), in [0, 1].

    Raises:
        ValueError: a non-matrix input or different d_in.
    """
    u1, u2 = _pair(A_1, A_2)
    # ‖U1[:, :i]ᵀ U2[:, :j]‖²_F is the (i, j) prefix sum of the squared overlaps.
    prefix = (u1.T @ u2).square().cumsum(0).cumsum(1)
    i = torch.arange(1, u1.shape[1] + 1, dtype=torch.float64)
    j = torch.arange(1, u2.shape[1] + 1, dtype=torch.float64)
    # clamp: rounding may put the full-overlap corner a hair above 1
    return (prefix / torch.minimum(i[:, None], j[None, :])).clamp_(0.0, 1.0)


def projected_norm(W: torch.Tensor, M: torch.Tensor, r: int) -> float:
    """‖U_Mᵀ W V_M‖_F: the part of W in the top-r singular subspace of M (Table 7, §7.3).

    U_M (d_out, r) and V_M (d_in, r) are the top-r left and right singular vectors of
    M. With M = ΔW_q this is the table's ΔW_q column, with M = W_q its W_q column (then
    equal to the root sum of W's top-r σ²), with M random its Random column.

    Args:
        W: shape (d_out, d_in), e.g. a pretrained W_q in ``nn.Linear`` layout.
        M: same shape as ``W``.
        r: subspace dimension, in [1, min(d_out, d_in)].

    Returns:
        The norm, ≥ 0 and ≤ ‖W‖_F (a Python float).

    Raises:
        ValueError: a non-matrix input, different shapes, or r out of range.
    """
    W, M = _matrix(W, "W"), _matrix(M, "M")
    if W.shape != M.shape:
        raise ValueError(
            f"W and M must have the same shape; got {tuple(W.shape)} and {tuple(M.shape)}"
        )
    r = _count(r, "r", min(M.shape))
    U, _, Vh = torch.linalg.svd(M, full_matrices=False)
    return float(torch.linalg.matrix_norm(U[:, :r].T @ W @ Vh[:r].T))


def amplification_factor(delta_W: torch.Tensor, W: torch.Tensor, r: int) -> float:
    """‖ΔW‖_F / ‖U_ΔWᵀ W V_ΔW‖_F, how much ΔW amplifies W's directions (§7.3).

    The paper's GPT-3 W_q at layer 48 gives 6.91 / 0.32 ≈ 21.5 at r=4 and about 2 at
    r=64 (Table 7).

    Args:
        delta_W: the update, shape (d_out, d_in).
        W: the pretrained weight, same shape.
        r: the LoRA rank, in [1, min(d_out, d_in)]; U, V are ΔW's top-r singular vectors.

    Returns:
        The factor (a Python float, ≥ 0).

    Raises:
        ValueError: as :func:`projected_norm`, or W has no component in ΔW's top-r
            subspace (the ratio is undefined).
    """
    denominator = projected_norm(W, delta_W, r)
    if denominator == 0.0:
        raise ValueError("W must have a component in delta_W's top-r subspace; it has none")
    return float(torch.linalg.matrix_norm(_matrix(delta_W, "delta_W"))) / denominator


def lora_delta(lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float) -> torch.Tensor:
    """ΔW = scaling·B·A (§4.1; scaling = α/r), in float64.

    Args:
        lora_A: shape (r, d_in).
        lora_B: shape (d_out, r).
        scaling: α/r (or α/√r for rsLoRA).

    Returns:
        float64 tensor of shape (d_out, d_in), in ``nn.Linear`` layout.

    Raises:
        ValueError: a non-matrix input or B's columns ≠ A's rows.
    """
    A, B = _matrix(lora_A, "lora_A"), _matrix(lora_B, "lora_B")
    if B.shape[1] != A.shape[0]:
        raise ValueError(
            f"lora_B must have as many columns as lora_A has rows (r); got shapes "
            f"{tuple(B.shape)} and {tuple(A.shape)}"
        )
    return float(scaling) * (B @ A)


def effective_rank(delta: torch.Tensor, energy: float = 0.9) -> int:
    """How many of ΔW's largest singular values hold ``energy`` of ‖ΔW‖²_F.

    The smallest k with σ_1² + … + σ_k² ≥ energy · Σ_i σ_i², the spectral measure of
    Biderman et al. 2024, "LoRA Learns Less and Forgets Less" (a rank-r LoRA gives ≤ r;
    full fine-tuning typically needs 10-100x more). Singular values below
    σ_1 · max(d_out, d_in) · ε, numerical zeros as in ``torch.linalg.matrix_rank``, are
    dropped, so energy=1 gives the numerical rank.

    Args:
        delta: the update ΔW = W_tuned - W0, shape (d_out, d_in), any real float dtype
            (the SVD is taken in float64).
        energy: the share of ‖ΔW‖²_F to hold, in (0, 1].

    Returns:
        k, an int in [0, min(d_out, d_in)]; 0 when ΔW is zero.

    Raises:
        ValueError: ``delta`` is not a non-empty, finite, real 2-D tensor, or ``energy``
            is not in (0, 1].
    """
    delta = _matrix(delta, "delta")
    energy = _fraction(energy, "energy")
    s2 = torch.linalg.svdvals(delta).square()  # decreasing
    s2 = s2[s2 > s2[0] * (max(delta.shape) * torch.finfo(torch.float64).eps) ** 2]
    if s2.numel() == 0:
        return 0
    cumulative = s2.cumsum(0)
    target = torch.tensor([energy * cumulative[-1].item()], dtype=torch.float64)
    # the first index whose prefix sum reaches the target; min() guards rounding at energy=1
    return min(int(torch.searchsorted(cumulative, target)) + 1, s2.numel())


def intruder_dimensions(
    w0: torch.Tensor, w_tuned: torch.Tensor, k: int = 10, eps: float = 0.5
) -> int:
    """How many of W_tuned's top-k left singular vectors are "intruders" to W0.

    A tuned direction u_j is an intruder when max_i |cos(u_j, u0_i)| < eps over ALL left
    singular vectors u0_i of W0, i.e. it is close to none of them (Shuttleworth et al.
    2024, "LoRA vs Full Fine-tuning: An Illusion of Equivalence", §3). W0's vectors are those of its thin SVD, min(d_out, d_in) of them, so
    for a tall W0 a direction outside its column space is an intruder. Rescaling W0's
    singular values (same singular vectors) gives none.

    Args:
        w0: the pretrained weight, shape (d_out, d_in), any real float dtype.
        w_tuned: the fine-tuned weight (W0 + ΔW), same shape; both SVDs in float64.
        k: how many top left singular vectors of ``w_tuned`` to test, in
            [1, min(d_out, d_in)].
        eps: the cosine threshold, in (0, 1].

    Returns:
        The number of intruders, an int in [0, k].

    Raises:
        ValueError: a non-matrix input, different shapes, k out of range, or ``eps``
            not in (0, 1].
    """
    w0, w_tuned = _matrix(w0, "w0"), _matrix(w_tuned, "w_tuned")
    if w0.shape != w_tuned.shape:
        raise ValueError(
            f"w0 and w_tuned must have the same shape; got {tuple(w0.shape)} and "
            f"{tuple(w_tuned.shape)}"
        )
    k = _count(k, "k", min(w0.shape))
    eps = _fraction(eps, "eps")
    u0 = torch.linalg.svd(w0, full_matrices=False).U
    u_tuned = torch.linalg.svd(w_tuned, full_matrices=False).U[:, :k]
    best = (u_tuned.T @ u0).abs().amax(dim=1)  # each tuned direction's closest W0 direction
    return int((best < eps).sum())
