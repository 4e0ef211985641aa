#!/usr/bin/env bash
# The static checks: proto lint, wire compatibility against the committed baseline,
# generated code freshness, and the type check. Each failure names itself.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/.bin
fail=0
step() { printf '== %s\n' "$1"; }

step "buf lint"
$bin/buf lint || { echo "FAIL: buf lint"; fail=1; }

step "buf breaking (against proto-baseline.binpb)"
$bin/buf breaking --against proto-baseline.binpb || { echo "FAIL: buf breaking: the contract changed incompatibly; if on purpose, regenerate proto-baseline.binpb in its own commit"; fail=1; }

step "gen/ is fresh"
tmp=$(mktemp -d)
$bin/buf generate -o "$tmp" && diff -r "$tmp/gen" gen >/dev/null || { echo "FAIL: gen/ is stale: run 'bun run gen' and commit"; fail=1; }
rm -rf "$tmp"

step "tsc --noEmit"
$bin/tsc --noEmit -p . || { echo "FAIL: tsc"; fail=1; }

exit $fail
