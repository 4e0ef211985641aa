#!/usr/bin/env bash
# Generates the Python modules of the Studio contract (proto/studio/v1) into OUT_DIR (default: ./gen)
# with protoc >= 3.21 (proto3 `optional`) and the gRPC Python plugin. On Debian:
#   apt-get install protobuf-compiler protobuf-compiler-grpc python3-grpcio
# (Debian's python3-grpc-tools bundles protoc 3.5, which cannot compile these files.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/gen}
plugin=$(command -v grpc_python_plugin) || { echo "generate.sh: grpc_python_plugin not found (Debian: protobuf-compiler-grpc)" >&2; exit 1; }
mkdir -p "$out"
protoc -I "$repo/proto" --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" \
  "$repo"/proto/studio/v1/*.proto
echo "generated studio.v1 into $out"
