"""One definition of the CUDA extension (csrc/build.json) for both builds, checked without
compiling: setup.py (ahead-of-time ``fastminerf._C``) and the lazy JIT path
(fastminerf/ops/_cuda_ext.py) compile the same sources with the same flags, every file the
definition names exists, and no source in csrc/ is left out. The real build of both is
.ci/cuda_build.sh (a CUDA torch in its own venv, on every CI run with nvcc).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from fastminerf.ops import _cuda_ext

ROOT = Path(__file__).resolve().parent.parent
TORCH_HEADER = re.compile(r"#\s*include\s*[<\"](torch|ATen|c10|pybind11)/")

# setup.py's extension arguments, in a fresh interpreter with setuptools.setup stubbed out
# (so nothing is built or installed); also proves that reading them imports no torch.
SETUP_ARGS = """
import importlib.util, json, sys, setuptools
setuptools.setup = lambda **kw: None
spec = importlib.util.spec_from_file_location("fastminerf_setup", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
kw = mod.cuda_extension_kwargs()
assert "torch" not in sys.modules, "reading the build definition imported torch"
print(json.dumps(kw))
"""


def _definition() -> dict:
    return json.loads((_cuda_ext.csrc_dir() / _cuda_ext.BUILD_FILE).read_text())


def _setup_kwargs() -> dict:
    r = subprocess.run([sys.executable, "-c", SETUP_ARGS, str(ROOT / "setup.py")], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_definition_names_existing_files_and_every_source():
    """Every file build.json names exists; every csrc/*.cu and *.cpp is in it, once."""
    spec = _cuda_ext.build_spec()
    missing = [str(p) for p in [*spec.sources, *spec.include_dirs] if not p.exists()]
    assert not missing, f"named in csrc/build.json but missing: {missing}"
    assert all(p.suffix == ".cu" for p in spec.kernels) and all(p.suffix == ".cpp" for p in spec.adapters)
    names = [p.name for p in spec.sources]
    assert len(names) == len(set(names)), f"listed twice: {names}"
    csrc = _cuda_ext.csrc_dir()
    on_disk = {p.name for p in [*csrc.glob("*.cu"), *csrc.glob("*.cpp")]}
    assert on_disk == set(names), f"in csrc/ but not in build.json: {sorted(on_disk - set(names))}"


def test_kernels_include_no_torch_header():
    """The kernels (and the .cuh they include) stay plain CUDA: they compile with nvcc -c alone."""
    spec = _cuda_ext.build_spec()
    files = [*spec.kernels, *sorted(_cuda_ext.csrc_dir().glob("*.cuh"))]
    bad = [p.name for p in files if TORCH_HEADER.search(p.read_text())]
    assert not bad, f"kernel files including torch headers: {bad}"


def test_setup_and_jit_read_the_same_definition():
    """setup.py's CUDAExtension arguments and the JIT's load() arguments are build.json's."""
    d = _definition()
    aot = _setup_kwargs()
    jit = _cuda_ext.jit_kwargs()
    csrc = _cuda_ext.csrc_dir()
    named = [str(csrc / f) for f in [*d["kernels"], *d["adapters"]]]
    assert aot["name"] == "fastminerf._C"
    assert [str((ROOT / s).resolve()) for s in aot["sources"]] == jit["sources"] == named
    assert aot["include_dirs"] == jit["extra_include_paths"] == [str(csrc / f) for f in d["include_dirs"]]
    assert aot["extra_compile_args"] == {"cxx": jit["extra_cflags"], "nvcc": jit["extra_cuda_cflags"]}
    assert jit["extra_cflags"] == d["cxx_flags"] and jit["extra_cuda_cflags"] == d["nvcc_flags"]
