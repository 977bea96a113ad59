#!/usr/bin/env bash
# CUDA build check, run by .ci/run on every CI run (CPU only: compiling needs nvcc, not a GPU).
# Builds all of csrc/ (kernels, torch adapters, bindings) ahead of time into fastminerf._C
# against a CUDA build of torch in its own venv, exactly as a GPU user does
# (FASTMINERF_BUILD_CUDA=1 pip install --no-deps --no-build-isolation -e .), then
# .ci/cuda_check.py imports the module, checks its exports and that the lazy JIT path
# compiles the same sources with the same flags (csrc/build.json).
# The build runs in a temporary copy of the work tree, so no .so built against this torch
# is left where the CPU test venv imports the package. A failed build exits non-zero and
# prints the compiler errors. Without nvcc it prints one line and exits 0.
# Environment: FASTMINERF_CUDA_VENV (default .ci-cuda-venv; reused while its requirements
# are unchanged), TORCH_CUDA_ARCH_LIST (default 9.0), MAX_JOBS (default 2), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="${FASTMINERF_CUDA_VENV:-$ROOT/.ci-cuda-venv}"
# what importing fastminerf._C needs (numpy only silences torch's warning) and the build tools
REQUIREMENTS=(torch==2.14.1 numpy ninja "setuptools>=64" wheel)
WORK=""  # the temporary copy that is built (removed on exit)

find_cuda_home() {
  # The CUDA toolkit to build with: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, then the folder
  # above the real nvcc on PATH; the first with bin/nvcc and include/cuda_runtime.h.
  local c on_path
  on_path=$(command -v nvcc || true)
  for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda "${on_path:+$(dirname "$(dirname "$(readlink -f "$on_path")")")}"; do
    if [[ -n "$c" && -x "$c/bin/nvcc" && -f "$c/include/cuda_runtime.h" ]]; then echo "$c"; return 0; fi
  done
  return 1
}

make_venv() {
  # Create the CUDA venv, or reuse it when it holds exactly REQUIREMENTS (a stamp file says so).
  local want="${REQUIREMENTS[*]}"
  if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.requirements" 2>/dev/null)" == "$want" ]]; then
    echo "venv: reusing $VENV ($want)"
    return 0
  fi
  echo "venv: creating $VENV ($want)"
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  # a current pip: an old one runs the editable build through `setup.py develop`, which
  # recent setuptools hands back to pip with build isolation (and so without torch)
  "$VENV/bin/python" -m pip install -qq --upgrade pip
  "$VENV/bin/python" -m pip install -qq "${REQUIREMENTS[@]}"
  echo "$want" > "$VENV/.requirements"
}

copy_tree() {
  # copy_tree DEST: the work tree's tracked and not-ignored files (no venvs, builds, .so).
  git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$1"
}

show_build_errors() {
  # show_build_errors LOG: the compiler's error lines with context, then the log's tail.
  echo "----- compiler errors (from $1) -----" >&2
  grep -n -B2 -A12 -E '(error|Error)( [A-Z0-9#]+)?:|FAILED:' "$1" | head -n 300 >&2 || true
  echo "----- last 40 lines of the build log -----" >&2
  tail -n 40 "$1" >&2
}

build() {
  # build SRC LOG: the ahead-of-time build of SRC into the CUDA venv (editable, like a user's).
  (cd "$1" && FASTMINERF_BUILD_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
    MAX_JOBS="${MAX_JOBS:-2}" "$VENV/bin/python" -m pip install -v --no-deps --no-build-isolation -e .) > "$2" 2>&1
}

main() {
  local t0=$SECONDS t
  if ! CUDA_HOME=$(find_cuda_home); then
    if command -v nvcc > /dev/null; then
      echo "CUDA build check: FAILED (nvcc is on PATH but no CUDA toolkit folder has it with" \
        "include/cuda_runtime.h: set CUDA_HOME)" >&2
      return 1
    fi
    echo "CUDA build check: SKIPPED (nvcc not found: set CUDA_HOME or put nvcc on PATH)"
    return 0
  fi
  export CUDA_HOME  # torch.utils.cpp_extension builds with this toolkit
  echo "CUDA build check: $("$CUDA_HOME/bin/nvcc" --version | tail -n 1) in $CUDA_HOME"
  t=$SECONDS; make_venv; echo "venv ready in $(( SECONDS - t )) s"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastminerf-cuda-build.XXXXXX")
  trap 'rm -rf -- "$WORK"' EXIT
  copy_tree "$WORK"
  t=$SECONDS
  echo "building fastminerf._C (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}, MAX_JOBS=${MAX_JOBS:-2})"
  if ! build "$WORK" "$WORK/build.log"; then
    show_build_errors "$WORK/build.log"
    echo "CUDA build check: FAILED (the ahead-of-time build of csrc/ did not compile)" >&2
    return 1
  fi
  echo "built in $(( SECONDS - t )) s"
  (cd "$WORK" && "$VENV/bin/python" .ci/cuda_check.py)
  echo "CUDA build check: ok in $(( SECONDS - t0 )) s"
}

main "$@"
