"""Checks the ahead-of-time CUDA build that .ci/cuda_build.sh just made (run with the CUDA
venv's python, from the root of the built copy): ``fastminerf._C`` imports without a GPU,
exports every name fastminerf/ops/_cuda_ops.py calls on it, and was built from the sources
and flags the lazy JIT path uses (both read csrc/build.json). Exit 1 on any mismatch.
"""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

ROOT = Path.cwd()


def ops_called(wrappers: Path) -> set[str]:
    """Names the wrappers read from the compiled module: ``C.x``, ``self.C.x``, ``ctx.C.x``."""
    names = set()
    for node in ast.walk(ast.parse(wrappers.read_text())):
        if isinstance(node, ast.Attribute):
            v = node.value
            if (isinstance(v, ast.Name) and v.id == "C") or (isinstance(v, ast.Attribute) and v.attr == "C"):
                names.add(node.attr)
    return names


def aot_extension():
    """The Extension setup.py hands to setuptools with FASTMINERF_BUILD_CUDA=1 (not built again)."""
    from distutils.core import run_setup

    import setuptools  # noqa: F401  (puts setuptools' distutils in place)

    os.environ["FASTMINERF_BUILD_CUDA"] = "1"
    dist = run_setup(str(ROOT / "setup.py"), stop_after="init")
    (ext,) = dist.ext_modules
    return ext


def check_module() -> list[str]:
    """fastminerf._C imports from this copy and has every op the wrappers call."""
    import torch  # the extension links against libtorch: torch first, as _cuda_ext.load does

    import fastminerf._C as C

    print(f"imported {C.__name__} from {C.__file__} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"GPU {torch.cuda.is_available()})")
    errors = []
    if not Path(C.__file__).resolve().is_relative_to(ROOT.resolve()):
        errors.append(f"fastminerf._C comes from {C.__file__}, not from the build in {ROOT}")
    called = ops_called(ROOT / "fastminerf" / "ops" / "_cuda_ops.py")
    if len(called) < 5:
        errors.append(f"found only {sorted(called)} called in _cuda_ops.py: the scan is broken")
    missing = sorted(n for n in called if not hasattr(C, n))
    if missing:
        errors.append(f"fastminerf._C lacks {missing}, called in fastminerf/ops/_cuda_ops.py")
    print(f"exports checked: {', '.join(sorted(called))}")
    return errors


def check_same_definition() -> list[str]:
    """The AOT extension's sources, include folders and flags equal the JIT path's."""
    from fastminerf.ops import _cuda_ext

    ext = aot_extension()
    jit = _cuda_ext.jit_kwargs()
    errors = []
    aot_sources = [str((ROOT / s).resolve()) for s in ext.sources]
    if aot_sources != [str(Path(s).resolve()) for s in jit["sources"]]:
        errors.append(f"sources differ:\n  AOT {aot_sources}\n  JIT {jit['sources']}")
    if not set(jit["extra_include_paths"]) <= set(ext.include_dirs):
        errors.append(f"include folders differ: JIT {jit['extra_include_paths']}, AOT {ext.include_dirs}")
    aot_flags = {k: ext.extra_compile_args.get(k) for k in ("cxx", "nvcc")}
    jit_flags = {"cxx": jit["extra_cflags"], "nvcc": jit["extra_cuda_cflags"]}
    if aot_flags != jit_flags:
        errors.append(f"flags differ: AOT {aot_flags}, JIT {jit_flags}")
    print(f"AOT and JIT: {len(aot_sources)} sources, cxx {jit_flags['cxx']}, nvcc {jit_flags['nvcc']}")
    return errors


def main() -> int:
    """Run both checks; print every failure."""
    errors = check_module() + check_same_definition()
    for e in errors:
        print(f"FAILED: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
