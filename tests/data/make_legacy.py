"""Make a tiny checkpoint with main@f296638 (legacy format) and a reference render."""
import sys, numpy as np, torch
sys.path.insert(0, "/work/main/tests")
from pathlib import Path
from fixtures import make_identity
from fastminerf.config import load_config
from fastminerf.train.trainer import train
from fastminerf.api import load_avatar
from fastminerf.render.views import ViewCamera, render_view, look_at
torch.set_num_threads(1)
root = Path("/tmp/legacy/cast")
for i, n in enumerate("ab"):
    make_identity(root, n, n_frames=5, size=16, subdivisions=1, seed=i, basis=True, colour=(200, 120 + 40 * i, 90))
cfg = load_config("tiny_cpu", ["model.grid_levels=4", "model.grid_log2_size=8", "model.grid_finest_resolution=32",
                               "render.occupancy_resolution=8", "model.latent_dim=4", "data.rays_per_batch=64",
                               "data.frames_per_batch=4", "train.steps=25", "train.save_every=0", "train.threads=1", "train.lr_warmup_steps=1",
                               "render.march_steps=32", "model.far_mode=rigid"])
run, m = train(cfg, [root], "/tmp/legacy/runs", progress=False)
ck = sorted((run / "checkpoints").glob("*.ckpt"))[-1]
print(ck, ck.stat().st_size)
av, cfg2 = load_avatar(ck, device="cpu")
cam = ViewCamera(torch.from_numpy(look_at((0, 0, 0.5), (0, 0, 0), (0, -1, 0))), torch.tensor([24., 24., 8., 8.]), 16, 16)
img = render_view(av, cam, 1, torch.tensor([0.1, -0.05, 0.0, 0.02]))
np.save("/tmp/legacy/render.npy", img)
print(img.mean(), img.std())
import shutil; shutil.copy(ck, "/tmp/legacy/legacy.ckpt")
from fastminerf.render.views import render_image, background_color
from fastminerf.model.avatar import FrameBatch
from fastminerf.render.views import expression_mesh
e = torch.tensor([0.1, -0.05, 0.0, 0.02])
fb = FrameBatch(vertices=torch.from_numpy(expression_mesh(av.info, 1, e))[None], expression=e[None], identity=torch.tensor([1]), latent=av.identity_latent(1)[None])
out = render_image(av, fb, cam.cam_to_head, cam.intrinsics, 16, 16, background_color("white"))
np.savez("/tmp/legacy/render_float.npz", **{k: v.numpy() for k, v in out.items()})
print("opacity", out["opacity"].mean().item(), out["opacity"].max().item())
