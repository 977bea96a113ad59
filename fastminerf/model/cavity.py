"""A virtual mouth cavity for tracked meshes that have only a lip seam (FLAME, INSTA, lips-only).

Without a mouth interior in the mesh, a sample inside an open mouth has a lip triangle as
its nearest triangle, so the mesh embedding (ops/embed.py) carries it onto the canonical
lip seam, on top of the points of the closed lips: teeth, tongue and dark interior have no
canonical home of their own and blur into the lips.

This module closes the mouth hole with a cup hung from the inner-lip boundary loop: rings
of vertices that step back into the head and open up, and a cap. Per frame the cup is built
from that frame's loop vertices (its opening follows the lips), in canonical space from the
canonical loop with the same rings — so a point inside the open mouth has a cavity triangle
as its nearest triangle and lands on the canonical cup, away from the lips.

    ring_j = c + s_j (L − c) + d_j·D·W·b + a_j·W·σ·p·u         j = 1..3
    cap    = c + D·W·b

L [n, 3] the ordered loop, c its centroid, W the canonical mouth width (corner to corner),
b the unit "into the head" direction (towards the mesh centroid, the vertical part removed),
u the unit up direction (head +y made orthogonal to b and to the corner-to-corner axis),
σ = +1 on the upper-lip half of the loop and −1 on the lower, p = sin(π t) with t the
position between the corners, D = ``model.mouth_cavity_depth``. The constants s, d, a open the
cup below the lips so no cavity triangle is degenerate even when the frame's lips are closed.

The loop is found from the mesh alone: the boundary loops of the canonical mesh; the one
with lip regions when the cast has region labels, otherwise the lowest flat loop
(height < width / 2: the lip seam; eye slits sit higher). Head space and canonical space are assumed y-up (FLAME, INSTA,
our synthetic heads). Meshes with no boundary loop (a mouth pocket) get no cavity.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.regions import Region

_S = (0.95, 0.8, 0.55)  # ring shrink towards the centroid
_DEPTH = (0.2, 0.5, 0.8)  # ring depth, fraction of the cavity depth
_OPEN = (0.08, 0.16, 0.16)  # ring vertical opening, fraction of the mouth width
_LIPS = (int(Region.UPPER_LIP), int(Region.LOWER_LIP))


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Ordered vertex loops of a triangle mesh's boundary (edges used by one face).
    faces [T, 3] → list of [n] int64 (vertices where a boundary is not a simple loop are
    walked greedily)."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    u, c = np.unique(e, axis=0, return_counts=True)
    b = u[c == 1]
    nbr: dict[int, list[int]] = {}
    for x, y in b.tolist():
        nbr.setdefault(x, []).append(y)
        nbr.setdefault(y, []).append(x)
    seen: set[int] = set()
    loops = []
    for s in sorted(nbr):
        if s in seen:
            continue
        loop, prev, cur = [s], -1, s
        seen.add(s)
        while True:
            nxt = [v for v in nbr[cur] if v != prev and v not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            seen.add(cur)
            loop.append(cur)
        loops.append(np.asarray(loop, np.int64))
    return loops


def find_mouth_loop(canonical: np.ndarray, faces: np.ndarray, face_regions: np.ndarray | None = None) -> np.ndarray | None:
    """The ordered inner-lip loop [n] int64 of a lip-seam mesh, or None (no usable loop).

    canonical [V, 3], faces [T, 3], face_regions [T] region ids or None. With regions: the
    loop with most vertices on lip faces; without: the lowest flat loop of ≥ 6 vertices
    (height < width / 2, y-up; eye slits sit higher)."""
    loops = [lp for lp in boundary_loops(np.asarray(faces, np.int64)) if lp.size >= 6]
    if not loops:
        return None
    if face_regions is not None and np.isin(face_regions, _LIPS).any():
        lip_v = np.zeros(len(canonical), bool)
        lip_v[np.asarray(faces)[np.isin(face_regions, _LIPS)].reshape(-1)] = True
        score = [lip_v[lp].mean() for lp in loops]
        best = int(np.argmax(score))
        return loops[best] if score[best] > 0.5 else None
    flat = [lp for lp in loops if np.ptp(canonical[lp], 0)[1] < 0.5 * max(np.ptp(canonical[lp], 0)[0], 1e-9)]
    # eye slits are flat too: the mouth is the lowest flat loop (y-up)
    return min(flat, key=lambda lp: float(canonical[lp, 1].mean())) if flat else None


#: lip band of a region-less mesh: vertices within this fraction of the mouth width of the loop
LIP_BAND = 0.2


def lip_vertex_labels(canonical: np.ndarray, loop: np.ndarray, band: float = LIP_BAND) -> np.ndarray:
    """Lip labels [V] uint8 for a mesh without region ids, from its inner-lip loop [n]:
    UPPER_LIP / LOWER_LIP for vertices within ``band`` × mouth width of the loop, above / below
    the loop's centroid (y-up), 0 elsewhere. (A closed neutral loop is flat, so the centroid's
    height splits the lips.)"""
    c = np.asarray(canonical, np.float64)
    lp = c[np.asarray(loop)]
    width = float(np.ptp(lp[:, 0]))
    near = nearest_sq_distance(c, lp) <= (band * width) ** 2
    out = np.zeros(c.shape[0], np.uint8)
    up = c[:, 1] >= lp[:, 1].mean()
    out[near & up] = int(Region.UPPER_LIP)
    out[near & ~up] = int(Region.LOWER_LIP)
    return out


def nearest_sq_distance(points: np.ndarray, targets: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """[N] squared distance from each of points [N, 3] to the nearest of targets [M, 3] (chunked)."""
    out = np.empty(points.shape[0])
    for s in range(0, points.shape[0], chunk):
        out[s : s + chunk] = ((points[s : s + chunk, None, :] - targets[None]) ** 2).sum(-1).min(1)
    return out


def face_labels(vertex_labels: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-face labels [T] from per-vertex ones: the label two of its vertices share, else the first's."""
    r = np.asarray(vertex_labels)[np.asarray(faces)]
    return np.where(r[:, 1] == r[:, 2], r[:, 1], r[:, 0]).astype(np.uint8)


class MouthCavity(nn.Module):
    """Adds the cavity cup to meshes (see the module docstring). No parameters; the buffers
    are derived from the canonical mesh and not saved, so checkpoints are unchanged.

    Args:
        canonical: [V, 3] canonical mesh. faces: [T, 3]. loop: [n] ordered loop vertices.
        depth: D, cavity depth as a fraction of the mouth width.
    Attributes:
        n_vertices: C = 3n + 1 added vertices. faces_all: [T + 7n, 3] int64 faces of the
        extended mesh. canonical_all: [V + C, 3].
    """

    def __init__(self, canonical: torch.Tensor, faces: torch.Tensor, loop: np.ndarray, depth: float):
        super().__init__()
        V, n = canonical.shape[0], int(loop.size)
        self.depth = float(depth)
        cl = canonical[torch.from_numpy(loop)]
        # corners: the two loop vertices farthest apart; t ∈ [0, 1] along each half, σ = ±1
        i0 = int(cl[:, 0].argmin())
        loop = np.roll(loop, -i0)
        cl = canonical[torch.from_numpy(loop)]
        i1 = int((cl - cl[0]).norm(dim=-1).argmax())
        t = torch.zeros(n)
        t[: i1 + 1] = torch.linspace(0, 1, i1 + 1)
        t[i1:] = torch.linspace(1, 0, n - i1 + 1)[:-1]
        half = torch.where(torch.arange(n) <= i1, 1.0, -1.0)
        self.register_buffer("loop", torch.from_numpy(loop), persistent=False)
        self.corners = (0, i1)
        self.width = float((cl[i1] - cl[0]).norm())
        # σ: +1 on the half whose neighbouring (non-loop) vertices sit higher (the upper lip)
        f = faces.cpu().numpy()
        on = np.zeros(V, bool)
        on[loop] = True
        heights = []
        for h in (1.0, -1.0):
            mine = np.zeros(V, bool)
            mine[loop[(half == h).numpy()]] = True
            tri = f[mine[f].any(1)]
            ring = np.unique(tri[~on[tri]])
            heights.append(float(canonical[torch.from_numpy(ring), 1].mean()) if ring.size else 0.0)
        sign = half if heights[0] >= heights[1] else -half
        self.register_buffer("profile", sign * torch.sin(torch.pi * t), persistent=False)  # σ·p [n]
        # faces: loop → ring1 → ring2 → ring3 → cap (quads split in two)
        rings = [torch.from_numpy(loop)] + [V + j * n + torch.arange(n) for j in range(3)]
        cap = V + 3 * n
        nf = []
        for r0, r1 in zip(rings[:-1], rings[1:]):
            r0n, r1n = r0.roll(-1), r1.roll(-1)
            nf += [torch.stack([r0, r0n, r1n], -1), torch.stack([r0, r1n, r1], -1)]
        nf.append(torch.stack([rings[-1], torch.full((n,), cap), rings[-1].roll(-1)], -1))
        self.n_vertices = 3 * n + 1
        self.n_faces = int(sum(x.shape[0] for x in nf))
        self.register_buffer("faces_all", torch.cat([faces.long(), *nf]), persistent=False)
        self.register_buffer("canonical_all", self.extend(canonical[None])[0], persistent=False)

    def extend(self, vertices: torch.Tensor) -> torch.Tensor:
        """Meshes [K, V, 3] → [K, V + C, 3] with each mesh's cavity appended (vectorised)."""
        L = vertices[:, self.loop]  # [K, n, 3]
        c = L.mean(1, keepdim=True)  # [K, 1, 3]
        x = L[:, self.corners[1]] - L[:, self.corners[0]]  # [K, 3] corner to corner
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        up = torch.zeros_like(x)
        up[:, 1] = 1.0
        b = vertices.mean(1) - c[:, 0]  # towards the mesh centroid
        b = b - (b * up).sum(-1, keepdim=True) * up
        b = b - (b * x).sum(-1, keepdim=True) * x
        b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        u = torch.cross(x, b, dim=-1)
        u = u * torch.where((u * up).sum(-1, keepdim=True) < 0, -1.0, 1.0)
        W, D = self.width, self.depth
        new = [c + s * (L - c) + (d * D * W) * b[:, None] + (a * W) * self.profile[None, :, None] * u[:, None]
               for s, d, a in zip(_S, _DEPTH, _OPEN)]
        new.append(c + (D * W) * b[:, None])
        return torch.cat([vertices, *new], 1)

    def face_mask(self, n_faces: int) -> torch.Tensor:
        """[T + 7n] bool: True on the cavity's faces (they count as mouth for INSTA's gating)."""
        m = torch.zeros(self.faces_all.shape[0], dtype=torch.bool, device=self.faces_all.device)
        m[n_faces:] = True
        return m


class CavityLevels(nn.Module):
    """Coarse-only grid inside the virtual cavity (``model.cavity_levels``).

    A sample whose nearest triangle is a cavity triangle reads only the coarsest N hash-grid
    levels; the finer levels' features are multiplied by 0. The cup follows the lips, not the
    teeth or the jaw, so a tooth's canonical home shifts by a millimetre or two between frames
    and the open mouth is seen in few of them: the fine levels memorise each training frame's
    teeth and gap (training frames' interior fit to rmse 0.02–0.03, held-out frames 0.2,
    speckled) instead of one interior that holds for new frames. Meshes with a mouth pocket
    (no cavity) are not affected.

    Args:
        levels: N. n_levels, features: the grid's L and F.
    """

    def __init__(self, levels: int, n_levels: int, features: int):
        super().__init__()
        keep = (torch.arange(n_levels) < levels).float().repeat_interleave(features)
        self.register_buffer("rows", torch.stack([torch.ones_like(keep), keep]), persistent=False)  # [2, L·F]

    def feature_scale(self, interior: torch.Tensor) -> torch.Tensor:
        """[S, L·F] multipliers of the grid features of samples, interior [S] bool (their
        nearest triangle is a cavity triangle: :meth:`MouthCavity.face_mask`)."""
        return self.rows[interior.long()]
