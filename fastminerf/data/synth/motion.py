"""Talking-head performances: expression trajectories, head poses and (optional) lighting drift.

Everything is a deterministic function of the generator handed in (the cast derives it from
(seed, identity)). Expressions are mouth-dominant and smooth: syllables at 3–6 Hz drive the
jaw and the lips (open, rounded, spread and closed syllables) inside talking phrases with
pauses; smiles and frowns come and go; brows follow slow waves and emphasis; blinks come
every few seconds. Head poses are smooth bounded waves (yaw ±25°, pitch ±15°, roll ±10°,
about a centimetre of translation) around a pivot in the neck.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .appearance import Light
from .expressions import EXPRESSION_NAMES

#: head rotations pivot here (head space, the top of the neck)
PIVOT = np.array([0.0, -0.075, -0.02])
YAW, PITCH, ROLL = 25.0, 15.0, 10.0  # degrees, maximum magnitudes
#: syllable kinds → (probability, {blendshape: (low, high) coefficient}); "jaw" scales jawOpen
SYLLABLES = {
    "open": (0.45, {"jawOpen": (0.6, 1.0)}),
    "round": (0.2, {"jawOpen": (0.25, 0.5), "mouthPucker": (0.4, 0.9), "mouthFunnel": (0.3, 0.8)}),
    "spread": (0.2, {"jawOpen": (0.4, 0.8), "mouthStretch": (0.3, 0.7)}),
    "closed": (0.15, {"jawOpen": (0.0, 0.1), "mouthPress": (0.5, 1.0)}),
}


@dataclass
class Motion:
    """F frames of a performance.

    Attributes:
        fps: frame rate.
        expressions: [F, E] float32 coefficients in [0, 1] (E = len(EXPRESSION_NAMES)).
        head_pose: [F, 4, 4] float64 head-to-world.
        lights: F :class:`~.appearance.Light` (all equal without lighting drift).
        speech: the syllable schedule that drives the mouth (None for a hand-made motion).
    """

    fps: float
    expressions: np.ndarray
    head_pose: np.ndarray
    lights: list[Light]
    speech: Speech | None = None

    @property
    def n_frames(self) -> int:
        return int(self.expressions.shape[0])


def _wave(rng: np.random.Generator, t: np.ndarray, f_lo: float, f_hi: float, k: int = 4) -> np.ndarray:
    """Smooth wave in [−1, 1]: k sines with random frequencies in [f_lo, f_hi] Hz (weights sum to 1)."""
    f = rng.uniform(f_lo, f_hi, k)
    a = rng.uniform(0.5, 1.0, k)
    ph = rng.uniform(0.0, 2 * np.pi, k)
    return (a[None] * np.sin(2 * np.pi * f[None] * t[:, None] + ph[None])).sum(1) / a.sum()


def _bumps(t: np.ndarray, start: np.ndarray, dur: np.ndarray, amp: np.ndarray, plateau: float = 0.0) -> np.ndarray:
    """Σ amp·window over events; each window rises (raised cosine), holds ``plateau`` of its length,
    and falls. t [F], start/dur/amp [N] → [F]."""
    if start.size == 0:
        return np.zeros_like(t)
    x = (t[:, None] - start[None]) / dur[None]  # [F, N] in [0, 1] inside the event
    ramp = (1.0 - plateau) / 2
    rise = np.clip(x / ramp, 0.0, 1.0)
    fall = np.clip((1.0 - x) / ramp, 0.0, 1.0)
    w = 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))
    w[(x < 0) | (x > 1)] = 0.0
    return (w * amp[None]).sum(1)


def _events(rng: np.random.Generator, duration: float, gap: tuple[float, float], length: tuple[float, float],
            first: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Start times and durations of events separated by uniform gaps."""
    starts, durs = [], []
    s = rng.uniform(*first)
    while s < duration:
        d = rng.uniform(*length)
        starts.append(s)
        durs.append(d)
        s += d + rng.uniform(*gap)
    return np.array(starts), np.array(durs)


#: the blendshapes the syllables drive, in the order their coefficients are drawn
MOUTH_TRACKS = ("jawOpen", "mouthPucker", "mouthFunnel", "mouthStretch", "mouthPress")


@dataclass
class Speech:
    """The syllable schedule behind a performance's mouth: what the synthetic voice says
    (:mod:`.audio` turns it into sound; the same numbers drive the jaw and the lips).

    Attributes:
        onsets, lengths: [N] start and length of each syllable (s).
        kinds: [N] index into ``list(SYLLABLES)`` (open, round, spread, closed).
        amp: [N] loudness of each syllable (how wide it opens the mouth).
        coef: {track: [N]} the syllable's coefficient for each of :data:`MOUTH_TRACKS`
            before the amplitude scaling.
        phrase_start, phrase_dur: [P] talking phrases (s); the mouth rests between them.
        energy: this person's mean opening.
    """

    onsets: np.ndarray
    lengths: np.ndarray
    kinds: np.ndarray
    amp: np.ndarray
    coef: dict
    phrase_start: np.ndarray
    phrase_dur: np.ndarray
    energy: float

    def phrase(self, t: np.ndarray) -> np.ndarray:
        """[T] 1 inside a talking phrase, 0 in pauses (smooth edges)."""
        return np.clip(_bumps(t, self.phrase_start, self.phrase_dur, np.ones(self.phrase_start.size), plateau=0.85), 0.0, 1.0)

    def tracks(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Mouth tracks at times t [T] (s): {track: [T]} for :data:`MOUTH_TRACKS`, plus
        "emphasis" (stressed syllables) and "voicing" (every syllable at full height: when
        the voice sounds)."""
        phrase = self.phrase(t)
        out = {}
        for name in MOUTH_TRACKS:
            scale = self.amp if name == "jawOpen" else np.sqrt(self.amp)
            out[name] = _bumps(t, self.onsets, self.lengths, self.coef[name] * scale) * phrase
        out["emphasis"] = _bumps(t, self.onsets, self.lengths, (self.amp > self.energy * 0.9) * 1.0) * phrase
        out["voicing"] = np.clip(_bumps(t, self.onsets, self.lengths, np.ones(self.onsets.size)), 0.0, 1.0) * phrase
        return out


def _talking(rng: np.random.Generator, t: np.ndarray, duration: float) -> tuple[dict[str, np.ndarray], Speech]:
    """Mouth tracks from syllables inside phrases, and the schedule they come from."""
    rate = rng.uniform(0.8, 1.25)  # speaking-speed of this person
    energy = rng.uniform(0.35, 0.65)  # how wide they open the mouth
    ph_start, ph_dur = _events(rng, duration, gap=(0.25, 0.9), length=(1.2, 3.5), first=(0.0, 0.4))
    gaps = rng.uniform(0.16, 0.32, int(duration * 7 / rate) + 4) / rate
    onsets = np.concatenate([[rng.uniform(-0.2, 0.0)], np.cumsum(gaps)])
    onsets = onsets[onsets < duration]
    n = onsets.size
    lengths = np.concatenate([np.diff(onsets), [0.25]]) * rng.uniform(1.1, 1.5, n)
    kinds = list(SYLLABLES)
    pick = rng.choice(len(kinds), n, p=[SYLLABLES[k][0] for k in kinds])
    amp = energy * rng.uniform(0.5, 1.0, n)
    coefs = {}
    for name in MOUTH_TRACKS:
        coef = np.zeros(n)
        for i, kind in enumerate(kinds):
            lo_hi = SYLLABLES[kind][1].get(name)
            if lo_hi is not None:
                sel = pick == i
                coef[sel] = rng.uniform(*lo_hi, sel.sum())
        coefs[name] = coef
    speech = Speech(onsets, lengths, pick, amp, coefs, ph_start, ph_dur, float(energy))
    return speech.tracks(t), speech


def sample_motion(rng: np.random.Generator, n_frames: int, fps: float = 25.0, lighting_drift: float = 0.0) -> Motion:
    """Draw one performance of ``n_frames`` frames."""
    t = np.arange(n_frames) / fps
    duration = n_frames / fps + 0.5
    e = {name: np.zeros(n_frames) for name in EXPRESSION_NAMES}
    talk, speech = _talking(rng, t, duration)
    for k in MOUTH_TRACKS:
        e[k] = talk[k]
    # smiles (slightly asymmetric) and frowns come and go
    s0, sd = _events(rng, duration, gap=(2.0, 7.0), length=(1.0, 3.0), first=(0.0, 3.0))
    smile = _bumps(t, s0, sd, rng.uniform(0.3, 0.9, s0.size), plateau=0.5) + rng.uniform(0.0, 0.15)
    e["mouthSmile_L"] = smile * rng.uniform(0.8, 1.0)
    e["mouthSmile_R"] = smile * rng.uniform(0.8, 1.0)
    f0, fd = _events(rng, duration, gap=(4.0, 12.0), length=(0.8, 2.0), first=(1.0, 8.0))
    e["mouthFrown"] = _bumps(t, f0, fd, rng.uniform(0.2, 0.5, f0.size), plateau=0.4)
    side = 0.35 * _wave(rng, t, 0.1, 0.5)
    e["mouthLeft"], e["mouthRight"] = np.clip(side, 0, None), np.clip(-side, 0, None)
    # brows: slow waves plus a lift on stressed syllables
    brow = _wave(rng, t, 0.1, 0.6)
    e["browInnerUp"] = np.clip(0.5 * brow, 0, None) + 0.4 * talk["emphasis"]
    e["browOuterUp"] = np.clip(0.4 * _wave(rng, t, 0.1, 0.5), 0, None) + 0.25 * talk["emphasis"]
    e["browDown"] = np.clip(-0.45 * brow, 0, None)
    # blinks every few seconds: quick close, slower open
    b0, bd = _events(rng, duration, gap=(1.8, 5.0), length=(0.18, 0.3), first=(0.2, 2.0))
    blink = np.clip(_bumps(t, b0, bd, np.ones(b0.size), plateau=0.2), 0.0, 1.0)
    e["eyeBlink_L"] = blink
    e["eyeBlink_R"] = blink * rng.uniform(0.9, 1.0)
    c0, cd = _events(rng, duration, gap=(6.0, 16.0), length=(0.6, 1.2), first=(2.0, 10.0))
    e["cheekPuff"] = _bumps(t, c0, cd, rng.uniform(0.5, 1.0, c0.size), plateau=0.5)
    expressions = np.clip(np.stack([e[k] for k in EXPRESSION_NAMES], 1), 0.0, 1.0).astype(np.float32)

    yaw = np.deg2rad(YAW) * rng.uniform(0.75, 1.0) * _wave(rng, t, 0.08, 0.5)
    pitch = np.deg2rad(PITCH) * rng.uniform(0.75, 1.0) * _wave(rng, t, 0.1, 0.6)
    roll = np.deg2rad(ROLL) * rng.uniform(0.75, 1.0) * _wave(rng, t, 0.08, 0.4)
    trans = np.stack([0.01 * _wave(rng, t, 0.05, 0.3), 0.008 * _wave(rng, t, 0.05, 0.3),
                      0.015 * _wave(rng, t, 0.05, 0.3)], 1)
    poses = head_poses(yaw, pitch, roll, trans)

    lights = [Light()] * n_frames
    if lighting_drift > 0:
        ly, lp = 0.6 * _wave(rng, t, 0.05, 0.3), 0.4 * _wave(rng, t, 0.05, 0.3)
        gain = 1.0 + 0.25 * _wave(rng, t, 0.05, 0.3)
        tint = 1.0 + 0.1 * np.stack([_wave(rng, t, 0.05, 0.3) for _ in range(3)], 1)
        base = np.asarray(Light().direction)
        lights = []
        for i in range(n_frames):  # per frame, not per pixel: F small objects
            a, b = lighting_drift * ly[i], lighting_drift * lp[i]
            d = _rot_y(a) @ _rot_x(b) @ base
            g = 1.0 + lighting_drift * (gain[i] - 1.0)
            lights.append(Light(direction=tuple(float(x) for x in d), ambient=0.42 * g, diffuse=0.62 * g,
                                tint=tuple(float(1.0 + lighting_drift * (x - 1.0)) for x in tint[i])))
    return Motion(fps=float(fps), expressions=expressions, head_pose=poses, lights=lights, speech=speech)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def head_poses(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Head-to-world matrices [F, 4, 4] for angles [F] (radians; yaw about +y, pitch about +x
    (positive = chin down), roll about +z) and translations [F, 3], rotating about :data:`PIVOT`."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    F = yaw.shape[0]
    z, o = np.zeros(F), np.ones(F)
    Ry = np.stack([np.stack([cy, z, sy], -1), np.stack([z, o, z], -1), np.stack([-sy, z, cy], -1)], 1)
    Rx = np.stack([np.stack([o, z, z], -1), np.stack([z, cp, -sp], -1), np.stack([z, sp, cp], -1)], 1)
    Rz = np.stack([np.stack([cr, -sr, z], -1), np.stack([sr, cr, z], -1), np.stack([z, z, o], -1)], 1)
    R = np.einsum("fij,fjk,fkl->fil", Ry, Rx, Rz)
    out = np.zeros((F, 4, 4))
    out[:, :3, :3] = R
    out[:, :3, 3] = PIVOT - np.einsum("fij,j->fi", R, PIVOT) + trans
    out[:, 3, 3] = 1.0
    return out
