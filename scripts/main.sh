#!/usr/bin/env bash
# Installs what keel needs (scripts/setup.sh), builds keel's main program in build/ (release)
# and runs it: keel-envelope profiles this machine (ceilings, every op on every backend over
# model-shaped workloads, each result verified against the reference), prints the table and
# writes build/envelope/envelope.json, envelope.html and the board header measured_host.hpp.
# Arguments are passed on (try --help, --quick, --workloads llm7b.decode; a later --out-dir
# wins). Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bash scripts/setup.sh
keel_configure build "${KEEL_RELEASE_OPTIONS[@]}"
meson compile -C build -j "$(keel_jobs)" keel-envelope
echo
exec build/tools/envelope/keel-envelope --out-dir build/envelope "$@"
