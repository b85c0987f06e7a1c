#!/usr/bin/env bash
# Installs what keel needs (scripts/setup.sh), builds keel's main program in build/ (release)
# and runs it: keel-tour runs every reference op on model-shaped inputs and prints one line per
# op. Arguments are passed on (try --help, --quick, --seed N). Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bash scripts/setup.sh
keel_configure build "${KEEL_RELEASE_OPTIONS[@]}"
meson compile -C build -j "$(keel_jobs)" keel-tour
echo
exec build/tools/keel-tour "$@"
