"""The linear head-model structure shared by the synthetic cast, ICT-FaceKit and training.

A :class:`FaceModel` is ``vertices = template + Σ_k a_k · identity_basis[k] + Σ_j e_j · expression_basis[j]``
with one triangle topology. The procedural head (``fastminerf.data.synth``) and ICT-FaceKit
(``fastminerf.data.preprocess``) both produce one; the trainer only needs its topology,
its per-vertex regions (lips gating, lip-weighted loss) and, for live expression sliders,
its expression basis.

Coordinates ("head space"): metres, right-handed, +y up, +z out of the face (the head looks
along +z), +x towards the person's left ear.

Region ids are :class:`fastminerf.data.regions.Region` (INSTA's face-parsing ids).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_path
from .regions import MOUTH_REGIONS, REGIONS  # noqa: F401  (re-exported: the ids of vertex_regions)


@dataclass
class FaceModel:
    """A linear head model with one topology.

    Attributes:
        name: model name written into datasets (e.g. ``"fastminerf-synth-head-v1"``).
        vertices: [V, 3] float32 template (neutral, mean identity), head space, metres.
        faces: [T, 3] int32 triangles (counter-clockwise seen from outside).
        identity_basis: [Ki, V, 3] float32 vertex offsets per unit identity coefficient.
        identity_names: Ki names of the identity modes.
        expression_basis: [Ke, V, 3] float32 vertex offsets per unit expression coefficient.
        expression_names: Ke names (ARKit-style where possible, e.g. ``jawOpen``).
        vertex_regions: [V] uint8 region id per vertex (keys of :data:`REGIONS`).
        landmarks: optional [L] int64 vertex indices of facial landmarks.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    identity_basis: np.ndarray
    identity_names: list[str]
    expression_basis: np.ndarray
    expression_names: list[str]
    vertex_regions: np.ndarray
    landmarks: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        V = self.vertices.shape[0]
        checks = [
            (self.vertices.shape == (V, 3), f"vertices {self.vertices.shape}"),
            (self.faces.ndim == 2 and self.faces.shape[1] == 3, f"faces {self.faces.shape}"),
            (self.identity_basis.shape[1:] == (V, 3), f"identity_basis {self.identity_basis.shape}"),
            (self.expression_basis.shape[1:] == (V, 3), f"expression_basis {self.expression_basis.shape}"),
            (len(self.identity_names) == self.identity_basis.shape[0], "identity_names length"),
            (len(self.expression_names) == self.expression_basis.shape[0], "expression_names length"),
            (self.vertex_regions.shape == (V,), f"vertex_regions {self.vertex_regions.shape}"),
        ]
        for ok, what in checks:
            if not ok:
                raise InputError(None, f"face model {self.name!r}: inconsistent shape: {what}")

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def n_identities(self) -> int:
        return int(self.identity_basis.shape[0])

    def mesh(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices for coefficients.

        Args:
            identity: [Ki] or [..., Ki] identity coefficients (None = mean identity).
            expression: [Ke] or [..., Ke] expression coefficients (None = neutral).
        Returns:
            [..., V, 3] float32 vertices (leading dims broadcast between the two inputs).
        """
        out = self.vertices.astype(np.float32)
        if identity is not None:
            out = out + np.tensordot(np.asarray(identity, np.float32), self.identity_basis, axes=(-1, 0))
        if expression is not None:
            out = out + np.tensordot(np.asarray(expression, np.float32), self.expression_basis, axes=(-1, 0))
        return out.astype(np.float32)

    def face_regions(self) -> np.ndarray:
        """[T] uint8 region of each triangle (the region most of its vertices carry)."""
        r = self.vertex_regions[self.faces]  # [T, 3]
        # majority vote; ties go to the first vertex
        same12 = r[:, 1] == r[:, 2]
        return np.where(same12, r[:, 1], r[:, 0]).astype(np.uint8)

    def save(self, path: str | Path) -> None:
        """Write the model as one ``.npz`` (written to a temp file, then renamed)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                name=np.array(self.name),
                vertices=self.vertices,
                faces=self.faces,
                identity_basis=self.identity_basis,
                identity_names=np.array(self.identity_names),
                expression_basis=self.expression_basis,
                expression_names=np.array(self.expression_names),
                vertex_regions=self.vertex_regions,
                landmarks=np.array([], np.int64) if self.landmarks is None else self.landmarks,
            )

    @classmethod
    def load(cls, path: str | Path) -> FaceModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "face model file not found")
        try:
            z = np.load(path, allow_pickle=False)
            lm = z["landmarks"]
            return cls(
                name=str(z["name"]),
                vertices=z["vertices"].astype(np.float32),
                faces=z["faces"].astype(np.int32),
                identity_basis=z["identity_basis"].astype(np.float32),
                identity_names=[str(s) for s in z["identity_names"]],
                expression_basis=z["expression_basis"].astype(np.float32),
                expression_names=[str(s) for s in z["expression_names"]],
                vertex_regions=z["vertex_regions"].astype(np.uint8),
                landmarks=lm.astype(np.int64) if lm.size else None,
            )
        except (KeyError, ValueError, OSError) as e:
            raise InputError(path, f"not a fastminerf face model ({e})") from None
