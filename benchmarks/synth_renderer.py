"""Which CPU renderer for the synthetic cast? Time per frame of the procedural head.

Times are the fastest of --repeats calls (trimesh: of one). Measures, for the same mesh and camera (a talking frame of ``fastminerf-synth-head-v1``):
  zbuffer   our exact numpy z-buffer (fastminerf.data.synth.render.rasterize), geometry only
  frame     the full frame as the cast renders it (z-buffer + normals + shading + regions)
  warp      warp-lang BVH ray casting (wp.Mesh + wp.mesh_query_ray per pixel), per frame
            (BVH rebuilt for the new vertices); the one-off kernel compile (cold cache) is
            reported apart
  trimesh   trimesh ray casting (ray.intersects_first; needs rtree, or embree when installed)

    python benchmarks/synth_renderer.py [--size 256] [--repeats 10] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from fastminerf.data.synth.appearance import Light  # noqa: E402
from fastminerf.data.synth.cast import make_member  # noqa: E402
from fastminerf.data.synth.head import build_synth_head  # noqa: E402
from fastminerf.data.synth.render import (  # noqa: E402
    default_camera,  # noqa: E402
    rasterize,
    render_frame,
    to_camera,
)

from common import dumps, environment, write_atomic  # noqa: E402


def _time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after a warm-up (the minimum is robust to other jobs on a
    shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _warp(v_cam: np.ndarray, faces: np.ndarray, cam):
    import tempfile

    import warp as wp

    wp.config.quiet = True
    wp.config.kernel_cache_dir = tempfile.mkdtemp(prefix="warp-cache-")  # cold cache: time the compile
    wp.init()

    @wp.kernel
    def cast(mesh: wp.uint64, dirs: wp.array(dtype=wp.vec3), face: wp.array(dtype=wp.int32),
             depth: wp.array(dtype=wp.float32)):
        i = wp.tid()
        q = wp.mesh_query_ray(mesh, wp.vec3(0.0, 0.0, 0.0), dirs[i], 10.0)
        if q.result:
            face[i] = q.face
            depth[i] = q.t
        else:
            face[i] = -1

    dirs = wp.array(cam.pixel_rays().reshape(-1, 3).astype(np.float32), dtype=wp.vec3, device="cpu")
    n = dirs.shape[0]
    face = wp.zeros(n, dtype=wp.int32, device="cpu")
    depth = wp.zeros(n, dtype=wp.float32, device="cpu")
    idx = wp.array(faces.astype(np.int32).ravel(), dtype=wp.int32, device="cpu")

    def frame():
        mesh = wp.Mesh(points=wp.array(v_cam.astype(np.float32), dtype=wp.vec3, device="cpu"), indices=idx)
        wp.launch(cast, dim=n, inputs=[mesh.id, dirs, face, depth], device="cpu")
        wp.synchronize()
        return face.numpy()

    t0 = time.perf_counter()
    out = frame()  # compiles the kernel into the fresh cache
    first = time.perf_counter() - t0
    return frame, first, out


def _trimesh(v_cam: np.ndarray, faces: np.ndarray, cam):
    import trimesh

    dirs = cam.pixel_rays().reshape(-1, 3)

    def frame():
        mesh = trimesh.Trimesh(v_cam, faces, process=False)
        return mesh.ray.intersects_first(np.zeros_like(dirs), dirs)

    return frame


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    head = build_synth_head()
    m = head.model
    member = make_member(head, 0, 0, 50)
    i = int(np.argmax(member.motion.expressions[:, 0]))  # a frame with the mouth open
    verts = m.mesh(member.shape, member.motion.expressions[i])
    pose = member.motion.head_pose[i]
    cam = default_camera(args.size)
    v_cam = to_camera(verts, pose, cam.c2w)
    ours = rasterize(v_cam, m.faces, cam).face.ravel()
    rows = {"zbuffer": _time(lambda: rasterize(to_camera(verts, pose, cam.c2w), m.faces, cam), args.repeats),
            "frame": _time(lambda: render_frame(head, member.appearance, verts, pose, cam, Light()), args.repeats)}
    notes = {}
    try:
        frame, first, hit = _warp(v_cam, m.faces, cam)
        rows["warp"] = _time(frame, args.repeats)
        notes["warp_first_call_cold_cache_s"] = first
        notes["warp_pixels_agreeing"] = float(((hit >= 0) == (ours >= 0)).mean())
    except Exception as e:  # report, do not fail the other rows
        notes["warp_error"] = f"{type(e).__name__}: {e}"
    try:
        rows["trimesh"] = _time(_trimesh(v_cam, m.faces, cam), 1)
    except Exception as e:
        notes["trimesh_error"] = f"{type(e).__name__}: {e}"
    result = {
        "command": "python benchmarks/synth_renderer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "size": args.size, "repeats": args.repeats, "vertices": m.n_vertices, "faces": int(m.faces.shape[0]),
        "seconds_per_frame": rows, **notes,
        "machine": environment(),
    }
    for k, v in rows.items():
        print(f"{k:8s} {v * 1000:8.1f} ms/frame")
    for k, v in notes.items():
        print(f"{k}: {v}")
    write_atomic(args.out / f"synth_renderer_{args.size}.json", dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
