#!/usr/bin/env bash
# The README's test command: the system packages the suite drives (installed here when root with
# apt-get, else one line says what to install and nothing runs), static checks, then the whole bun
# test suite. The last line is "N passed, N failed" (a failed static check counts as one failure).
set -uo pipefail
cd "$(dirname "$0")/.."
deps=$(bash scripts/system-deps.sh) || { echo "bun run test: ${deps##*$'\n'}"; exit 1; }
[ -n "$deps" ] && echo "$deps"
check_failed=0
bash scripts/check.sh || check_failed=1

log=$(mktemp)
bun test --timeout 60000 "$@" 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n1 | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n1 | grep -Eo '[0-9]+' || echo 0)
[ -z "$passed" ] && passed=0
[ -z "$failed" ] && failed=0
failed=$((failed + check_failed))
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# CI keeps only the end of the output: repeat each failed test with what it printed (bun prints
# the error and the test's own output above its "(fail)" line), so that the reason is in view.
if [ "$failed" -gt 0 ]; then
  echo
  echo "what the failed tests printed (last 60 lines each):"
  bash scripts/failure-digest.sh "$log"
fi
rm -f "$log"
if [ -z "${STUDIO_TEST_ENGINES:-}" ]; then
  echo "NOTICE: STUDIO_TEST_ENGINES is unset: the real-engine tests (llama-server, sd-cli) did NOT run; CI runs them."
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
