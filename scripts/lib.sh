# Shared by scripts/test.sh and scripts/main.sh (sourced, not run).

# Parallel jobs for builds and tests: KEEL_JOBS if set, otherwise one per CPU.
keel_jobs() {
  if [ -n "${KEEL_JOBS:-}" ]; then echo "$KEEL_JOBS"; else nproc 2>/dev/null || echo 2; fi
}

# keel_configure DIR [MESON OPTIONS...]: configures DIR with exactly these options, whatever state
# DIR is in: reconfigured in place when it holds a build, wiped and set up afresh otherwise (or
# when reconfiguring fails, e.g. after a Meson upgrade).
keel_configure() {
  local dir=$1
  shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    if meson setup --reconfigure "$dir" "$@"; then return 0; fi
    echo "keel: reconfiguring $dir failed; wiping it and configuring afresh"
  fi
  rm -rf "$dir"
  meson setup "$dir" "$@"
}

# The two builds: release (what users get; -Werror, the warnings gate) and the sanitizer build
# (ASan + UBSan, every UBSan report fatal; b_lundef=false because the sanitizer runtimes resolve
# symbols at load time). The sanitizer build prints warnings but does not fail on them: GCC's
# manual (-fsanitize, since GCC 13's wording) "recommend[s] against combining -Werror and
# sanitizers", whose instrumentation makes -Wmaybe-uninitialized report false positives; GCC 12
# does so inside libstdc++'s std::regex, for one.
KEEL_RELEASE_OPTIONS=(--buildtype=release)
# -O1 -g1: half the compile time of -O2 -g under instrumentation (16 s against 35 s of CPU for
# test_conv2d.cpp with GCC 12), and reports keep their file:line.
KEEL_SANITIZE_OPTIONS=(-Doptimization=1 -Ddebug=false -Db_sanitize=address,undefined
                       -Db_lundef=false "-Dcpp_args=-g1 -fno-sanitize-recover=all" -Dwerror=false
                       -Db_ndebug=false -Dbench=false)
# The sanitizer build leaves out the benchmarks (-Dbench=false): they hold no test of keel's code
# that the release build does not run, and they are the longest compile (the peers' headers).
