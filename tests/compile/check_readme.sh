#!/usr/bin/env bash
# Keeps README.md honest about its example.
#
#   check_readme.sh sync README.md readme_example.cpp   the README's block equals the file
#   check_readme.sh run  EXAMPLE_BINARY                  the example prints the hand-computed result
#
# The block is the ```cpp fence that follows the line "<!-- tests/compile/readme_example.cpp -->".
set -euo pipefail
case "$1" in
  sync)
    block=$(awk '/^<!-- tests\/compile\/readme_example.cpp -->$/ { marker = 1; next }
                 marker && /^```cpp$/ { inside = 1; next }
                 inside && /^```$/ { exit }
                 inside { print }' "$2")
    if [ -z "$block" ]; then
      echo "FAIL: $2 has no \`\`\`cpp block after <!-- tests/compile/readme_example.cpp -->"
      exit 1
    fi
    if ! diff -u <(printf '%s\n' "$block") "$3"; then
      echo "FAIL: the example in $2 differs from $3 (above: README first, the file second)"
      exit 1
    fi
    echo "ok: the README's example is tests/compile/readme_example.cpp, line for line"
    ;;
  run)
    # A = [[130,128,125],[128,140,100]] - 128 = [[2,0,-3],[0,12,-28]], B = [[1,-2],[3,4],[-5,6]]:
    # row 0: 2*1 + 0*3 + (-3)(-5) = 17,   2*(-2) + 0*4 + (-3)*6 = -22
    # row 1: 0*1 + 12*3 + (-28)(-5) = 176, 0*(-2) + 12*4 + (-28)*6 = -120
    expected=$'17 -22\n176 -120'
    actual=$("$2")
    if [ "$actual" != "$expected" ]; then
      printf 'FAIL: the example printed\n%s\nexpected\n%s\n' "$actual" "$expected"
      exit 1
    fi
    echo "ok: the example prints the hand-computed product"
    ;;
  *) echo "usage: $0 sync README.md FILE | run BINARY" >&2; exit 2 ;;
esac
