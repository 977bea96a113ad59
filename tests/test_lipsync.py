"""Audio-driven lip sync: the synthetic voice, audio reading and its errors, features, the
temporal net (learning, causality), the model file, and ``fastminerf lipsync`` end to end
(an mp4 whose audio stream has the audio's length) on a tiny model."""
import hashlib
import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from fastminerf.cli import main
from fastminerf.data.synth.audio import formants, sample_voice, synthesize_speech, write_wav
from fastminerf.data.synth.expressions import EXPRESSION_NAMES
from fastminerf.data.synth.motion import MOUTH_TRACKS, sample_motion
from fastminerf.errors import InputError
from fastminerf.lipsync.audio import load_audio
from fastminerf.lipsync.checkpoint import load_lipsync
from fastminerf.lipsync.drive import loop_indices
from fastminerf.lipsync.evaluate import best_offset, corr
from fastminerf.lipsync.features import audio_features, feature_dim, frame_energy, log_mel, n_video_frames
from fastminerf.lipsync.model import AudioToExpression
from fastminerf.lipsync.train import Clip, LipsyncConfig, mouth_coefficients, train_lipsync

from fixtures import make_identity

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
JAW = EXPRESSION_NAMES.index("jawOpen")


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _performance(seed: int, n_frames: int = 200, fps: float = 25.0):
    """(motion, 16 kHz voice samples) of one synthetic person, as `fastminerf synth` makes them."""
    m = sample_motion(np.random.default_rng([seed, 0, 2]), n_frames, fps)
    rng = np.random.default_rng([seed, 0, 3])
    return m, synthesize_speech(m.speech, n_frames / fps, sample_voice(rng), rng)


def _clip(seed: int, n_frames: int = 200, fps: float = 25.0) -> Clip:
    m, x = _performance(seed, n_frames, fps)
    split = np.arange(n_frames) < int(0.9 * n_frames)
    return Clip(f"s{seed}", Path("."), fps, audio_features(x, 16000, fps, n_frames), m.expressions, split,
                list(EXPRESSION_NAMES), frame_energy(x, 16000, fps, n_frames))


# --------------------------------------------------------------------------- synthetic voice

def test_synthetic_cast_expressions_unchanged_by_the_speech_refactor():
    """The syllable schedule is exposed (Motion.speech) without changing a single expression,
    pose or light: digest computed before motion.py was refactored."""
    h = hashlib.sha256()
    for s in range(5):
        m = sample_motion(np.random.default_rng([s, 1, 2]), 200, 25.0, 0.3)
        h.update(m.expressions.tobytes())
        h.update(m.head_pose.tobytes())
        h.update(repr(m.lights).encode())
    assert h.hexdigest() == "69d662034f65a7698e455cc45c2dc7fe1dd66d4f75e828a4478319ca5e482333"
    m = sample_motion(np.random.default_rng([0, 1, 2]), 50, 25.0)
    tracks = m.speech.tracks(np.arange(50) / 25.0)
    for name in MOUTH_TRACKS:  # the schedule reproduces the expressions it drives
        np.testing.assert_allclose(np.clip(tracks[name], 0, 1), m.expressions[:, EXPRESSION_NAMES.index(name)], atol=1e-6)


def test_synthetic_voice_follows_the_schedule():
    m, x = _performance(4, n_frames=250)
    assert x.dtype == np.float32 and x.shape == (10 * 16000,) and np.abs(x).max() <= 1.0
    assert np.array_equal(x, _performance(4, n_frames=250)[1])  # deterministic
    jaw = m.expressions[:, JAW]
    energy = np.exp(frame_energy(x, 16000, 25.0, 250))
    assert corr(energy, jaw) > 0.7  # louder when the jaw is open
    assert best_offset(energy, jaw) == 0  # and in sync
    voicing = m.speech.tracks(np.arange(250) / 25.0)["voicing"]
    silent, talking = voicing < 1e-3, jaw > 0.2
    assert silent.any() and talking.any()
    assert np.median(energy[silent]) < 0.05 * np.median(energy[talking])  # pauses are silent
    # F1 follows the jaw: the spectral centroid of 200–1100 Hz during voiced frames
    mel = np.exp(log_mel(x))  # [N, 40] at 100 Hz
    from fastminerf.lipsync.features import mel_filterbank

    centres = np.argmax(mel_filterbank(16000, 512), 1) * 16000 / 512
    band = (centres > 200) & (centres < 1100)
    centroid = (mel[:, band] * centres[band]).sum(1) / mel[:, band].sum(1)
    frames = (np.arange(250) / 25.0 / 0.01).round().astype(int)
    voiced = voicing > 0.5
    assert corr(centroid[frames][voiced], jaw[voiced]) > 0.5
    F = formants({"jawOpen": np.array([0.0, 0.6]), "mouthPucker": np.array([0.8, 0.0]),
                  "mouthFunnel": np.zeros(2), "mouthStretch": np.array([0.0, 0.6])})
    assert F[0, 1] > F[0, 0] + 400 and F[1, 1] > F[1, 0] + 600  # open/spread vs rounded


def test_synth_writes_audio_per_identity(tmp_path):
    from fastminerf.data.synth.cast import synthesize_cast

    synthesize_cast(tmp_path / "c", 1, 3, 32, seed=2, write_obj=False, workers=1, progress=False, transfer_drivers=0)
    a = load_audio(tmp_path / "c" / "id000" / "audio.wav", check=False)
    assert a.source_rate == 16000 and a.duration == pytest.approx(3 / 25.0, abs=1e-3)


# --------------------------------------------------------------------------- audio reading

def _wav(path, x, rate, channels=1):
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    if channels == 2:
        pcm = np.stack([pcm, pcm], 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_any_audio_is_resampled_to_16k_mono(tmp_path):
    t = np.arange(int(1.5 * 44100)) / 44100
    src = _wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 44100, channels=2)
    a = load_audio(src)
    assert a.source_rate == 44100 and a.sample_rate == 16000 and a.samples.ndim == 1
    assert a.duration == pytest.approx(1.5, abs=0.01)
    for ext, codec in ((".mp3", "libmp3lame"), (".mp4", "aac")):
        out = tmp_path / f"a{ext}"
        subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-c:a", codec, str(out)], check=True)
        b = load_audio(out)
        assert b.duration == pytest.approx(1.5, abs=0.08), ext
        spec = np.abs(np.fft.rfft(b.samples[4000:20000]))
        assert np.argmax(spec) * 16000 / 16000 == pytest.approx(440, abs=2)  # still a 440 Hz tone


def test_bad_audio_gives_one_line_errors(tmp_path, capsys):
    t = np.arange(16000) / 16000
    cases = {
        "silent": (_wav(tmp_path / "silent.wav", np.zeros(16000), 16000), "silent"),
        "short": (_wav(tmp_path / "short.wav", 0.3 * np.sin(2 * np.pi * 200 * t[:3200]), 16000), "0.20 s long"),
        "rate": (_wav(tmp_path / "rate.wav", 0.3 * np.sin(2 * np.pi * 200 * t[:4000]), 4000), "4000 Hz is too low"),
        "junk": ((tmp_path / "junk.wav"), "not a readable audio file"),
        "missing": ((tmp_path / "missing.wav"), "not found"),
    }
    (tmp_path / "junk.wav").write_text("not audio at all")
    from fastminerf.render.video import write_video

    video = write_video(tmp_path / "mute.mp4", [np.zeros((16, 16, 3), np.uint8)] * 25, 25.0)
    cases["mute"] = (video, "no audio stream")
    for name, (path, problem) in cases.items():
        with pytest.raises(InputError, match=problem) as err:
            load_audio(path)
        assert err.value.path == str(path), name
    # the CLI prints one line and exits 2 before loading any model
    assert main(["lipsync", "--checkpoint", str(tmp_path), "--identity", "a", "--audio", str(tmp_path / "silent.wav"),
                 "--out", str(tmp_path / "x.mp4")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'silent.wav'}: audio is silent (loudest 50 ms at -200 dBFS; speech needs more than -50 dBFS)"]


# --------------------------------------------------------------------------- features and model

def test_features_are_at_the_video_frame_rate():
    x = np.zeros(2 * 16000, np.float32)
    x[16000:19200] = 0.5 * np.sin(2 * np.pi * 300 * np.arange(3200) / 16000)  # a burst at 1.0–1.2 s
    for fps in (25.0, 30.0):
        n = n_video_frames(2.0, fps)
        f = audio_features(x, 16000, fps, n)
        assert n == int(2 * fps) and f.shape == (n, feature_dim("mel")) and f.dtype == np.float32
        loud = np.flatnonzero(f.mean(1) > f.mean(1).min() + 0.5 * np.ptp(f.mean(1)))
        assert loud.min() >= int(1.0 * fps) - 1 and loud.max() <= int(np.ceil(1.2 * fps)) + 1
    assert n_video_frames(5.016, 25.0) == 126  # every frame k with k / fps inside the audio


def test_causal_model_does_not_look_ahead():
    torch.manual_seed(0)
    for causal in (True, False):
        net = AudioToExpression(12, 3, hidden=16, causal=causal, n_speakers=2).eval()
        x = torch.randn(1, 40, 12)
        y = x.clone()
        y[:, 20:] += torch.randn(1, 20, 12)
        a, b = net(x), net(y)
        before, after = net.receptive_field
        if causal:
            assert (before, after) == (14, 0) and torch.equal(a[:, :20], b[:, :20])
        else:
            assert (before, after) == (7, 7)
            assert torch.equal(a[:, :13], b[:, :13]) and not torch.allclose(a[:, 13:20], b[:, 13:20])


def test_mouth_coefficients_by_name_or_by_lip_motion():
    names = ["browDown", "mouthPucker", "jawOpen", "eyeBlink_L", "mouthClose"]
    assert mouth_coefficients(names, np.zeros((4, 5))) == [2, 1, 4]  # jaw opener first
    rng = np.random.default_rng(0)
    e = rng.random((50, 3))
    basis = np.zeros((3, 6, 3))
    basis[1, :3, 1] = 0.01  # coefficient 1 moves the lips (vertices 0-2)
    basis[2, 3:, 0] = 0.01  # coefficient 2 moves the rest
    regions = np.array([130, 120, 140, 250, 250, 250], np.uint8)
    assert mouth_coefficients(["", "", ""], e, basis, regions) == [1]


def test_model_learns_the_synthetic_voice(tmp_path):
    torch.set_num_threads(1)
    clips = [_clip(s, 150) for s in range(3)]
    path, m = train_lipsync([], tmp_path / "lip.pt", LipsyncConfig(steps=150, hidden=32, batch=8), progress=False,
                            clips=clips)
    assert m["jaw_corr"] > 0.85  # held-out last 10 % of each performance
    state = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert state["format"] == "fastminerf-lipsync-1" and state["coefficients"][0] == "jawOpen"
    lip = load_lipsync(path)
    new = _clip(7, 150)  # an unseen person and performance
    pred = lip.predict_features(new.features)
    assert pred.shape == (150, len(lip.coefficients))
    assert corr(pred[:, 0], new.expressions[:, JAW]) > 0.8 and best_offset(pred[:, 0], new.expressions[:, JAW]) == 0
    (tmp_path / "foreign.pt").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable lip-sync model"):
        load_lipsync(tmp_path / "foreign.pt")


def test_pose_loop_goes_forth_and_back():
    assert loop_indices(8, 3).tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert loop_indices(3, 5, "hold").tolist() == [0, 0, 0]


# --------------------------------------------------------------------------- the command

def _audio_stream_seconds(mp4: Path) -> float:
    """Length of the mp4's audio stream by decoding it (ffprobe is not always installed)."""
    raw = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(mp4), "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                          "-ar", "16000", "-"], capture_output=True, check=True).stdout
    return len(raw) / 2 / 16000


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two breathing-sphere identities with a voice each, a 4-step avatar and a 60-step lip-sync model."""
    from fastminerf.config import load_config
    from fastminerf.train.trainer import train

    root = tmp_path_factory.mktemp("lipsync")
    for k in range(2):
        d = make_identity(root / "cast", f"id{k}", n_frames=25, size=16, colour=(200, 60 + 80 * k, 60), seed=k, basis=True)
        write_wav(d / "audio.wav", _performance(k, 25)[1])
    cfg = load_config("tiny_cpu", ["data.rays_per_batch=128", "data.frames_per_batch=8", "train.eval_every=0",
                                   "train.save_every=0", "train.max_minutes=null", "render.occupancy_resolution=16",
                                   "train.steps=4", "train.threads=1"])
    run, _ = train(cfg, [root / "cast"], root / "runs", progress=False)
    assert main(["lipsync-train", "--identities", str(root / "cast"), "--out", str(run / "lipsync.pt"),
                 "--steps", "60", "--quiet"]) == 0
    speech = write_wav(root / "speech.wav", _performance(9, 20)[1])  # 0.8 s
    return root, run, speech


def test_lipsync_renders_any_identity_with_the_audio_muxed(tiny_run, tmp_path):
    root, run, speech = tiny_run
    for name, pose in (("id0", "hold"), ("id1", "loop")):
        out = tmp_path / f"{name}.mp4"
        assert main(["lipsync", "--checkpoint", str(run), "--identity", name, "--audio", str(speech), "--out", str(out),
                     "--size", "16", "--save-expressions", str(tmp_path / f"{name}.npy"), "--pose", pose]) == 0
        e = np.load(tmp_path / f"{name}.npy")
        assert e.shape == (20, 4) and np.isfinite(e).all()  # 0.8 s at 25 fps
        assert _audio_stream_seconds(out) == pytest.approx(0.8, abs=0.05)
        ffprobe = shutil.which("ffprobe")
        if ffprobe:  # Debian's ffmpeg package; the decode above checks the same without it
            info = json.loads(subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type,duration",
                                              "-of", "json", str(out)], capture_output=True, text=True, check=True).stdout)
            kinds = {s["codec_type"]: float(s["duration"]) for s in info["streams"]}
            assert kinds["audio"] == pytest.approx(0.8, abs=0.05) and kinds["video"] == pytest.approx(0.8, abs=0.05)


def test_lipsync_errors_name_the_file(tiny_run, tmp_path, capsys):
    root, run, speech = tiny_run
    assert main(["lipsync", "--checkpoint", str(run), "--identity", "id0", "--audio", str(speech),
                 "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["lipsync", "--checkpoint", str(run), "--identity", "id0", "--audio", str(speech),
                 "--out", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "none.pt")]) == 2
    assert main(["lipsync-train", "--identities", str(root / "runs"), "--out", str(tmp_path / "l.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "must be an .mp4" in err[0] and "lip-sync model not found" in err[1]


# --------------------------------------------------------------------------- real speech (shared data)

@pytest.mark.skipif(not (SHARED / "vretalk_audio1.wav").is_file(),
                    reason="../shared/data/videos/vretalk_audio1.wav not present (shared test data)")
def test_real_speech_features_and_phones():
    a = load_audio(SHARED / "vretalk_audio1.wav")
    assert a.source_rate == 44100 and a.duration == pytest.approx(5.016, abs=0.01)
    f = audio_features(a.samples, 16000, 25.0, n_video_frames(a.duration, 25.0))
    assert f.shape == (126, feature_dim("mel")) and np.isfinite(f).all()
    pytest.importorskip("pocketsphinx", reason="phone features need the lipsync extra (pocketsphinx)")
    from fastminerf.lipsync.features import PHONES, phone_labels

    labels = phone_labels(a.samples)
    assert labels.shape[0] == pytest.approx(a.duration * 100, abs=2)
    assert len(set(labels.tolist()) - {PHONES.index("SIL")}) > 10  # many phones in 5 s of English


def test_preview_drives_the_selected_identity_from_audio(tiny_run, capsys):
    pytest.importorskip("viser", reason="the preview needs viser (preview or test extra)")
    from fastminerf.api import load_avatar
    from fastminerf.viewer.audio import AudioDriver
    from fastminerf.viewer.sequences import sequences_for
    from fastminerf.viewer.server import PreviewServer

    root, run, speech = tiny_run
    avatar, _ = load_avatar(run, device="cpu")
    sequences = sequences_for(avatar.info)
    driver = AudioDriver(load_lipsync(run / "lipsync.pt"), sequences, avatar.info)
    listed = driver.add_file(speech)  # preview --audio FILE
    assert listed == "audio: speech.wav" and len(sequences.get(listed)) == 20
    with PreviewServer(avatar, sequences, port=0, size=8, audio=driver) as server:
        c = server.controls
        assert c.upload is not None
        name = c.add_audio("my talk.wav", speech.read_bytes())  # what the upload button does
        assert name == "audio: my talk.wav" and server.state.source == name
        assert name in c.source.options and len(sequences.get(name)) == 20
        assert c.add_audio("junk.wav", b"not audio") is None and "audio not used" in c.readout.content
    # --audio without a lip-sync model: one line, exit 2
    (run / "lipsync.pt").rename(run / "moved.pt")
    try:
        assert main(["preview", "--checkpoint", str(run), "--audio", str(speech), "--port", "0"]) == 2
    finally:
        (run / "moved.pt").rename(run / "lipsync.pt")
    assert "no lip-sync model beside this checkpoint" in capsys.readouterr().err
