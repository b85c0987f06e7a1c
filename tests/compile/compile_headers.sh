#!/usr/bin/env bash
# Compiles keel's headers with strict warnings. First, always, the umbrella alone
# (header_alone.cpp). Then, by mode:
#   umbrella   nothing more
#   each       every public header alone, one translation unit each: each includes what it uses
#   together   every public header in one translation unit: every header's own warnings under
#              this compiler, and no two headers that clash (at a fraction of "each"'s cost)
#
#   compile_headers.sh umbrella|each|together CXX UMBRELLA_CPP [FLAGS...]
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
[ "$mode" != umbrella ] || exit 0

# The public headers, as <keel/...> include names, from every include root among FLAGS.
headers=()
for arg in "$@"; do
  case "$arg" in -I*) root=${arg#-I} ;; *) continue ;; esac
  [ -d "$root/keel" ] || continue
  while IFS= read -r header; do
    headers+=("${header#"$root"/}")
  done < <(find "$root/keel" -name '*.hpp' ! -name '*-inl.hpp' | sort)
done

case "$mode" in
  each)
    for h in "${headers[@]}"; do
      printf '#include <%s>\n' "$h" | "$cxx" "${flags[@]}" -x c++ - ||
        { echo "FAIL: <$h> does not compile alone"; exit 1; }
    done
    echo "ok: ${#headers[@]} headers compile alone"
    ;;
  together)
    printf '#include <%s>\n' "${headers[@]}" | "$cxx" "${flags[@]}" -x c++ - ||
      { echo "FAIL: the ${#headers[@]} headers do not compile together"; exit 1; }
    echo "ok: ${#headers[@]} headers compile together in one translation unit"
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
