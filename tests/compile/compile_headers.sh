#!/usr/bin/env bash
# Compiles keel's headers alone with strict warnings: first the umbrella (header_alone.cpp), then,
# in mode "all", every public header one at a time, so that each includes what it uses.
#
#   compile_headers.sh all|umbrella CXX UMBRELLA_CPP [FLAGS...]
#
# FLAGS hold the include roots (-I<root>) and keel's option macros. Headers named *-inl.hpp are
# per-target fragments meant to be included by a dispatching header, not alone, and are skipped.
set -euo pipefail
mode=$1
cxx=$2
umbrella=$3
shift 3
flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror "$@")

echo "$cxx: $("$cxx" --version | head -n1)"
"$cxx" "${flags[@]}" -x c++ "$umbrella"
echo "ok: keel/keel.hpp alone"
[ "$mode" = all ] || exit 0

count=0
for arg in "$@"; do
  case "$arg" in -I*) root=${arg#-I} ;; *) continue ;; esac
  [ -d "$root/keel" ] || continue
  while IFS= read -r header; do
    rel=${header#"$root"/}
    printf '#include <%s>\n' "$rel" | "$cxx" "${flags[@]}" -x c++ - ||
      { echo "FAIL: <$rel> does not compile alone"; exit 1; }
    count=$((count + 1))
  done < <(find "$root/keel" -name '*.hpp' ! -name '*-inl.hpp' | sort)
done
echo "ok: $count headers compile alone"
