#!/usr/bin/env bash
# The Debian packages the suite drives for real: the one list, used by `bun run test` (scripts/test.sh,
# before anything runs) and so by CI. Add a package here, nowhere else.
#
#   bash scripts/system-deps.sh             install what is missing when root with apt-get; otherwise
#                                           print one line naming what is missing and the command that
#                                           installs it, and exit 1
#   bash scripts/system-deps.sh --check     only say what is missing (exit 1 when anything is)
#   bash scripts/system-deps.sh --packages  the package names, one per line
#
# Each entry: how to tell it is there (cmd:NAME on PATH, file:/PATH exists, py:MODULE for Debian's
# /usr/bin/python3, lib:SONAME known to the dynamic linker), the Debian package, what needs it. Checks
# mirror how the tests find each one.
set -uo pipefail

DEPS=(
  "file:/usr/bin/chromium                   chromium                test/web: the admin page in headless Chromium"
  "cmd:redis-server                         redis-server            bench/dispatch's BullMQ peer (test/bench)"
  "file:/usr/sbin/nginx                     nginx-light             bench/download's file server (test/bench)"
  "cmd:openssl                              openssl                 test certificates; bench/download's hashing baseline"
  "cmd:curl                                 curl                    bench/download's curl | openssl baseline"
  "file:/usr/lib/postgresql/15/bin/initdb   postgresql              PostgreSQL 15: storage suites, replica tests, chaos on PostgreSQL (test/helpers/test-pg.ts)"
  "cmd:protoc                               protobuf-compiler       examples/python: stubs from the proto (protoc >= 3.21)"
  "cmd:grpc_python_plugin                   protobuf-compiler-grpc  examples/python: gRPC stubs"
  "file:/usr/include/google/protobuf/timestamp.proto libprotobuf-dev  examples/python: the well-known types protoc imports"
  "py:grpc                                  python3-grpcio          examples/python: the workers' runtime"
  "lib:libgomp.so.1                         libgomp1                the real llama-server and sd-cli (STUDIO_TEST_ENGINES) link it"
)

have() {
  case "$1" in
    cmd:*) command -v "${1#cmd:}" >/dev/null 2>&1 ;;
    file:*) [ -e "${1#file:}" ] ;;
    py:*) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ${1#py:}" >/dev/null 2>&1 ;;
    lib:*) [[ "$(/sbin/ldconfig -p 2>/dev/null)" == *$'\t'"${1#lib:} ("* ]] ;;
    *) echo "system-deps.sh: unknown check $1" >&2; return 1 ;;
  esac
}

missing() { # sets what (the missing programs/modules) and pkgs (their packages)
  what=() pkgs=()
  local entry check pkg
  for entry in "${DEPS[@]}"; do
    read -r check pkg _ <<<"$entry"
    have "$check" && continue
    what+=("${check#*:}")
    pkgs+=("$pkg")
  done
}

join() { local out="" x; for x in "$@"; do out+="${out:+, }$x"; done; echo "$out"; }

mode=${1:-install}
case "$mode" in
  --packages)
    for entry in "${DEPS[@]}"; do read -r _ pkg _ <<<"$entry"; echo "$pkg"; done
    exit 0 ;;
  --check | install) ;;
  *) echo "usage: bash scripts/system-deps.sh [--check | --packages]" >&2; exit 2 ;;
esac

missing
[ ${#pkgs[@]} -eq 0 ] && exit 0
install_cmd="apt-get install -y --no-install-recommends ${pkgs[*]}"
if [ "$mode" = install ] && [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${pkgs[*]} from apt (missing: $(join "${what[@]}"))"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
    || { echo "could not install ${pkgs[*]}: run '$install_cmd' to see why"; exit 1; }
  missing
  [ ${#pkgs[@]} -eq 0 ] && exit 0
  echo "still missing after apt-get install: $(join "${what[@]}")"
  exit 1
fi
prefix=""
[ "$EUID" -eq 0 ] || prefix="sudo "
if command -v apt-get >/dev/null 2>&1; then
  echo "missing $(join "${what[@]}"): install them first with: ${prefix}${install_cmd}"
else
  echo "missing $(join "${what[@]}"): install the Debian packages ${pkgs[*]} (on Debian: ${prefix}${install_cmd})"
fi
exit 1
