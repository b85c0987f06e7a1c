// bench/peers/onednn_exactness.cpp — does oneDNN's int8 matmul give the exact int32 sums on
// full-range inputs? keel's reference does, by construction; this program puts both side by side.
//
// Why it might not: without VNNI, an x86 int8 kernel multiplies with vpmaddubsw, which adds two
// u8 x s8 products into an int16 with saturation. With A = 255 and B = -128 a pair is
// 2 * 255 * -128 = -65280, far below -32768, so the pair saturates and the sum is wrong unless the
// kernel avoids the instruction or restricts the weights' range. oneDNN documents the hazard for
// non-VNNI CPUs ("Nuances of int8 computations" in its developer guide). On a CPU with VNNI
// (vpdpbusd adds four products straight into int32) the question does not arise, so this program
// caps oneDNN to AVX2 (dnnl::set_max_cpu_isa, before any primitive exists): the path every
// AVX2-only machine gets. Pass --native to keep the CPU's best ISA instead.
//
// keel runs each case twice over: its reference, and its cpu backend with every registered
// kernel this CPU runs, forced one at a time (the exact kernels must be exact; a `ubs` kernel
// must decline these full-range weights, as its range check requires, rather than saturate).
//
// Exit status: 0 when keel (reference and every cpu kernel that ran) equals the exact sums on
// every case (oneDNN's result is reported either way, it is a peer's property, not keel's), 1
// when keel does not, 2 when oneDNN could not run at all.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "keel/backends/cpu.hpp"
#include "keel/kernels/gemm_i8/registry.hpp"
#include "keel/kernels/reference/matmul_i8.hpp"

namespace {

struct exactness_case {
  const char* what;
  std::int64_t m, n, k;
  std::uint8_t a;  // every element of A
  std::int8_t b;   // every element of B
};

// C = A x B with oneDNN (weights reordered to the layout oneDNN picks, as its users do).
std::vector<std::int32_t> onednn_matmul(const exactness_case& c, std::string* impl) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl::memory::desc a_md({c.m, c.k}, dt::u8, tag::ab);
  const dnnl::memory::desc b_plain({c.k, c.n}, dt::s8, tag::ab);
  const dnnl::memory::desc c_md({c.m, c.n}, dt::s32, tag::ab);
  const dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(a_md, dnnl::memory::desc({c.k, c.n}, dt::s8, tag::any), c_md), eng);
  *impl = pd.impl_info_str();

  std::vector<std::uint8_t> a(static_cast<std::size_t>(c.m * c.k), c.a);
  std::vector<std::int8_t> b(static_cast<std::size_t>(c.k * c.n), c.b);
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.m * c.n), 0x5A5A5A5A);
  dnnl::memory a_mem(a_md, eng, a.data()), b_mem(b_plain, eng, b.data());
  dnnl::memory c_mem(c_md, eng, out.data()), b_packed(pd.weights_desc(), eng);
  dnnl::reorder(b_mem, b_packed).execute(strm, b_mem, b_packed);
  dnnl::matmul(pd).execute(
      strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_packed}, {DNNL_ARG_DST, c_mem}});
  strm.wait();
  return out;
}

// C = A x B by keel (s32 output, zero points 0): with the reference kernel when `kernel` is
// null, else with the cpu backend forcing that kernel. *status gets what keel returned.
std::vector<std::int32_t> keel_matmul(const exactness_case& c,
                                      const keel::kernels::gemm_i8::kernel* kernel,
                                      keel::Status* status) {
  std::vector<std::uint8_t> a(static_cast<std::size_t>(c.m * c.k), c.a);
  std::vector<std::int8_t> b(static_cast<std::size_t>(c.k * c.n), c.b);
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.m * c.n), 0x5A5A5A5A);
  keel::matmul_i8_desc d;
  d.m = c.m;
  d.n = c.n;
  d.k = c.k;
  d.a_type = keel::dtype::u8;
  d.b_type = keel::dtype::s8;
  d.out.type = keel::dtype::s32;
  keel::matmul_i8_args args;
  args.a = keel::view(static_cast<const std::uint8_t*>(a.data()), {c.m, c.k});
  args.b = keel::view(static_cast<const std::int8_t*>(b.data()), {c.k, c.n});
  args.out = keel::view(out.data(), {c.m, c.n});
  if (kernel == nullptr) {
    *status = keel::reference::matmul_i8(d, args);
  } else {
    keel::backends::cpu_options o;
    o.max_threads = 1;
    o.forced_kernel = keel::kernels::gemm_i8::find_kernel(kernel->name.view());
    *status = keel::backends::cpu_backend(o).run(d, args);
  }
  return out;
}

// Every element of C equals `exact`? Returns how many differ; *seen gets the first that does.
std::int64_t count_wrong(const std::vector<std::int32_t>& v, std::int64_t exact,
                         std::int64_t* seen) {
  std::int64_t wrong = 0;
  for (std::int32_t x : v) {
    if (x != exact) {
      if (wrong == 0) *seen = x;
      ++wrong;
    }
  }
  return wrong;
}

}  // namespace

int main(int argc, char** argv) {
  const bool native = argc > 1 && std::strcmp(argv[1], "--native") == 0;
  if (!native) dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);

  const exactness_case cases[] = {
      {"GEMM, A = 255, B = -128", 16, 16, 64, 255, -128},
      {"GEMM, A = 255, B = 127", 16, 16, 64, 255, 127},
      {"GEMV, A = 255, B = -128", 1, 64, 256, 255, -128},
      {"GEMM 128x256x1024, A = 255, B = -128", 128, 256, 1024, 255, -128},
  };

  int keel_failures = 0;
  for (const exactness_case& c : cases) {
    // The exact sum, computed independently of both implementations: K equal products.
    const std::int64_t exact = c.k * std::int64_t{c.a} * std::int64_t{c.b};

    std::int64_t dnnl_seen = 0;
    std::string keel_lines;
    const auto check_keel = [&](const char* who, const keel::kernels::gemm_i8::kernel* kernel) {
      keel::Status st;
      std::int64_t seen = 0;
      const std::int64_t wrong = count_wrong(keel_matmul(c, kernel, &st), exact, &seen);
      std::string line = std::string("  keel ") + who + ": ";
      if (!st.ok() && kernel != nullptr && kernel->v.tech == keel::kernels::gemm_i8::technique::ubs) {
        line += std::string("declined (") + st.message() + ")";  // its range check, as designed
      } else if (!st.ok()) {
        line += std::string("REFUSED: ") + st.message();
        ++keel_failures;
      } else if (wrong != 0) {
        line += "WRONG on " + std::to_string(wrong) + " outputs (a keel bug)";
        ++keel_failures;
      } else {
        line += "exact";
      }
      keel_lines += line + "\n";
    };
    check_keel("reference", nullptr);
    for (const keel::kernels::gemm_i8::kernel& k : keel::kernels::gemm_i8::kRegistry) {
      if (!keel::kernels::gemm_i8::available(k.v)) continue;
      if (k.v.op == keel::kernels::gemm_i8::kernel_op::gemv && c.m > k.v.mr) continue;
      const std::string who = std::string("cpu ") + std::string(k.name.view());
      check_keel(who.c_str(), &k);
    }

    std::string impl;
    std::vector<std::int32_t> dnnl_out;
    try {
      dnnl_out = onednn_matmul(c, &impl);
    } catch (const dnnl::error& e) {
      std::printf("oneDNN failed on '%s': %s\n", c.what, e.what());
      return 2;
    }
    const std::int64_t dnnl_wrong = count_wrong(dnnl_out, exact, &dnnl_seen);

    std::printf("%s, M=%lld N=%lld K=%lld: exact %lld\n", c.what, static_cast<long long>(c.m),
                static_cast<long long>(c.n), static_cast<long long>(c.k),
                static_cast<long long>(exact));
    std::printf("%s", keel_lines.c_str());
    if (dnnl_wrong == 0) {
      std::printf("  oneDNN (%s): exact\n", impl.c_str());
    } else {
      std::printf("  oneDNN (%s): %lld of %lld outputs wrong, e.g. %lld (off by %lld)\n",
                  impl.c_str(), static_cast<long long>(dnnl_wrong),
                  static_cast<long long>(c.m * c.n), static_cast<long long>(dnnl_seen),
                  static_cast<long long>(dnnl_seen - exact));
    }
  }
  std::printf("oneDNN ISA: %s\n", native ? "native (best of this CPU)" : "capped to AVX2");
  return keel_failures == 0 ? 0 : 1;
}
