"""The web preview: render_view, the render worker, the time share, the server over a real
websocket (viser's protocol, no browser), live training, and one-line errors."""
import asyncio
import socket
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("viser")

from fastminerf.api import cast_of, load_avatar, render_sequence
from fastminerf.cli import main
from fastminerf.config import load_config
from fastminerf.errors import InputError
from fastminerf.model.checkpoint import load_checkpoint
from fastminerf.render.views import RenderCancelled, ViewCamera, expression_mesh, look_at, render_view
from fastminerf.train.trainer import prepare_trainer
from fastminerf.viewer.camera import camera_from_client, home_view
from fastminerf.viewer.sequences import load_expressions_file, sequences_for
from fastminerf.viewer.server import PreviewServer
from fastminerf.viewer.state import SLIDERS, ViewState, slider_specs
from fastminerf.viewer.timeshare import TimeShare
from fastminerf.viewer.worker import RenderWorker

from viser_client import ViserTestClient

SIZE = 40  # full preview resolution in these tests
SMALL = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "train.lr_warmup_steps=0", "render.occupancy_resolution=32", "model.grid_log2_size=12"]
FRONT = (0.0, 1.0, 0.0, 0.0)  # wxyz of a camera looking along −z with image-up +y (OpenCV axes)


@pytest.fixture(scope="module")
def synth_cast(tmp_path_factory):
    from fastminerf.data.synth.cast import synthesize_cast

    root = tmp_path_factory.mktemp("viewer") / "cast"
    synthesize_cast(root, n_identities=2, n_frames=6, size=32, seed=3, transfer_drivers=0, write_obj=False,
                    workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def run_dir(synth_cast, tmp_path_factory):
    trainer = prepare_trainer(load_config("tiny_cpu", SMALL + ["train.steps=8"]), [synth_cast],
                              tmp_path_factory.mktemp("runs"))
    trainer.run(progress=False, final_eval=False)
    return trainer.run_dir


@pytest.fixture(scope="module")
def avatar(run_dir):
    avatar = load_avatar(run_dir, device="cpu")[0]
    with torch.no_grad():  # 8 steps barely separate the identities: make id001 look clearly different
        avatar.identity_codes.weight[1] = avatar.identity_codes.weight[0] + 2.0
    return avatar


def front_camera(avatar, size=SIZE) -> ViewCamera:
    position, target = home_view(avatar.info)
    return ViewCamera.from_fov(look_at(position, target), np.deg2rad(30), 1.0, size)


# ---------------------------------------------------------------------------- render_view
def test_render_view_is_the_render_path(avatar, synth_cast):
    info = avatar.info
    cam = front_camera(avatar)
    e = np.zeros(info.n_expressions, np.float32)
    img = render_view(avatar, cam, 0, e)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert render_view(avatar, cam, 0, e, size=20).shape == (20, 20, 3)
    # sliders move the mesh through the expression basis: jawOpen lowers the chin
    jaw = e.copy()
    jaw[info.expression_names.index("jawOpen")] = 1.0
    moved = expression_mesh(info, 0, jaw) - expression_mesh(info, 0, e)
    assert moved[:, 1].min() < -1e-3 and np.allclose(expression_mesh(info, 1, e), info.identity_canonicals[1])
    # render (render_sequence) goes through render_view: same frame, same pixels
    cast = cast_of(avatar)
    seq = next(render_sequence(avatar, cast, "id000", split="test", size=24, max_frames=1))
    f = cast.frames("test", 0)[0]
    lat = avatar.identity_latent(0)
    direct = render_view(avatar, ViewCamera(torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f]),
                                            cast.height, cast.width), 0, cast.expressions[f], lat, 24,
                         vertices=cast.vertices(np.array([f]))[0])
    assert np.array_equal(seq, direct)
    # a guard that cancels stops the render between chunks
    calls = []

    def cancel():
        calls.append(1)
        raise RenderCancelled

    with pytest.raises(RenderCancelled):
        render_view(avatar, cam, 0, e, chunk=64, guard=cancel)
    assert len(calls) == 1


def test_client_camera_is_camera_to_head():
    cam = camera_from_client(FRONT, (0.0, 0.0, 0.6), np.deg2rad(40), 200, 100, 64)
    assert (cam.height, cam.width) == (32, 64)
    assert np.allclose(cam.cam_to_head[:3, :3].numpy(), np.diag([1.0, -1.0, -1.0]), atol=1e-6)
    assert np.allclose(cam.cam_to_head.numpy(), look_at((0, 0, 0.6), (0, 0, 0)), atol=1e-6)
    fx, fy, cx, cy = cam.intrinsics.tolist()
    assert fx == fy and cx == 32 and cy == 16 and np.isclose(16 / fy, np.tan(np.deg2rad(20)))


# ---------------------------------------------------------------------------- state
def test_state_sliders_and_driving_sequences(avatar, tmp_path):
    info = avatar.info
    specs = slider_specs(info)
    assert [s.label for s in specs] == info.expression_names  # named blendshapes, all of them
    assert all(s.lo <= 0 <= s.hi and s.hi - s.lo > 0.05 for s in specs)
    seqs = sequences_for(info)
    assert seqs.names == info.names
    state = ViewState(info, seqs)
    state.set(identity=0, source="id001", frame=2)  # id000 driven by id001's sequence (delta transfer)
    b = seqs.get("id001")
    scene = state.scene()
    assert np.allclose(scene.expression, b.expressions[2])
    assert np.allclose(scene.vertices, info.identity_canonicals[0] + (b.vertices[2] - b.neutral), atol=1e-6)
    assert state.advance() == 3
    np.save(tmp_path / "e.npy", np.ones((5, info.n_expressions + 2), np.float32))
    seqs.add(load_expressions_file(tmp_path / "e.npy", info.n_expressions))
    state.set(source="file: e.npy", frame=1)
    assert np.allclose(state.scene().vertices, expression_mesh(info, 0, np.ones(info.n_expressions)))
    state.set(source=SLIDERS)
    assert np.allclose(state.scene().vertices, info.identity_canonicals[0])
    with pytest.raises(InputError, match="expressions must be"):
        np.save(tmp_path / "bad.npy", np.ones((5, 2), np.float32))
        load_expressions_file(tmp_path / "bad.npy", info.n_expressions)


# ---------------------------------------------------------------------------- worker
def test_worker_latest_request_wins_and_settles():
    cam = ViewCamera(torch.eye(4), torch.tensor([64.0, 64.0, 32.0, 32.0]), 64, 64)
    rendered, published = [], []
    gate = threading.Event()

    def render(req, size, guard):
        rendered.append((req.scene, size))
        for _ in range(20):  # 20 "chunks"
            with guard():
                gate.wait()
                time.sleep(0.002)
        return np.zeros((size, size, 3), np.uint8)

    w = RenderWorker(render, lambda req, img, info: published.append((req.scene, img.shape[0], info.moving)), size=64,
                     rest_s=0.05, min_size=16).start()
    try:
        w.submit(0, cam, "a", moving=False)  # full resolution, held at the gate
        time.sleep(0.05)
        for s in ("b", "c", "d"):  # newer requests: b and c never render, a is dropped
            w.submit(0, cam, s, moving=True)
        gate.set()
        deadline = time.time() + 10
        while not (w.idle() and published) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        w.stop()
    assert [r[0] for r in rendered] == ["a", "d", "d"]  # a (dropped), d moving, d again at full size
    assert w.dropped == 1
    assert [(p[0], p[2]) for p in published] == [("d", True), ("d", False)]
    assert published[0][1] < 64 and published[1][1] == 64


def test_timeshare_keeps_the_budget():
    share = TimeShare(0.25)
    stalls, stop = [], threading.Event()

    def trainer():
        while not stop.is_set():
            t0 = time.perf_counter()
            with share.training():
                stalls.append(time.perf_counter() - t0)
                time.sleep(0.02)

    def renderer():
        while not stop.is_set():
            with share.rendering():
                time.sleep(0.005)

    threads = [threading.Thread(target=f) for f in (trainer, renderer)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    threads[0].join()
    ratio = share.render_seconds / share.train_seconds
    share.close()  # training is over: a renderer waiting for credit goes on
    threads[1].join(10)
    assert not threads[1].is_alive()
    assert 0.6 * (1 / 3) < ratio < 1.4 * (1 / 3)  # share 0.25 → render:train = 1:3
    assert max(stalls) < 0.25  # a step never waits for more than about one step's worth of rendering


# ---------------------------------------------------------------------------- server
def wait_image(client, server, shape, timeout=60.0):
    """The image shown once the viewer has settled after a change (full size, nothing queued)."""
    start = len(client.images)
    return client.pump(lambda: len(client.images) > start and server.worker.idle()
                       and client.images[-1].shape[:2] == shape, timeout)


def test_viewer_over_websocket(avatar):
    info = avatar.info
    position, _ = home_view(info)

    async def session(server):
        async with ViserTestClient(server.port) as c:
            await c.pump(lambda: {"identity", "expressions from", "jawOpen"} <= set(c.gui))
            assert c.gui["identity"]["props"]["options"] == info.names
            await c.send_camera(FRONT, position, np.deg2rad(30), 300, 300)
            await wait_image(c, server, (SIZE, SIZE))
            first = c.images[-1]
            await c.set_gui("identity", "id001")
            await wait_image(c, server, (SIZE, SIZE))
            other = c.images[-1]
            await c.set_gui("jawOpen", c.gui["jawOpen"]["props"]["max"])
            await wait_image(c, server, (SIZE, SIZE))
            jaw = c.images[-1]
            # live transfer: id001 driven by id000's sequence, played then paused
            await c.set_gui("expressions from", "id000")
            await wait_image(c, server, (SIZE, SIZE))
            await c.click("play")
            await c.pump(lambda: c.prop("frame", "value", 0) >= 2 and c.prop("play", "label") == "pause")
            await c.click("play")
            await c.pump(lambda: c.prop("play", "label") == "play")
            assert not server.state.playing and server.state.source == "id000"
            await wait_image(c, server, (SIZE, SIZE))
            await c.send_camera(FRONT, position * 1.5, np.deg2rad(30), 600, 300)  # zoom out, wide window
            await wait_image(c, server, (SIZE // 2, SIZE))
            return first, other, jaw

    with PreviewServer(avatar, sequences_for(info), port=0, size=SIZE, image_format="png") as server:
        assert server.viser.get_host() == "127.0.0.1"
        first, other, jaw = asyncio.run(session(server))
        # the images are render_view's for the client's camera (PNG: lossless)
        cam = camera_from_client(FRONT, position, np.deg2rad(30), 300, 300, SIZE)
        e = np.zeros(info.n_expressions, np.float32)
        for k in (0, 1):
            expected = render_view(avatar, cam, k, e, chunk=server.chunk)
            assert np.abs(expected.astype(int) - (first, other)[k]).max() <= 2

    def changed(a, b):  # share of pixels that changed visibly
        return float((np.abs(a.astype(int) - b).max(-1) > 10).mean())

    print("changed", changed(first, other), changed(other, jaw))
    assert first.std() > 1 and changed(first, other) > 0.02 and changed(other, jaw) > 0.02


def test_training_preview_renders_between_steps(synth_cast, tmp_path):
    from fastminerf.viewer.live import train_with_preview

    cfg = load_config("tiny_cpu", SMALL + ["train.steps=20"])
    seen = {}

    def client_thread(port):
        async def go():
            async with ViserTestClient(port) as c:
                await c.pump(lambda: "render share" in c.gui)
                seen["share"] = c.gui["render share"]["value"]
                await c.send_camera(FRONT, (0.0, 0.0, 0.7), np.deg2rad(30), 100, 100)
                await c.pump(lambda: bool(c.images), timeout=60)
                seen["image"] = c.images[0]

        asyncio.run(go())

    def ready(server):
        t = threading.Thread(target=client_thread, args=(server.port,))
        t.start()
        seen["thread"] = t
        deadline = time.time() + 20
        while not server.viser.get_clients() and time.time() < deadline:  # the client's camera has arrived
            time.sleep(0.01)

    run, metrics, server = train_with_preview(cfg, [synth_cast], tmp_path, progress=False, port=0, size=24,
                                              render_share=0.5, on_ready=ready)
    try:
        seen["thread"].join(60)
        assert metrics["step"] == 20 and "image" in seen and seen["share"] == 0.5
        ts = server.timeshare
        assert ts.render_seconds > 0 and not ts.training_active
        steps = load_checkpoint(run)["step"]
        assert steps == 20
    finally:
        server.stop()


# ---------------------------------------------------------------------------- errors
def test_preview_bad_inputs(run_dir, tmp_path, capsys):
    def one_line_error(args, needle):
        assert main(["preview", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err

    one_line_error(["--checkpoint", str(tmp_path / "missing")], "no checkpoint found")
    state = load_checkpoint(run_dir)
    state["config"]["model"]["grid_levels"] = 3  # a config that does not fit the weights
    bad = tmp_path / "bad.ckpt"
    torch.save(state, bad)
    one_line_error(["--checkpoint", str(bad)], "does not match its config")
    (tmp_path / "e.txt").write_text("1 2\n")
    one_line_error(["--checkpoint", str(run_dir), "--expressions", str(tmp_path / "e.txt")], "expressions must be")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_line_error(["--checkpoint", str(run_dir), "--port", str(port)], f"port {port} on 127.0.0.1 is busy")
