#!/usr/bin/env bash
# Installs the build into a scratch DESTDIR and builds a consumer against it with pkg-config
# alone: proves the merged include/keel tree and keel.pc are complete.
#
#   install_consumer.sh MESON BUILD_ROOT CONSUMER_CPP CXX VERSION
set -euo pipefail
meson=$1 build_root=$2 consumer=$3 cxx=$4 version=$5
destdir=$(mktemp -d)
trap 'rm -rf "$destdir"' EXIT

# --tags devel: the headers and keel.pc, what a consumer needs (not the programs, which this
# test does not need built).
"$meson" install -C "$build_root" --no-rebuild --quiet --tags devel --destdir "$destdir"

pc=$(find "$destdir" -name keel.pc)
[ -n "$pc" ] || { echo "FAIL: no keel.pc under the install"; exit 1; }
echo "keel.pc: ${pc#"$destdir"}"
for h in keel.hpp kernels/reference/matmul_i8.hpp backends/reference.hpp; do
  found=$(find "$destdir" -path "*/include/keel/$h")
  [ -n "$found" ] || { echo "FAIL: include/keel/$h is not installed"; exit 1; }
done

# --define-prefix: derive ${prefix} from where keel.pc lies, i.e. inside DESTDIR.
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
got=$(pkg-config --modversion keel)
[ "$got" = "$version" ] || { echo "FAIL: keel.pc says version $got, meson says $version"; exit 1; }
cflags=$(pkg-config --define-prefix --cflags keel)
echo "cflags: $cflags"
# shellcheck disable=SC2086  # cflags is a list of flags
"$cxx" $cflags -Wall -Wextra -Werror "$consumer" -o "$destdir/consumer"
out=$("$destdir/consumer")
echo "$out"
# keel/version.hpp must agree with meson.build's project version.
[ "$out" = "installed keel $version works" ] ||
  { echo "FAIL: expected \"installed keel $version works\""; exit 1; }
