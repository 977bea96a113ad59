"""A short kill / resume soak (benchmarks/soak.py has the long one): real processes are
SIGKILLed at random moments of a tiny run, then resumed: every checkpoint loads, the resume
succeeds, no temp file is left, and the final weights are bit-identical to an
uninterrupted run of the same seed (train.threads=1)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import soak  # noqa: E402


def test_short_soak(tmp_path):
    res = soak.soak(trials=2, steps=8, save_every=2, finetune_every=0, work=tmp_path / "soak", seed=1)
    s = res["summary"]
    assert s["trials"] == 2 and s["unloadable"] == 0 and s["failed_resumes"] == 0 and s["temps_left"] == 0
    assert s["train_bit_identical"] == s["train_trials"] == 2, res["trials"]
