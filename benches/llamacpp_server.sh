#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (OpenAI-compatible HTTP server) from the
# llama.cpp sources vendored in the llama-cpp-python sdist on PyPI, the same way
# ../shared/peers/build_llamacpp.sh builds the benchmark tools (cmake, Release,
# static, CPU). Idempotent and cached under ~/.cache/quorum-peers/; the last
# line printed is the binary's path.
#
#   bash benches/llamacpp_server.sh [JOBS]        # default JOBS=2
#   QUORUM_LLAMA_SERVER=$(bash benches/llamacpp_server.sh | tail -1)
set -euo pipefail
CACHE="${QUORUM_PEERS_CACHE:-$HOME/.cache/quorum-peers}"
VENV="$CACHE/venv"
JOBS="${1:-${JOBS:-2}}"
LCP_VERSION="${LCP_VERSION:-0.3.36}"
# llama.cpp commit vendored by llama-cpp-python 0.3.36 (from its CHANGELOG.md)
LLAMA_COMMIT="${LLAMA_COMMIT:-0c1e57098}"
SRC_PARENT="$CACHE/src"
SDIST_DIR="$SRC_PARENT/llama_cpp_python-$LCP_VERSION"
LLAMA_SRC="$SDIST_DIR/vendor/llama.cpp"
BUILD="$CACHE/build/llama-server"
BIN="$BUILD/bin/llama-server"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$SRC_PARENT" "$CACHE/build"
log() { echo "[llamacpp_server] $*" >&2; }

# cmake + ninja as wheels in a small venv (the machine has neither).
if [[ ! -x "$VENV/bin/cmake" ]]; then
  log "venv with cmake, ninja"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q cmake ninja >&2
fi

if [[ ! -f "$LLAMA_SRC/CMakeLists.txt" ]]; then
  if [[ ! -f "$SRC_PARENT/llama_cpp_python-$LCP_VERSION.tar.gz" ]]; then
    log "downloading llama-cpp-python==$LCP_VERSION sdist from PyPI"
    # Only llama-cpp-python itself must be a source dist; its build backend
    # may come as wheels (pip runs it to read the sdist's metadata).
    "$VENV/bin/pip" download -q --no-deps \
      --no-binary llama-cpp-python \
      --only-binary scikit-build-core,cmake,ninja,pathspec,packaging \
      "llama-cpp-python==$LCP_VERSION" -d "$SRC_PARENT" >&2
  fi
  tar -xzf "$SRC_PARENT/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$SRC_PARENT"
fi

# Stop git from walking up into an enclosing repository (it would report the
# wrong commit); the vendored commit is passed explicitly instead.
export GIT_CEILING_DIRECTORIES="$SDIST_DIR/vendor"
log "cmake configure (Release, -j$JOBS)"
"$VENV/bin/cmake" -S "$LLAMA_SRC" -B "$BUILD" -G Ninja \
  -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_COMMIT="$LLAMA_COMMIT" >&2
log "building llama-server"
"$VENV/bin/cmake" --build "$BUILD" --config Release -j "$JOBS" --target llama-server >&2
[[ -x "$BIN" ]] || { log "build finished but $BIN is missing"; exit 1; }
echo "$BIN"
