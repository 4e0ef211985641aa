#!/usr/bin/env bash
# Rebuilds the test engines from upstream at the pinned commits, for anyone with internet access:
# llama.cpp's llama-server and stable-diffusion.cpp's sd-cli for CPU, and the tiny random-weight
# models the real-engine tests load. The result is what STUDIO_TEST_ENGINES points at (CI uses
# the copy in ../shared/engines, built the same way).
#
#   bash scripts/engines/build-engines.sh OUT_DIR        # then: STUDIO_TEST_ENGINES=OUT_DIR bun run test
#
# Needs: git, cmake, ninja, a C++17 compiler, libgomp (gcc), python3 with numpy, pyyaml and tqdm
# (for llama.cpp's gguf-py). About 20 minutes on 2 cores. The binaries are test builds: operators
# build or download their own for their GPUs.
set -euo pipefail

LLAMA_COMMIT=34af94cd9ab277632e27caeec2d41de2fd091b31
SD_COMMIT=97d2990807fe6d558e395f8764198d7c7e7b411c # pins ggml 8e800cef2948046cc47f9db6090491c6128ca42c as a submodule

out=${1:?usage: build-engines.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${ENGINES_WORK:-$out/.work}
mkdir -p "$work/src"

fetch() { # repo dir commit [submodule...]
  if [ ! -d "$work/src/$2/.git" ]; then git clone --filter=blob:none "https://github.com/$1" "$work/src/$2"; fi
  git -C "$work/src/$2" fetch --quiet origin "$3" || true
  git -C "$work/src/$2" checkout --quiet "$3"
  for sub in "${@:4}"; do git -C "$work/src/$2" submodule update --init --quiet "$sub"; done
}
fetch ggml-org/llama.cpp llama.cpp "$LLAMA_COMMIT"
fetch leejet/stable-diffusion.cpp sd.cpp "$SD_COMMIT" ggml

cmake -S "$work/src/llama.cpp" -B "$work/build/llama" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_EXAMPLES=OFF
cmake --build "$work/build/llama" --target llama-server -j"$(nproc)"
cmake -S "$work/src/sd.cpp" -B "$work/build/sd" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
  -DBUILD_SHARED_LIBS=OFF -DSD_BUILD_SHARED_LIBS=OFF -DSD_WEBP=OFF -DSD_WEBM=OFF -DSD_SERVER_BUILD_FRONTEND=OFF
cmake --build "$work/build/sd" --target sd-cli -j"$(nproc)"
cp "$work/build/llama/bin/llama-server" "$work/build/sd/bin/sd-cli" "$out/"

export PYTHONPATH="$work/src/llama.cpp/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
python3 "$here/make-tiny-llama.py" "$out/tiny-llama.gguf"
python3 "$here/make-tiny-llama.py" "$out/tiny-llama-r1.gguf" \
  --chat-template-file "$work/src/llama.cpp/models/templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"
python3 "$here/make-tiny-zimage.py" "$out"
gzip -9 -f "$out/tiny-zimage-vae.safetensors"

(cd "$out" && sha256sum llama-server sd-cli tiny-llama.gguf tiny-llama-r1.gguf tiny-zimage-dit.gguf tiny-zimage-qwen3.gguf)
echo "engines in $out; run the suite with STUDIO_TEST_ENGINES=$out"
