"""The fixed/slow point finder on systems with known answers: a linear system (one point, known eigenvalues),
a ring attractor and a line attractor (continua of marginal points), a bistable system, a saddle-node ghost
(a slow point, no fixed point), and a gnODE checked against an autograd Jacobian."""

from __future__ import annotations

import math

import pytest
import torch

from gnode.analysis import (
    MARGINAL,
    SADDLE,
    STABLE,
    UNSTABLE,
    FixedPointConfig,
    find_fixed_points,
    sample_states,
)
from gnode.models import GatedNODE

D = torch.float64


def starts(count, n, scale=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(count, n, generator=g, dtype=D)


def block_matrix(eigs_real, pairs, seed=0):
    """A (non-normal) real matrix with eigenvalues eigs_real and a +- b i for (a, b) in pairs: a block-diagonal
    matrix in a random basis, so the answer is known exactly but the matrix is dense."""
    blocks = [torch.tensor([[float(l)]], dtype=D) for l in eigs_real]
    blocks += [torch.tensor([[a, b], [-b, a]], dtype=D) for a, b in pairs]
    B = torch.block_diag(*blocks)
    g = torch.Generator().manual_seed(seed)
    P = torch.eye(B.shape[0], dtype=D) + 0.4 * torch.randn(B.shape, generator=g, dtype=D)
    return P @ B @ torch.linalg.inv(P)


def known(eigs_real, pairs):
    lam = [complex(l) for l in eigs_real] + [complex(a, s * b) for a, b in pairs for s in (1, -1)]
    return sorted(lam, key=lambda z: (-z.real, -z.imag))


@pytest.mark.parametrize(
    "eigs_real, pairs, cls",
    [
        ((-0.5, -3.0), [(-1.0, 2.0)], STABLE),
        ((1.0, -2.0), [(-0.5, 1.0)], SADDLE),
        ((0.5, 2.0), [(1.0, 3.0)], UNSTABLE),
    ],
)
def test_linear_system_has_one_point_with_the_known_eigenvalues(eigs_real, pairs, cls):
    A = block_matrix(eigs_real, pairs)
    h_star = torch.tensor([0.3, -0.7, 1.1, 0.2], dtype=D)
    fps = find_fixed_points(lambda t, h: (h - h_star) @ A.T, starts(200, 4), config=FixedPointConfig(opt_steps=200))
    assert len(fps) == 1 and fps.count.tolist() == [200]
    assert fps.fixed.all() and float(fps.q[0]) < 1e-24
    torch.testing.assert_close(fps.points[0], h_star, rtol=0, atol=1e-10)
    want = torch.tensor(known(eigs_real, pairs), dtype=torch.complex128)
    torch.testing.assert_close(fps.eigenvalues[0], want, rtol=0, atol=1e-10)
    assert fps.classes == [cls]
    assert int(fps.n_marginal[0]) == 0 and int(fps.n_unstable[0]) == sum(1 for z in want if z.real > 0)


def ring(t, h):
    """dh/dt = h (1 - |h|^2): in polar form dr/dt = r (1 - r^2), dtheta/dt = 0 — every point of the unit
    circle is a fixed point with eigenvalues 0 (along the ring) and -2 (radial); the origin is unstable (1, 1)."""
    return h * (1 - h.pow(2).sum(-1, keepdim=True))


def test_ring_attractor_is_a_ring_of_marginally_stable_points():
    fps = find_fixed_points(ring, starts(300, 2, seed=1), config=FixedPointConfig(opt_steps=200))
    origin = fps.points.norm(dim=-1) < 1e-6
    assert int(origin.sum()) == 1
    o = int(origin.nonzero()[0, 0])
    assert fps.classes[o] == UNSTABLE
    torch.testing.assert_close(fps.eigenvalues[o], torch.tensor([1, 1], dtype=torch.complex128), rtol=0, atol=1e-12)
    on_ring = ~origin
    assert int(on_ring.sum()) > 100  # a continuum: many distinct points, not one
    torch.testing.assert_close(
        fps.points[on_ring].norm(dim=-1), torch.ones(int(on_ring.sum()), dtype=D), rtol=0, atol=1e-9
    )
    assert all(fps.classes[i] == MARGINAL for i in on_ring.nonzero()[:, 0].tolist())
    assert (fps.n_marginal[on_ring] == 1).all()
    lam = fps.eigenvalues[on_ring]
    torch.testing.assert_close(lam[:, 0].real, torch.zeros_like(lam[:, 0].real), rtol=0, atol=1e-9)
    torch.testing.assert_close(lam[:, 1].real, torch.full_like(lam[:, 1].real, -2.0), rtol=0, atol=1e-9)
    # the marginal eigenvector is tangent to the ring
    v = fps.eigenvectors[on_ring][:, :, 0].real
    tangency = (v * fps.points[on_ring]).sum(-1).abs() / v.norm(dim=-1)
    assert float(tangency.max()) < 1e-8
    # the points cover the whole ring: no angular gap wider than 0.2 rad
    angle = torch.sort(torch.atan2(fps.points[on_ring, 1], fps.points[on_ring, 0])).values
    gaps = torch.cat([angle.diff(), (angle[:1] + 2 * math.pi) - angle[-1:]])
    assert float(gaps.max()) < 0.2


def test_line_attractor_is_a_line_of_marginal_points():
    # dh/dt = (-h1, 0, -2 h3): every point of the h2 axis is fixed, eigenvalues 0, -1, -2
    fps = find_fixed_points(
        lambda t, h: h * torch.tensor([-1.0, 0.0, -2.0], dtype=D),
        starts(100, 3),
        config=FixedPointConfig(opt_steps=100),
    )
    assert len(fps) > 50
    torch.testing.assert_close(fps.points[:, [0, 2]], torch.zeros(len(fps), 2, dtype=D), rtol=0, atol=1e-10)
    assert set(fps.classes) == {MARGINAL} and (fps.n_marginal == 1).all()
    torch.testing.assert_close(
        fps.eigenvalues.real, torch.tensor([[0.0, -1.0, -2.0]], dtype=D).expand(len(fps), 3), rtol=0, atol=1e-12
    )


def bistable(t, h):
    """dh/dt = (h1 - h1^3, -h2): stable points (+-1, 0) with eigenvalues (-1, -2); a saddle at 0 with (1, -1)."""
    return torch.stack([h[:, 0] - h[:, 0] ** 3, -h[:, 1]], dim=-1)


def test_bistable_system_has_two_stable_points_and_a_saddle():
    fps = find_fixed_points(bistable, starts(200, 2, seed=2))
    assert len(fps) == 3 and fps.fixed.all()
    order = torch.argsort(fps.points[:, 0])
    torch.testing.assert_close(
        fps.points[order], torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=D), rtol=0, atol=1e-10
    )
    assert [fps.classes[i] for i in order.tolist()] == [STABLE, SADDLE, STABLE]
    torch.testing.assert_close(
        fps.eigenvalues[order].real,
        torch.tensor([[-1.0, -2.0], [1.0, -1.0], [-1.0, -2.0]], dtype=D),
        rtol=0,
        atol=1e-10,
    )
    assert int(fps.count.sum()) == 200 - fps.n_dropped - fps.n_outliers
    c = fps.counts()
    assert c["fixed"] == {STABLE: 2, MARGINAL: 0, SADDLE: 1, UNSTABLE: 0}


def test_a_ghost_is_a_slow_point_not_a_fixed_point():
    # dh/dt = (h1^2 + eps, -h2) has no fixed point; its slowest place is (0, 0), with q = eps^2 / 2
    eps = 1e-4
    fps = find_fixed_points(
        lambda t, h: torch.stack([h[:, 0] ** 2 + eps, -h[:, 1]], -1),
        0.3 * starts(100, 2),
        config=FixedPointConfig(opt_steps=600, lr=2e-2, lr_final=1e-5, slow_tol=1e-7),
    )
    assert not fps.fixed.any()
    best = int(torch.argmin(fps.q))
    assert float(fps.q[best]) == pytest.approx(eps**2 / 2, rel=1e-3)
    torch.testing.assert_close(fps.points[best], torch.zeros(2, dtype=D), rtol=0, atol=1e-3)
    assert fps.summary()["n_fixed"] == 0 and fps.summary()["n_slow"] == len(fps)


def test_gnode_fixed_points_are_zeros_of_the_model_with_its_autograd_spectrum():
    g = torch.Generator().manual_seed(3)
    model = GatedNODE(
        3, 2, depth_F=2, depth_G=2, width_F=8, width_G=8, init="chaotic", gain=2.5, generator=g, dtype=torch.float32
    )
    with torch.no_grad():
        for layer in list(model.F.layers) + list(model.G.layers):
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=g))
    x_star = torch.tensor([0.2, -0.4])
    fps = find_fixed_points(model, starts(200, 3, scale=1.0, seed=4), x_star)
    assert fps.fixed.any()
    model64 = GatedNODE(3, 2, depth_F=2, depth_G=2, width_F=8, width_G=8, dtype=D)
    model64.load_flat(model.flat_parameters().detach().double())
    assert next(model.parameters()).dtype == torch.float32  # the search cast a copy, not the caller's model
    for i in fps.fixed.nonzero()[:, 0].tolist():
        h = fps.points[i]
        with torch.no_grad():
            f = model64(torch.zeros(1, dtype=D), h[None], x_star.double()[None])[0]
        assert float(f.norm()) < 1e-9
        J = torch.autograd.functional.jacobian(
            lambda hh: model64(torch.zeros(1, dtype=D), hh[None], x_star.double()[None])[0], h
        )
        want = torch.linalg.eigvals(J)
        got = fps.eigenvalues[i]
        # same multiset of eigenvalues: match each to its nearest
        dist = (got[:, None] - want[None, :]).abs()
        assert float(dist.min(dim=1).values.max()) < 1e-8 and float(dist.min(dim=0).values.max()) < 1e-8


def test_points_far_from_every_initial_state_are_outliers():
    # the only fixed point, (10, 10), lies ~14 away from starts spread ~0.1 around the origin: found, but an
    # outlier unless outliers are kept
    h_star = torch.tensor([10.0, 10.0], dtype=D)
    f = lambda t, h: -(h - h_star)
    h0 = 0.1 * starts(50, 2)
    fps = find_fixed_points(f, h0, config=FixedPointConfig(opt_steps=0))
    assert len(fps) == 0 and fps.n_outliers == 50 and fps.summary()["n_outliers"] == 50
    kept = find_fixed_points(f, h0, config=FixedPointConfig(opt_steps=0, outlier_scale=None))
    assert len(kept) == 1 and kept.n_outliers == 0
    torch.testing.assert_close(kept.points[0], h_star, rtol=0, atol=1e-12)


def test_sample_states_draws_visited_states_and_skips_failed_ones():
    traj = torch.arange(2 * 5 * 3, dtype=D).reshape(2, 5, 3)
    traj[1, 4] = float("nan")
    s = sample_states(traj, 50, generator=torch.Generator().manual_seed(0))
    visited = traj.reshape(-1, 3)[:-1]
    assert s.shape == (50, 3) and torch.isfinite(s).all()
    assert ((s[:, None, :] == visited[None]).all(-1).any(-1)).all()
    noisy = sample_states(traj, 50, noise=0.1, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(noisy, s) and float((noisy - s).abs().max()) < 30


def test_bad_input_is_named():
    model = GatedNODE(3, 2, dtype=D)
    with pytest.raises(ValueError, match="initial_states have 2 features .* n=3"):
        find_fixed_points(model, torch.zeros(4, 2, dtype=D))
    with pytest.raises(ValueError, match="x\\* has 3 entries but the model takes d_in=2"):
        find_fixed_points(model, torch.zeros(4, 3, dtype=D), torch.zeros(3))
    with pytest.raises(ValueError, match="initial_states\\[1\\] is not finite"):
        find_fixed_points(model, torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]], dtype=D))
    with pytest.raises(ValueError, match="dedup_tol must be a positive number"):
        FixedPointConfig(dedup_tol=0)
    with pytest.raises(ValueError, match="slow_tol must be None or a number >= fixed_tol"):
        FixedPointConfig(fixed_tol=1e-8, slow_tol=1e-10)
    with pytest.raises(ValueError, match="an input x\\* was given but f takes no input"):
        find_fixed_points(ring, torch.zeros(3, 2, dtype=D), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown class 'stabel'"):
        find_fixed_points(ring, starts(5, 2)).mask("stabel")
