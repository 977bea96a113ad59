"""Video → identity folder: track, fit, frame, matte, write (see package doc).

Two decoding passes over the clip: (1) landmarks for every frame, then one batched fit
and the clip's crop box; (2) crop, matte and write each frame through
:class:`~fastminerf.data.layout.IdentityWriter`, which only moves the folder into place
once everything (including ``audio.wav`` and ``qa/``) is written.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..layout import IdentityWriter
from . import qa, tracking, video
from .correspondence import kept_table
from .fitting import FitConfig, FitResult, fit_clip
from .framing import crop_box, face_height
from .masks import HeadMatte
from .segmentation import FaceParts, seg_mask
from .tracking import import_cv2

MIN_FACE_FRACTION = 0.5
QA_FRAMES = 8  # frames on the contact sheet (two tiles each)


@dataclass
class PreprocessOptions:
    """Options of :func:`preprocess_video` (the CLI flags)."""

    size: int = 512                   # output crop side (pixels)
    landmarker: str | None = None     # face_landmarker.task: ARKit scores + pose init
    max_frames: int | None = None     # only the first N frames
    overwrite: bool = False
    write_meshes: bool = True         # meshes/NNNNN.obj per frame (INSTA tools read them)
    write_seg: bool = True            # seg_mask/NNNNN.png with INSTA region ids
    train_fraction: float = 0.9
    fit: FitConfig = field(default_factory=FitConfig)


@dataclass
class TrackedClip:
    """A tracked clip: info, tracks, and fit initialisation (expression [F, E], rotation [F, 3, 3])."""

    info: video.VideoInfo
    tracks: tracking.Tracks
    init_expression: np.ndarray | None
    init_rotation: np.ndarray | None

    @property
    def landmarks(self) -> np.ndarray:
        """[F, 478, 2] source pixels (NaN where no face)."""
        return self.tracks.landmarks[..., :2]

    @property
    def valid(self) -> np.ndarray:
        return self.tracks.found


def track_clip(path, model, landmarker=None, max_frames=None) -> TrackedClip:
    """Decode and track a clip; InputError when MediaPipe finds a face in < half the frames."""
    info = video.probe(path, max_frames)
    tr = tracking.track(video.frames(info), info.n_frames, info.fps, landmarker)
    valid = tr.found
    if valid.mean() < MIN_FACE_FRACTION:
        raise InputError(path, f"no face found in {100 * (1 - valid.mean()):.0f}% of the frames (MediaPipe)"
                         if valid.any() else "no face found in the video (MediaPipe)")
    init_e = init_r = None
    if tr.scores is not None and tr.score_names:
        s = tracking.scores_to_ict(np.nan_to_num(tr.scores), tr.score_names, model.expression_names)
        init_e = tracking.fill_missing(s, valid)
    if tr.transforms is not None and np.isfinite(tr.transforms[valid]).all():
        # canonical face → camera (OpenGL axes); our head axes = MediaPipe canonical axes
        gl2cv = np.diag([1.0, -1.0, -1.0]).astype(np.float32)
        init_r = gl2cv @ tracking.fill_missing(tr.transforms, valid)[:, :3, :3]
        u, _, vt = np.linalg.svd(init_r)
        init_r = u @ vt
    return TrackedClip(info, tr, init_e, init_r)


def fit_tracked(clip: TrackedClip, model, table, weights, config: FitConfig | None = None) -> FitResult:
    """Fit the model to a tracked clip in source pixels (table: [478] kept-vertex ids, weights [478])."""
    return fit_clip(clip.landmarks, clip.valid, weights, model.vertices[table],
                    model.identity_basis[:, table], model.expression_basis[:, table],
                    (clip.info.width, clip.info.height), fps=clip.info.fps,
                    init_expression=clip.init_expression, init_rotation=clip.init_rotation, config=config)


def preprocess_video(path: str | Path, out_dir: str | Path, model, name: str | None = None,
                     options: PreprocessOptions | None = None, log=print) -> Path:
    """Preprocess one clip into ``out_dir/<name>`` (name defaults to the video stem).

    Args:
        model: the ICT :class:`~fastminerf.data.face_model.FaceModel` (``face_model_ict.load_ict``).
    Returns:
        the identity folder (it exists only when everything succeeded).
    Raises:
        InputError naming the file for bad input; nothing is left half-written.
    """
    opt = options or PreprocessOptions()
    path = Path(path)
    target = Path(out_dir) / (name or path.stem)
    if target.exists() and not opt.overwrite:
        raise InputError(target, "already exists (pass --overwrite to replace it)")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    table, weights = kept_table()

    clip = track_clip(path, model, opt.landmarker, opt.max_frames)
    times["track"] = time.perf_counter() - t0
    res = fit_tracked(clip, model, table, weights, opt.fit)
    lm, valid, info = clip.landmarks, clip.valid, clip.info
    W, H = info.width, info.height
    times["fit"] = time.perf_counter() - t0 - times["track"]
    log(f"{path.name}: {info.n_frames} frames at {info.fps:g} fps, face in {100 * valid.mean():.0f}%, "
        f"fit {np.nanmedian(res.error_px):.2f} px median")
    lm_all = tracking.fill_missing(lm, valid)
    box = crop_box(lm_all, valid, W, H, opt.size)
    K = box.intrinsics(res.focal, res.principal)
    canonical = model.mesh(res.identity)
    poses = res.head_pose()

    t1 = time.perf_counter()
    writer = IdentityWriter(target, n_frames=info.n_frames, width=opt.size, height=opt.size, intrinsics=K,
                            faces=model.faces, canonical=canonical, expression_names=model.expression_names,
                            fps=info.fps, face_model=model.name, vertex_regions=model.vertex_regions,
                            expression_basis=model.expression_basis, write_obj=opt.write_meshes,
                            overwrite=opt.overwrite,
                            extra={"source_video": path.name, "crop_box": [box.x0, box.y0, box.side],
                                   "source_size": [W, H], "identity_coefficients": [round(float(x), 5) for x in res.identity]})
    try:
        tiles = _write_frames(writer, info, box, lm_all, res, model, canonical, poses, K, opt.write_seg)
        times["crop_matte_write"] = time.perf_counter() - t1
        has_audio = video.extract_audio(info, writer.tmp / "audio.wav")
        summary = _write_qa(writer.tmp / "qa", tiles, res, lm_all, valid, info, box, K, opt, times, t0,
                            path=path, identity=target.name, has_audio=has_audio)
        writer.finish(opt.train_fraction)
    except BaseException:
        writer.abort()
        raise
    log(f"{path.name} → {target}  ({summary['error_pct_median']:.2f}% median / {summary['error_pct_p95']:.2f}% p95 "
        f"of face height, {summary['frames_per_second']:.1f} frames/s)")
    return target


def _write_qa(qdir: Path, tiles, res: FitResult, lm_all, valid, info, box, K, opt, times, t0, *, path, identity,
              has_audio) -> dict:
    """qa/contact_sheet.png, qa/reprojection.csv and qa/summary.json; returns the summary."""
    qdir.mkdir()
    cv2 = import_cv2()
    cv2.imwrite(str(qdir / "contact_sheet.png"), qa.contact_sheet(tiles, cols=4, tile=384)[..., ::-1])
    fh = face_height(lm_all)
    qa.write_errors_csv(qdir / "reprojection.csv", res.error_px, fh, valid)
    times["total"] = time.perf_counter() - t0
    summary = {
        "video": str(path), "identity": identity, "frames": info.n_frames, "fps": info.fps,
        "duration_s": round(info.duration, 3), "face_found_fraction": round(float(valid.mean()), 4),
        **qa.summary(res.error_px, fh, valid),
        "error_definition": "per frame: mean pixel distance between MediaPipe landmarks and the projected "
                            "fitted model points (landmarks with weight > 0), divided by the forehead-chin "
                            "distance (MediaPipe 10-152); median / 95th percentile over frames",
        "focal_source_px": round(res.focal, 2), "intrinsics_crop": [round(k, 3) for k in K],
        "crop_box_source": [box.x0, box.y0, box.side], "size": opt.size,
        "landmarker": bool(opt.landmarker), "audio": has_audio,
        "timings_s": {k: round(v, 2) for k, v in times.items()},
        "frames_per_second": round(info.n_frames / times["total"], 2),
    }
    qa.write_json(qdir / "summary.json", summary)
    return summary


def _write_frames(writer: IdentityWriter, info, box, lm_all: np.ndarray, res: FitResult, model, canonical, poses, K,
                  write_seg: bool = True) -> list:
    """Second pass: crop, matte, add every frame; returns the QA tiles.

    PNG/OBJ encoding runs in one background thread (zlib and file I/O release the GIL) while
    the main thread decodes and segments the next frames.
    """
    F = info.n_frames
    pick = set(np.linspace(0, F - 1, min(QA_FRAMES, F)).round().astype(int).tolist())
    lm_crop = box.points(lm_all)
    proj_crop = box.points(res.projected)
    c2w = np.eye(4, dtype=np.float32)
    tiles, pending = [], []
    parts = FaceParts.from_mediapipe() if write_seg else None
    with HeadMatte() as matte, ThreadPoolExecutor(max_workers=1) as pool:
        for i, frame in enumerate(video.frames(info)):
            rgb = box.apply(frame)
            alpha = matte(rgb, lm_crop[i])
            rgba = np.concatenate([rgb, alpha[..., None]], -1)
            verts = canonical + np.tensordot(res.expression[i], model.expression_basis, 1)  # [V, 3]
            seg = seg_mask(alpha, lm_crop[i], parts) if parts is not None else None
            pending.append(pool.submit(writer.add, i, rgba, c2w, poses[i], verts, res.expression[i], seg))
            if len(pending) > 4:
                pending.pop(0).result()  # bounded queue; re-raises a writer error here
            if i in pick:
                cam = verts @ poses[i, :3, :3].T + poses[i, :3, 3]
                shaded = qa.render_mesh(rgb, cam, model.faces, K)
                shaded = qa.draw_points(qa.draw_points(shaded, lm_crop[i], (0, 255, 0)), proj_crop[i], (255, 0, 0))
                matted = qa.checker_composite(rgba)
                tiles += [qa.seg_overlay(matted, seg) if seg is not None else matted, shaded]
        for p in pending:
            p.result()
    return tiles
