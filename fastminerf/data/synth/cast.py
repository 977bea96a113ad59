"""``synthesize_cast``: write a synthetic cast with ground truth in our layout.

    DIR/
      cast.json               every synthesis parameter, identity names, drivers, version
      contact_sheet.png       identities × named expressions, frontal
      id000/ id001/ ...       one identity each (fastminerf layout, IdentityWriter): 90 % train,
                              10 % test, seg_mask/, meshes/, expression_basis.npy, vertex_regions.npy,
                              audio.wav (16 kHz voice speaking the syllables that drive the mouth: .audio)
        transfer/id001/ ...   cross-reenactment ground truth (held-out only): this identity's
                              shape and appearance driven by id001's test-split expressions,
                              head poses, camera and light

The whole cast is written into a hidden sibling folder and renamed into place at the end, so
an interrupted run leaves nothing that looks like a dataset. Same arguments → same bytes in
every file, whatever the number of worker processes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as q
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ... import __version__
from ...errors import InputError
from ...files import commit_dir, temp_dir
from ...progress import Progress
from ..layout import IdentityWriter, train_count
from .appearance import Appearance, sample_appearance
from .audio import write_member_audio
from .contact import contact_sheet
from .head import IDENTITY_MODES, MODEL_NAME, SynthHead, build_synth_head
from .motion import Motion, sample_motion
from .regions import SKIN, vertex_regions
from .render import Camera, default_camera, render_frame

CAST_FORMAT = "fastminerf-synth-cast-1"
TRAIN_FRACTION = 0.9
FPS = 25.0
MIN_SIZE = 32
SHAPE_CLIP = 2.2  # identity coefficients are N(0, 1) clipped to ±SHAPE_CLIP


def identity_name(index: int) -> str:
    return f"id{index:03d}"


@dataclass
class Member:
    """One identity of the cast: shape coefficients [Ki], appearance and performance."""

    index: int
    name: str
    shape: np.ndarray
    appearance: Appearance
    motion: Motion


def make_member(head: SynthHead, seed: int, index: int, n_frames: int, fps: float = FPS,
                lighting_drift: float = 0.0) -> Member:
    """Identity ``index`` of the cast with ``seed`` (independent random streams for shape,
    appearance and motion, so changing one never changes the others)."""
    model = head.model
    shape = np.clip(np.random.default_rng([seed, index, 0]).normal(size=model.n_identities), -SHAPE_CLIP, SHAPE_CLIP)
    face = np.flatnonzero((model.vertex_regions == SKIN) & (model.vertices[:, 2] > 0.05)
                          & (np.abs(model.vertices[:, 1] + 0.01) < 0.05))
    app = sample_appearance(np.random.default_rng([seed, index, 1]), index, model.vertices, face)
    motion = sample_motion(np.random.default_rng([seed, index, 2]), n_frames, fps, lighting_drift)
    return Member(index, identity_name(index), shape.astype(np.float32), app, motion)


def transfer_drivers(index: int, n_identities: int, k: int | None = None) -> list[int]:
    """Driver indices of identity ``index``: every other identity when N ≤ 4, else the next 3
    (cyclically); ``k`` overrides the count."""
    if k is None:
        k = n_identities - 1 if n_identities <= 4 else 3
    return [(index + j) % n_identities for j in range(1, min(k, n_identities - 1) + 1)]


def render_performance(head: SynthHead, actor: Member, driver: Member, frames, cam: Camera) -> Iterator[tuple]:
    """Render ``actor`` (shape + appearance) performing ``driver``'s frames (expressions, head
    poses, light); the camera is the cast's. Used for an identity's own sequence (driver =
    actor) and for cross-reenactment ground truth.

    Yields:
        (frame index, rgba [H, W, 4] uint8, seg [H, W] uint8, vertices [V, 3] float32,
        expression [E] float32, head_pose [4, 4]).
    """
    for i in frames:
        e = driver.motion.expressions[i]
        pose = driver.motion.head_pose[i]
        verts = head.model.mesh(actor.shape, e)
        rgba, seg = render_frame(head, actor.appearance, verts, pose, cam, driver.motion.lights[i])
        yield int(i), rgba, seg, verts, e, pose


def _writer(head: SynthHead, out: Path, member: Member, n: int, cam: Camera, write_obj: bool, extra: dict,
            with_basis: bool = True) -> IdentityWriter:
    """An IdentityWriter for ``member``'s shape; ``with_basis`` adds expression_basis.npy (1 MB;
    left out of transfer folders, which are evaluation ground truth)."""
    model = head.model
    return IdentityWriter(
        out, n_frames=n, width=cam.width, height=cam.height, intrinsics=cam.intrinsics, faces=model.faces,
        canonical=model.mesh(member.shape), expression_names=model.expression_names, fps=member.motion.fps,
        face_model=MODEL_NAME, vertex_regions=vertex_regions(head, member.appearance.style),
        expression_basis=model.expression_basis if with_basis else None, write_obj=write_obj, extra=extra,
    )


def _write_sequence(w: IdentityWriter, head: SynthHead, actor: Member, driver: Member, frames, cam: Camera,
                    train_fraction: float, tick: Callable[[int], None]) -> None:
    """Render ``actor`` performing ``driver``'s ``frames`` into writer ``w`` (frame k of the folder =
    frames[k], timed as in the driver's video), then finish it; nothing is left on failure."""
    try:
        for k, (i, rgba, seg, verts, e, pose) in enumerate(render_performance(head, actor, driver, frames, cam)):
            w.add(k, rgba, cam.c2w, pose, verts, e, seg=seg, time=i / driver.motion.fps)
            tick(1)
        w.finish(train_fraction)
    except BaseException:
        w.abort()
        raise


def write_identity(head: SynthHead, root: Path, actor: Member, drivers: list[Member], cam: Camera,
                   write_obj: bool = True, tick: Callable[[int], None] = lambda n: None) -> Path:
    """Write ``root/<actor>/`` (its own performance) and ``root/<actor>/transfer/<driver>/`` for
    every driver (their held-out frames). Returns the identity folder."""
    F = actor.motion.n_frames
    extra = {"synthetic": {"cast_format": CAST_FORMAT, "identity_index": actor.index,
                           "identity_coefficients": [round(float(x), 6) for x in actor.shape]}}
    w = _writer(head, root / actor.name, actor, F, cam, write_obj, extra)
    _write_sequence(w, head, actor, actor, range(F), cam, TRAIN_FRACTION, tick)
    for d in drivers:
        test = np.arange(train_count(d.motion.n_frames, TRAIN_FRACTION), d.motion.n_frames)
        extra = {"identity": actor.name,  # the folder itself is named after the driver
                 "transfer": {"identity": actor.name, "driver": d.name, "driver_frames": test.tolist()}}
        w = _writer(head, root / actor.name / "transfer" / d.name, actor, test.size, cam, write_obj, extra, False)
        _write_sequence(w, head, actor, d, test, cam, 0.0, tick)
    return root / actor.name


@dataclass(frozen=True)
class CastSpec:
    """Everything that defines a cast (the bytes written depend on nothing else)."""

    n_identities: int
    n_frames: int
    size: int
    seed: int
    transfer_drivers: int | None = None
    lighting_drift: float = 0.0
    write_obj: bool = True
    fps: float = FPS

    def check(self) -> None:
        """Raise InputError (path None) for arguments that cannot make a cast."""
        problems = [
            (self.n_identities >= 1, f"--identities must be at least 1 (got {self.n_identities})"),
            (self.n_frames >= 2, f"--frames must be at least 2, one of them held out (got {self.n_frames})"),
            (self.size >= MIN_SIZE, f"--size must be at least {MIN_SIZE} pixels (got {self.size})"),
            (self.transfer_drivers is None or 0 <= self.transfer_drivers <= self.n_identities - 1,
             f"--transfer-drivers must be between 0 and {self.n_identities - 1} (got {self.transfer_drivers})"),
            (0.0 <= self.lighting_drift <= 1.0, f"--lighting-drift must be in [0, 1] (got {self.lighting_drift})"),
            (self.fps > 0, f"fps must be positive (got {self.fps})"),
        ]
        for ok, msg in problems:
            if not ok:
                raise InputError(None, msg)

    def members(self, head: SynthHead) -> list[Member]:
        return [make_member(head, self.seed, i, self.n_frames, self.fps, self.lighting_drift) for i in range(self.n_identities)]

    def drivers(self, index: int) -> list[int]:
        return transfer_drivers(index, self.n_identities, self.transfer_drivers)

    def total_frames(self) -> int:
        n_test = self.n_frames - train_count(self.n_frames, TRAIN_FRACTION)
        return sum(self.n_frames + n_test * len(self.drivers(i)) for i in range(self.n_identities))


# --------------------------------------------------------------------------- orchestration

_QUEUE = None  # progress queue of a worker process


def _init_worker(queue) -> None:
    global _QUEUE
    _QUEUE = queue


def _worker_tick(n: int) -> None:
    _QUEUE.put(n)


def _run_task(task: tuple, tick: Callable[[int], None] | None = None) -> None:
    """One unit of work: ("identity", spec, root, index) or ("contact", spec, root, tile)."""
    kind, spec, root, arg = task
    tick = tick or _worker_tick
    head = build_synth_head()
    if kind == "identity":
        actor = make_member(head, spec.seed, arg, spec.n_frames, spec.fps, spec.lighting_drift)
        drivers = [make_member(head, spec.seed, d, spec.n_frames, spec.fps, spec.lighting_drift) for d in spec.drivers(arg)]
        folder = write_identity(head, root, actor, drivers, default_camera(spec.size), spec.write_obj, tick)
        write_member_audio(folder, actor.motion.speech, spec.n_frames, spec.fps, spec.seed, arg)
    elif kind == "contact":
        sheet = contact_sheet(head, spec.members(head), tile=arg)
        Image.fromarray(sheet).save(root / "contact_sheet.png", optimize=True)
        tick(spec.n_identities)
    else:
        raise ValueError(f"unknown task {kind!r}")


def cast_description(spec: CastSpec, head: SynthHead, members: list[Member]) -> dict:
    """The content of cast.json (no timestamps: it is part of the byte-identical output)."""
    cam = default_camera(spec.size)
    n_train = train_count(spec.n_frames, TRAIN_FRACTION)
    return {
        "format": CAST_FORMAT,
        "generator": "fastminerf synth",
        "fastminerf_version": __version__,
        "face_model": MODEL_NAME,
        "n_vertices": head.model.n_vertices,
        "n_faces": int(head.model.faces.shape[0]),
        "seed": spec.seed,
        "n_identities": spec.n_identities,
        "n_frames": spec.n_frames,
        "size": spec.size,
        "fps": spec.fps,
        "train_fraction": TRAIN_FRACTION,
        "train_frames": n_train,
        "test_frames": spec.n_frames - n_train,
        "lighting_drift": spec.lighting_drift,
        "transfer_drivers": spec.transfer_drivers,
        "meshes_written": spec.write_obj,
        "camera": {"intrinsics": [round(float(x), 6) for x in cam.intrinsics],
                   "transform_matrix": np.round(cam.c2w, 6).tolist()},
        "identity_modes": {k: v for k, v in IDENTITY_MODES.items()},
        "shape_clip": SHAPE_CLIP,
        "expression_names": head.model.expression_names,
        "identities": [
            {
                "name": m.name,
                "identity_coefficients": {k: round(float(x), 6) for k, x in zip(IDENTITY_MODES, m.shape)},
                "appearance": m.appearance.to_json(),
                "transfer_drivers": [identity_name(d) for d in spec.drivers(m.index)],
            }
            for m in members
        ],
    }


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise InputError(out, "already exists (pass --overwrite to replace it)")
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if any(out.iterdir()) and not _is_cast(out):
        raise InputError(out, "exists and is not a synthetic cast (no cast.json); refusing to replace it")


def _is_cast(path: Path) -> bool:
    try:
        return json.loads((path / "cast.json").read_text()).get("format") == CAST_FORMAT
    except (OSError, ValueError):
        return False


def synthesize_cast(out: str | Path, n_identities: int, n_frames: int, size: int = 256, seed: int = 0, *,
                    transfer_drivers: int | None = None, lighting_drift: float = 0.0, overwrite: bool = False,
                    write_obj: bool = True, workers: int | None = None, fps: float = FPS, contact_tile: int = 128,
                    progress: bool = True) -> list[Path]:
    """Write a synthetic cast (layout in the module docstring) and return its identity folders.

    Args:
        out: the cast folder to create (its parents are created).
        n_identities, n_frames, size, seed: cast size, frames per identity, square image size, seed.
        transfer_drivers: drivers per identity for cross-reenactment ground truth (default: all
            others when N ≤ 4, else 3).
        lighting_drift: 0 = fixed light; up to 1 = the light's direction, strength and tint drift
            smoothly per frame.
        overwrite: replace an existing cast at ``out`` (only a folder with our cast.json, or empty).
        write_obj: also write meshes/NNNNN.obj per frame.
        workers: processes (default: available CPUs); the output does not depend on it.
        contact_tile: pixel size of one contact-sheet cell.
        progress: show a progress bar (rich on a terminal, plain lines otherwise) on stderr.
    Raises:
        InputError: bad arguments or an existing ``out`` (nothing is written then).
    """
    spec = CastSpec(int(n_identities), int(n_frames), int(size), int(seed), transfer_drivers,
                    float(lighting_drift), bool(write_obj), float(fps))
    spec.check()
    out = Path(out)
    _check_out(out, overwrite)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), spec.n_identities + 1))
    head = build_synth_head()  # built before forking: workers inherit it
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out)
    tasks = [("identity", spec, tmp, i) for i in range(spec.n_identities)] + [("contact", spec, tmp, contact_tile)]
    bar = _Progress(spec.total_frames() + spec.n_identities, f"synth {out}", enabled=progress)
    try:
        if workers == 1:
            for t in tasks:
                _run_task(t, bar.advance)
        else:
            ctx = mp.get_context("fork")
            queue = ctx.Queue()
            with ctx.Pool(workers, initializer=_init_worker, initargs=(queue,)) as pool:
                result = pool.map_async(_run_task, tasks, chunksize=1)
                while not result.ready():
                    bar.drain(queue, timeout=0.2)
                result.get()
            bar.drain(queue, timeout=0.0)
        members = spec.members(head)
        (tmp / "cast.json").write_text(json.dumps(cast_description(spec, head, members), indent=1))
        commit_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return [out / identity_name(i) for i in range(spec.n_identities)]


class _Progress:
    """Frames done out of ``total`` (from this process or the workers' queue) on the shared
    progress line (:mod:`fastminerf.progress`: stderr, with ETA)."""

    def __init__(self, total: int, title: str, enabled: bool = True):
        self.done = 0
        self.bar = Progress(total, title, unit="frame", enabled=enabled).__enter__()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(self.done)

    def drain(self, queue, timeout: float) -> None:
        try:
            n = queue.get(timeout=timeout) if timeout > 0 else queue.get_nowait()
            self.advance(n)
            while True:
                self.advance(queue.get_nowait())
        except q.Empty:
            pass

    def close(self) -> None:
        self.bar.__exit__(None, None, None)
