// tools/envelope/report_json.cpp — the JSON document (schema: docs/envelope-schema.json).
#include <cmath>

#include "keel/version.hpp"
#include "report.hpp"

namespace keel::envelope {

namespace {

using json = nlohmann::ordered_json;

// JSON has no NaN or infinity: those become null.
json num(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json machine_json(const machine_info& m) {
  json features = json::array();
  for (const isa_feature& f : m.cpu.features)
    features.push_back({{"name", f.name}, {"usable", f.usable}});
  json caches = json::array();
  for (const cache_info& c : m.cpu.caches) {
    caches.push_back({{"level", c.level},
                      {"type", c.type},
                      {"size_kib", c.size_kib},
                      {"shared_by_cpus", c.shared_by},
                      {"line_bytes", c.line_bytes}});
  }
  return {
      {"hostname", m.os.hostname},
      {"os", m.os.name},
      {"kernel", m.os.release},
      {"cpu",
       {{"arch", m.cpu.arch},
        {"vendor", m.cpu.vendor},
        {"model", m.cpu.model},
        {"features", features},
        {"logical_cpus", m.cpu.logical_cpus},
        {"physical_cores", m.cpu.physical_cores},
        {"usable_cpus", m.cpu.usable_cpus},
        {"freq_mhz", num(m.cpu.freq_mhz)},
        {"freq_source", m.cpu.freq_source},
        {"hypervisor", m.cpu.hypervisor},
        {"caches", caches}}},
      {"memory", {{"total_mib", m.memory.total_mib}, {"available_mib", m.memory.available_mib}}},
  };
}

json npu_config_json(const npu::vnpu_config& c) {
  return {
      {"mac_rows", c.mac_rows},
      {"mac_cols", c.mac_cols},
      {"clock_hz", c.clock_hz},
      {"sram_bytes", c.sram_bytes},
      {"dma_bytes_per_cycle", c.dma_bytes_per_cycle},
      {"dma_setup_cycles", c.dma_setup_cycles},
      {"requant_lanes", c.requant_lanes},
      {"launch_cycles", c.launch_cycles},
      {"double_buffer", c.double_buffer},
      {"max_dim", c.max_dim},
      {"peak_int8_gops", 2.0 * static_cast<double>(c.mac_rows * c.mac_cols) * c.clock_hz * 1e-9},
      {"dram_gbs", c.dma_bytes_per_cycle * c.clock_hz * 1e-9}};
}

json result_json(const result_entry& r) {
  json time = nullptr;
  if (r.time.reps > 0) {
    time = {{"best", num(r.time.best_s)},
            {"median", num(r.time.median_s)},
            {"reps", r.time.reps},
            {"source", r.time.simulated ? "cycle model" : "wall clock"},
            {"host_s", r.time.simulated ? num(r.time.host_s) : json(nullptr)}};
  }
  const bool measured = r.time.reps > 0;
  json verification = nullptr;
  if (!r.check.rule.empty()) {
    verification = {{"on", r.verified_on},
                    {"rule", r.check.rule},
                    {"checked", r.check.checked},
                    {"mismatches", r.check.mismatches},
                    {"not_bit_identical", r.check.not_identical},
                    {"max_abs_diff", num(r.check.max_abs_diff)},
                    {"first_mismatch", r.check.first_mismatch}};
  }
  return {
      {"workload", r.workload},
      {"backend", r.backend},
      {"op", std::string(to_string(r.op))},
      {"outcome", r.outcome},
      {"message", r.message},
      {"timed_shape", measured ? json(r.timed_full ? "full" : "sample") : json(nullptr)},
      {"time_s", time},
      {"pack_s", measured ? num(r.pack_s) : json(nullptr)},
      {"ops", measured ? num(r.timed_ops) : json(nullptr)},
      {"intensity",
       measured && r.timed_bytes > 0 ? num(r.timed_ops / r.timed_bytes) : json(nullptr)},
      {"rate_gops", measured ? num(r.rate_gops) : json(nullptr)},
      {"roof_gops", measured && r.roof_gops > 0 ? num(r.roof_gops) : json(nullptr)},
      {"share_of_roofline", measured && r.roof_gops > 0 ? num(r.share_roofline) : json(nullptr)},
      {"peak_gops", measured && r.peak_gops > 0 ? num(r.peak_gops) : json(nullptr)},
      {"share_of_peak", measured && r.peak_gops > 0 ? num(r.share_peak) : json(nullptr)},
      {"verification", verification}};
}

json profile_json(const envelope& e) {
  if (!e.has_profile) return nullptr;
  const boards::board_profile& p = e.profile.profile;
  json sources = json::object();
  for (const auto& [field, how] : e.profile.sources) sources[field] = how;
  json npu = {{"present", p.npu.present}};
  if (p.npu.present) {
    npu["name"] = std::string(p.npu.name);
    npu["ops"] = p.npu.ops;
    npu["dtypes"] = p.npu.dtypes;
    npu["sram_kib"] = p.npu.sram_kib;
    npu["peak_int8_gops"] = p.npu.peak_int8_gops;
    npu["peak_f16_gflops"] = p.npu.peak_f16_gflops;
    npu["max_dim"] = p.npu.max_dim;
    npu["mem_bandwidth_gbs"] = p.npu.mem_bandwidth_gbs;
    npu["launch_us"] = p.npu.launch_us;
  }
  return {{"type_name", e.profile.type_name},
          {"name", std::string(p.name)},
          {"soc", std::string(p.soc)},
          {"cpu",
           {{"arch", std::string(boards::to_string(p.cpu.arch))},
            {"isa_bits", p.cpu.isa},
            {"cores", p.cpu.cores},
            {"freq_ghz", p.cpu.freq_ghz},
            {"l1d_kib", p.cpu.l1d_kib},
            {"l2_kib", p.cpu.l2_kib},
            {"l3_kib", p.cpu.l3_kib},
            {"mem_bandwidth_gbs", p.cpu.mem_bandwidth_gbs},
            {"peak_int8_gops", p.cpu.peak_int8_gops},
            {"peak_f32_gflops", p.cpu.peak_f32_gflops},
            {"launch_us", p.cpu.launch_us}}},
          {"gpu", {{"present", p.gpu.present}}},
          {"npu", npu},
          {"power",
           {{"idle_w", p.power.idle_w},
            {"cpu_w", p.power.cpu_w},
            {"gpu_w", p.power.gpu_w},
            {"npu_w", p.power.npu_w},
            {"budget_w", p.power.budget_w}}},
          {"sources", sources}};
}

}  // namespace

json to_json(const envelope& e) {
  json doc;
  doc["schema"] = "keel-envelope";
  doc["schema_version"] = kSchemaVersion;
  doc["tool"] = {{"name", "keel-envelope"},
                 {"keel_version", KEEL_VERSION_STRING},
                 {"command_line", e.command_line}};
  const run_options& o = e.options;
  doc["run"] = {{"started", e.started},
                {"finished", e.finished},
                {"duration_s", e.duration_s},
                {"complete", e.complete},
                {"interrupted", e.interrupted},
                {"quick", o.quick},
                {"seed", o.seed},
                {"threads", o.threads},
                {"max_run_seconds", o.max_run_seconds},
                {"target_seconds", o.target_seconds},
                {"max_reps", o.max_reps},
                {"verify_macs", o.verify_macs},
                {"ops", e.selected_ops},
                {"backends", e.selected_backends},
                {"test_hook_wrong_result",
                 o.wrong_result_backend.empty() ? json(nullptr) : json(o.wrong_result_backend)}};
  doc["machine"] = machine_json(e.machine);

  json npus = json::array();
  if (!e.npu.profile.empty()) {
    npus.push_back({{"name", "keel_vnpu"},
                    {"profile", e.npu.profile},
                    {"virtual", true},
                    {"config", npu_config_json(e.npu.config)}});
  }
  std::string vulkan = "not built";
  for (const backend_info& b : e.backends) {
    if (b.name == "vulkan") vulkan = b.status;
  }
  doc["accelerators"] = {{"vulkan", {{"status", vulkan}, {"devices", json::array()}}},
                         {"npus", npus}};

  json ceilings = json::array();
  for (const ceiling& c : e.ceilings) {
    json j = {{"id", c.id},         {"kind", c.kind},       {"isa", c.isa},
              {"method", c.method}, {"threads", c.threads}, {"value", num(c.value)},
              {"unit", c.unit},     {"seconds", c.seconds}};
    if (c.buffer_bytes > 0) j["buffer_bytes"] = c.buffer_bytes;
    ceilings.push_back(j);
  }
  doc["ceilings"] = ceilings;
  json roofs = json::array();
  for (const auto& [name, r] : e.roofs) {
    roofs.push_back({{"backend", name},
                     {"int8_gops", num(r.int8_gops)},
                     {"f32_gflops", num(r.f32_gflops)},
                     {"mem_gbs", num(r.mem_gbs)},
                     {"int8_from", r.int8_from},
                     {"f32_from", r.f32_from},
                     {"mem_from", r.mem_from}});
  }
  doc["roofs"] = roofs;
  doc["cpu_launch_us"] = num(e.cpu_launch_us);

  json backends = json::array();
  for (const backend_info& b : e.backends) {
    backends.push_back({{"name", b.name},
                        {"unit", b.unit},
                        {"status", b.status},
                        {"detail", b.detail},
                        {"bit_exact", b.bit_exact},
                        {"simulated", b.simulated},
                        {"ops", b.ops}});
  }
  doc["backends"] = backends;

  json workloads = json::array();
  for (const workload_record& w : e.workloads) {
    workloads.push_back(
        {{"id", w.w.id},
         {"model", w.w.model},
         {"layer", w.w.layer},
         {"phase", w.w.phase},
         {"op", std::string(to_string(w.work.kind))},
         {"shape", w.shape},
         {"dtypes", w.dtypes},
         {"ops", w.work.ops},
         {"bytes", w.work.bytes},
         {"intensity", w.work.bytes > 0 ? num(w.work.ops / w.work.bytes) : json(nullptr)},
         {"float_math", w.work.float_math},
         {"fits_in_llc", w.fits_in_llc},
         {"verification_sample", w.sample},
         {"sample_outputs", w.sample_outputs},
         {"total_outputs", w.total_outputs},
         {"ran", w.ran}});
  }
  doc["workloads"] = workloads;

  json results = json::array();
  for (const result_entry& r : e.results) results.push_back(result_json(r));
  doc["results"] = results;

  json candidates = json::array();
  for (const auto& [key, order] : e.candidates)
    candidates.push_back({{"key", key}, {"order", order}});
  json choices = json::array();
  for (const route_row& row : e.routing) {
    json order = json::array();
    for (const route_choice& c : row.order) {
      order.push_back({{"backend", c.backend},
                       {"predicted_us", num(c.predicted_us)},
                       {"energy_uj", num(c.energy_uj)}});
    }
    const auto [fastest, fastest_s] = measured_fastest(e, row.workload);
    const std::string chosen = row.order.empty() ? std::string() : row.order.front().backend;
    choices.push_back({{"policy", row.policy},
                       {"workload", row.workload},
                       {"chosen", chosen},
                       {"order", order},
                       {"measured_fastest", fastest.empty() ? json(nullptr) : json(fastest)},
                       {"measured_fastest_s", fastest.empty() ? json(nullptr) : num(fastest_s)},
                       {"agrees", fastest.empty() ? json(nullptr) : json(fastest == chosen)}});
  }
  doc["routing"] = {{"policies", policy_names()}, {"candidates", candidates}, {"choices", choices}};
  doc["board_profile"] = profile_json(e);
  doc["outputs"] = {
      {"json", e.written.json}, {"html", e.written.html}, {"header", e.written.header}};
  const outcome_counts c = count_outcomes(e);
  doc["summary"] = {{"results", c.total},           {"ok", c.ok},
                    {"mismatches", c.mismatch},     {"errors", c.error},
                    {"unsupported", c.unsupported}, {"interrupted", c.interrupted}};
  return doc;
}

}  // namespace keel::envelope
