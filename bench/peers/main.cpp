// bench/peers/main.cpp — the entry point of bench_matmul when no other source brings one.
//
// bench_matmul links keel's own rows (bench/bench_gemm_i8.cpp, when present), the peers and the
// ceilings into one binary. Whichever source defines a strong main wins; this one is weak so the
// binary links whether or not keel's bench source has its own BENCHMARK_MAIN().
#include <benchmark/benchmark.h>

__attribute__((weak)) int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
