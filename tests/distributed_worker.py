"""Run by tests/test_distributed.py under torchrun (2 gloo ranks): ``MODE OUT CAST [KEY=VALUE ...]``.

steps: build this rank's trainer (recording which identity caches it opened), run 3 steps,
    save its parameters to OUT/rank{R}.pt and what it opened to OUT/rank{R}.json.
equiv: load OUT/start.pt (weights) and OUT/batch{R}.pt (this rank's B rays, shard frame numbers),
    one step on them, save the all-reduced gradients to OUT/grads{R}.pt.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

mode, out, cast = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
opened: list[str] = []
_load = np.load


def recording_load(path, *a, **k):
    opened.append(str(Path(path).resolve()))
    return _load(path, *a, **k)


np.load = recording_load

from fastminerf.config import load_config  # noqa: E402
from fastminerf.data.rays import RayBatch  # noqa: E402
from fastminerf.train.distributed import prepare_distributed  # noqa: E402

cfg = load_config("tiny_cpu", sys.argv[4:])
tr = prepare_distributed(cfg, [cast], out / "runs")
r = tr.rank
if mode == "steps":
    for _ in range(3):
        tr.train_step()
    torch.save({"model": {k: v.detach().clone() for k, v in tr.avatar.state_dict().items()},
                "cast": tr.avatar.info.to_dict()}, out / f"rank{r}.pt")
    (out / f"rank{r}.json").write_text(json.dumps({"names": tr.cast.names, "opened": opened,
                                                   "bytes_per_step": tr.bytes_per_step,
                                                   "share": tr.share}))
else:
    tr.avatar.load_state_dict(torch.load(out / "start.pt"))
    b = torch.load(out / f"batch{r}.pt")
    tr.batcher.sample = lambda: RayBatch(**b)
    tr.train_step()
    torch.save([p.grad.clone() for p in tr.params], out / f"grads{r}.pt")
torch.distributed.destroy_process_group()
