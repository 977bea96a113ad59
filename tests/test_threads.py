"""Thread policy: passive OpenMP waiting set on import, thread count from usable cores."""
import os

from fastminerf import threads


def test_passive_waiting_is_set_on_import():
    assert "OMP_WAIT_POLICY" in os.environ  # fastminerf/__init__ sets PASSIVE unless the user chose


def test_usable_cores_respects_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.usable_cores() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))


def test_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None
    assert threads.cgroup_cpus(tmp_path / "nowhere") is None
