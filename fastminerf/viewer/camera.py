"""The browser's camera as ours: viser reports the camera pose T_world_camera with OpenCV
axes (+z forward) and a vertical field of view; the preview's world is head space (+y up,
+z out of the face), so the pose is our camera-to-head directly.
"""
from __future__ import annotations

import numpy as np

from ..render.views import ViewCamera

HOME_FOV = np.deg2rad(30.0)  # vertical field of view of the start view


def quaternion_matrix(wxyz) -> np.ndarray:
    """[3, 3] rotation of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(wxyz, np.float64) / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def camera_from_client(wxyz, position, fov_y: float, image_width: int, image_height: int, size: int) -> ViewCamera:
    """Our camera (longer side ``size`` px, the client's aspect) from a viser camera:
    orientation ``wxyz``, ``position`` [3] (head space), vertical ``fov_y`` (radians) and
    the client's canvas size."""
    c2h = np.eye(4, dtype=np.float32)
    c2h[:3, :3] = quaternion_matrix(wxyz)
    c2h[:3, 3] = position
    aspect = max(int(image_width), 1) / max(int(image_height), 1)
    return ViewCamera.from_fov(c2h, float(fov_y), aspect, size)


def home_view(info, fov_y: float = HOME_FOV) -> tuple[np.ndarray, np.ndarray]:
    """(camera position [3], look-at point [3]) of the start view: in front of the heads
    (+z), far enough that the front of the identities' neutral meshes fits a square view of
    vertical field of view ``fov_y``. ``info``: the model's CastInfo."""
    meshes = info.canonical if info.identity_canonicals is None else info.identity_canonicals
    v = np.asarray(meshes, np.float64).reshape(-1, 3)
    lo, hi = v.min(0), v.max(0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    radius = float(max(half[0], half[1]))
    distance = 1.1 * radius / np.tan(fov_y / 2) + half[2]
    return centre + np.array([0.0, 0.0, distance]), centre
