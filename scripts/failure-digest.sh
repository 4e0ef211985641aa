#!/usr/bin/env bash
# Prints, for each "(fail)" line of a bun test log, the lines bun printed for that test: from the
# previous test's result line (or the file's header) to the "(fail)" line itself, the last 60.
set -euo pipefail
awk '
  /^[0-9]+ tests? failed:$/ { exit }
  /^test\/.*\.test\.ts:$/ { file = $0; n = 0; next }
  /^\((pass|skip|todo)\) / { n = 0; next }
  /^\(fail\) / {
    print "--- " file " " $0
    start = n > 60 ? n - 60 : 0
    for (i = start; i < n; i++) print buf[i]
    n = 0
    next
  }
  { buf[n++] = $0 }
' "$1"
