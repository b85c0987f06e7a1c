#!/usr/bin/env bash
# Passes when a source fails to compile with the diagnostics a user should see.
#
#   expect_compile_error.sh CXX SOURCE CASE [EXPECTED...] -- [FLAGS...]
#
# Compiles SOURCE (syntax only) with -DKEEL_CASE=CASE and FLAGS. CASE 0 is the source's control:
# it must compile, which proves the failures of the other cases come from what they change and
# not from a broken include path or a typo. Any other CASE must fail, and its diagnostics must
# contain every EXPECTED string (fixed strings, e.g. the static_assert message and the board's
# type name).
set -uo pipefail
cxx=$1 source=$2 case_id=$3
shift 3
expected=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do expected+=("$1"); shift; done
[ $# -gt 0 ] && shift  # the --
flags=(-std=c++20 -fsyntax-only -fdiagnostics-color=never "$@" "-DKEEL_CASE=$case_id")

log=$("$cxx" "${flags[@]}" "$source" 2>&1)
status=$?
if [ "$case_id" = 0 ]; then
  if [ $status -ne 0 ]; then
    printf 'FAIL: the control case of %s does not compile:\n%s\n' "$source" "$log"
    exit 1
  fi
  echo "ok: the control case of $(basename "$source") compiles"
  exit 0
fi
if [ $status -eq 0 ]; then
  echo "FAIL: case $case_id of $source compiled; it must be rejected"
  exit 1
fi
for e in "${expected[@]}"; do
  if ! grep -qF -- "$e" <<<"$log"; then
    printf 'FAIL: case %s of %s failed to compile, but its diagnostics lack "%s":\n%s\n' \
      "$case_id" "$source" "$e" "$log"
    exit 1
  fi
done
echo "ok: case $case_id of $(basename "$source") is rejected with: ${expected[*]}"
