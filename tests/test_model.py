"""Reference pipeline pieces: conditioning, hash-grid indexing, embedding, compositing."""
import numpy as np
import pytest
import torch

from fastminerf.model.conditioning import CONDITIONINGS, build_conditioning
from fastminerf.ops.composite import composite_torch, render_weights_torch
from fastminerf.ops.embed import MeshSet, embed_points_torch, nearest_triangle_torch
from fastminerf.ops.hashgrid import HashGridSpec, grid_indices, hash_grid_encode
from fastminerf.ops.march import march_rays_torch


@pytest.mark.parametrize("name", list(CONDITIONINGS))
def test_conditioning_shapes(name):
    d = 12
    m = build_conditioning(name, d, rank=8, stages=3, latent_dim=32)
    e, i, l = torch.randn(5, d), torch.randn(5, d), torch.randn(5, 32)
    out = m(e, i, l)
    expected = {"baseline": 2 * d, "concat_learned": 2 * d, "M_o256": 256}.get(name, d)
    assert out.shape == (5, expected) == (5, m.out_dim)


def test_M_is_multiplicative():
    """The Jacobian of M w.r.t. e changes with i (the product term), unlike A1's."""
    torch.manual_seed(0)
    for name, multiplicative in (("M", True), ("H", True), ("A1", False), ("baseline", False)):
        m = build_conditioning(name, 8, rank=8)
        e = torch.randn(8)
        jac = [torch.autograd.functional.jacobian(lambda x: m(x[None], i[None])[0], e) for i in (torch.randn(8), torch.randn(8))]  # noqa: B023 (called at once)
        assert (not torch.allclose(jac[0], jac[1], atol=1e-6)) == multiplicative, name


def test_M_rank():
    m = build_conditioning("M", 16, rank=8)
    assert m.U1.weight.shape == (8, 16) and m.C.weight.shape == (16, 8) and m.W2.weight.shape == (16, 16)


def test_hashgrid_indices_match_the_formula():
    spec = HashGridSpec(n_levels=4, n_features=2, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0)
    lay = spec.layout
    # level 0: scale 3, res 4, 64 rows: dense; level 3: scale 31, res 32 → 32768 > 1024: hashed
    assert list(lay["hashed"]) == [False, False, True, True]
    assert list(lay["size"]) == [64, 512, 1024, 1024] and list(lay["offset"]) == [0, 64, 576, 1600, 2624]
    pts = torch.tensor([[0.1, 0.5, 0.9], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.37, 0.02, 0.66]])
    rows, frac, bits = grid_indices(pts, spec)
    for n, p in enumerate(pts.tolist()):
        for lvl in range(4):
            scale = float(lay["scale"][lvl])
            res, size, off = int(lay["resolution"][lvl]), int(lay["size"][lvl]), int(lay["offset"][lvl])
            cell = [int(np.floor(np.float32(np.float32(scale) * np.float32(c)) + np.float32(0.5))) for c in p]
            for c in range(8):
                g = [cell[dim] + ((c >> dim) & 1) for dim in range(3)]
                if lay["hashed"][lvl]:
                    idx = (g[0] * 1 ^ g[1] * 2654435761 ^ g[2] * 805459861) & 0xFFFFFFFF
                else:
                    idx = g[0] + g[1] * res + g[2] * res * res
                assert int(rows[n, lvl, c]) == off + idx % size, (n, lvl, c)


def test_hashgrid_forward_and_gradients():
    spec = HashGridSpec(n_levels=3, n_features=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=1.5)
    table = torch.randn(spec.n_params, 2, dtype=torch.float32, requires_grad=True)
    x = torch.rand(64, 3, requires_grad=True)
    out = hash_grid_encode(x, table, spec)
    assert out.shape == (64, 6)
    g = torch.randn_like(out)
    gx, gt = torch.autograd.grad(out, (x, table), g)
    # the same maths by plain autograd
    rows, _, bits = grid_indices(x, spec)
    pos = x[:, None, :] * torch.from_numpy(spec.layout["scale"])[None, :, None] + 0.5
    fr = pos - torch.floor(pos).detach()
    w = torch.where(bits[None, None].bool(), fr[:, :, None, :], 1 - fr[:, :, None, :]).prod(-1)
    ref = (table[rows] * w[..., None]).sum(2).reshape(64, -1)
    rx, rt = torch.autograd.grad(ref, (x, table), g)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gt, rt, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx, rx, atol=1e-3, rtol=1e-4)


def _meshes():
    import trimesh

    m = trimesh.creation.icosphere(2, radius=0.1)
    V = torch.tensor(m.vertices, dtype=torch.float32)
    F = torch.tensor(m.faces, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    verts = torch.stack([V * (1 + 0.2 * k) + 0.005 * torch.randn(V.shape, generator=g) for k in range(3)])
    return V, F, verts


def test_point_on_deformed_triangle_maps_to_same_barycentric_point():
    V, F, verts = _meshes()
    g = torch.Generator().manual_seed(1)
    n = 200
    bary = torch.rand(n, 3, generator=g)
    bary /= bary.sum(1, keepdim=True)
    face = torch.randint(len(F), (n,), generator=g)
    slot = torch.randint(3, (n,), generator=g)
    p = (verts[slot[:, None], F[face]] * bary[..., None]).sum(1)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    xc, dc, uvh = embed_points_torch(p, d, slot, face, verts, V, F)
    torch.testing.assert_close(xc, (V[F[face]] * bary[..., None]).sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(uvh[:, :2], bary[:, 1:], atol=1e-4, rtol=0)
    torch.testing.assert_close(dc.norm(dim=-1), torch.ones(n), atol=1e-5, rtol=0)
    # an offset along the deformed normal becomes the same offset along the canonical normal
    a, b, c = (verts[slot[:, None], F[face]]).unbind(1)
    nrm = torch.nn.functional.normalize(torch.cross(b - a, c - a, dim=-1), dim=-1)
    xc2, _, _ = embed_points_torch(p + 0.01 * nrm, None, slot, face, verts, V, F)
    assert torch.allclose((xc2 - xc).norm(dim=-1), torch.full((n,), 0.01), atol=1e-5)


def test_nearest_triangle_warp_is_exact():
    V, F, verts = _meshes()
    g = torch.Generator().manual_seed(2)
    pts = torch.randn(3000, 3, generator=g) * 0.12
    slots = torch.randint(3, (3000,), generator=g)
    f_ref, d_ref = nearest_triangle_torch(pts, slots, verts, F)
    f, d = MeshSet(verts, F, search="warp").nearest(pts, slots)
    torch.testing.assert_close(d, d_ref, atol=1e-6, rtol=0)
    # ties (points nearest to a shared edge/vertex) may pick another face at the same distance
    same = f == f_ref
    assert same.float().mean() > 0.5
    _, d_alt = nearest_triangle_torch(pts[~same], slots[~same], verts, F)
    torch.testing.assert_close(d[~same], d_alt, atol=1e-6, rtol=0)


def test_compositing_matches_nerfacc():
    nerfacc = pytest.importorskip("nerfacc", reason="nerfacc (test extra) is the independent oracle")
    g = torch.Generator().manual_seed(0)
    R, S = 40, 32
    sig = torch.rand(R, S, generator=g) * 30
    ts = torch.sort(torch.rand(R, S, generator=g), 1).values
    te = ts + 0.02
    mask = torch.rand(R, S, generator=g) < 0.7  # packed = a ragged subset
    w_ref, _, _ = nerfacc.render_weight_from_density(ts, te, sig * mask)
    ri = torch.arange(R)[:, None].expand(R, S)[mask]
    w, _, _ = render_weights_torch(sig[mask], ts[mask], te[mask], ri, R)
    torch.testing.assert_close(w, w_ref[mask], atol=1e-6, rtol=1e-5)
    rgb = torch.rand(R, S, 3, generator=g)
    out = composite_torch(sig[mask], rgb[mask], ts[mask], te[mask], ri, R, background=torch.ones(3))
    ref_rgb = (w_ref[..., None] * rgb).sum(1) + (1 - w_ref.sum(1, keepdim=True))
    torch.testing.assert_close(out["rgb"], ref_rgb, atol=1e-5, rtol=1e-5)


def test_a_diverging_density_stays_in_its_own_ray():
    """One huge or infinite σ must not touch other rays (the float64 running sum of the
    torch twin spans the whole batch) nor turn into NaN, forward or backward."""
    from fastminerf.model.field import trunc_exp

    g = torch.Generator().manual_seed(1)
    R, S = 6, 10
    ri = torch.arange(R).repeat_interleave(S)
    ts = torch.linspace(0, 1, S).repeat(R)
    te = ts + 0.1
    sig = (torch.rand(R * S, generator=g) * 5).requires_grad_()
    rgb = torch.rand(R * S, 3, generator=g)
    clean = composite_torch(sig, rgb, ts, te, ri, R, background=torch.ones(3))
    for spike in (1e30, float("inf")):
        s2 = sig.detach().clone()
        s2[S + 3] = spike  # ray 1
        s2.requires_grad_()
        out = composite_torch(s2, rgb, ts, te, ri, R, background=torch.ones(3))
        keep = torch.arange(R) != 1
        assert torch.equal(out["rgb"][keep], clean["rgb"][keep].detach())
        assert torch.isfinite(out["rgb"]).all() and (out["opacity"] <= 1 + 1e-6).all()
        out["rgb"].sum().backward()
        assert torch.isfinite(s2.grad).all()
    x = torch.tensor([0.0, 100.0, 1e4], requires_grad=True)
    y = trunc_exp(x)
    assert torch.isfinite(y).all() and torch.isfinite(torch.autograd.grad(y.sum(), x)[0]).all()


def test_marching_skips_empty_cells():
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    grid = torch.zeros(8, 8, 8, dtype=torch.bool)
    grid[4:, :, :] = True  # only x > 0 occupied
    o = torch.tensor([[-2.0, 0.1, 0.1], [0.5, -2.0, 0.1], [-2.0, 5.0, 0.0]])
    d = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]]), dim=-1)
    ri, t0, t1 = march_rays_torch(o, d, aabb, grid, dt=0.05)
    x = o[ri] + d[ri] * ((t0 + t1) / 2)[:, None]
    assert (x[:, 0] > 0).all() and (ri == 2).sum() == 0  # ray 2 misses the box
    assert (ri == 0).sum() == 20 and (ri == 1).sum() == 40
    assert torch.all(ri[1:] >= ri[:-1])


def test_colour_sigmoid_is_exact_forward_and_recoverable_when_saturated():
    from fastminerf.model.field import recoverable_sigmoid

    x = torch.tensor([-80.0, -3.0, 0.0, 2.0, 80.0], requires_grad=True)
    y = recoverable_sigmoid(x)
    assert torch.equal(y, torch.sigmoid(x.detach()))
    y.sum().backward()
    s = torch.sigmoid(x.detach())
    exact = s * (1 - s)
    inside = exact > 1e-2
    assert torch.allclose(x.grad[inside], exact[inside])  # exact where the sigmoid is not saturated
    assert (x.grad[~inside] >= 1e-2).all()  # a saturated logit still gets a gradient back
    # one Adam-free gradient step on a black-saturated logit moves it towards a bright target
    z = torch.tensor([-60.0], requires_grad=True)
    ((recoverable_sigmoid(z) - 1.0) ** 2).sum().backward()
    assert z.grad.item() < 0
