// tools/envelope/measure.cpp — verification and timing of one workload (see measure.hpp).
#include "measure.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "keel/backends/reference.hpp"

namespace keel::envelope {

namespace {

std::int64_t output_bytes(const problem& p) {
  const op_desc d = desc_of(p);
  return output_elements(d) * element_bytes(output_type(d));
}

Status run_reference(const problem& p, void* out) {
  backends::reference_backend ref;
  return std::visit([&](const auto& x) { return ref.run(x.desc, x.args(out)); }, p);
}

void merge(check_result& into, const check_result& c) {
  if (into.rule.empty()) {
    into = c;
    return;
  }
  into.checked += c.checked;
  if (into.mismatches == 0 && c.mismatches > 0) into.first_mismatch = c.first_mismatch;
  into.mismatches += c.mismatches;
  into.not_identical += c.not_identical;
  into.max_abs_diff = std::max(into.max_abs_diff, c.max_abs_diff);
}

void fail(result_entry& e, const Status& s, const char* during) {
  e.outcome = s.code() == status_code::unsupported ? "unsupported" : "error";
  e.message = e.outcome == "unsupported"
                  ? std::string(s.message())
                  : fmt::format("{} failed: {}: {}", during, to_string(s.code()), s.message());
}

// Runs until the timed runs add up to `target` seconds (at most max_reps); `first` is a run
// already done (the verification run): when it alone took `target` or more it is the timing.
Status time_runs(backend_slot& b, const problem& p, void* out, double first, const run_options& o,
                 timing& t) {
  std::vector<double> runs;
  if (first >= o.target_seconds) {
    runs.push_back(first);
  } else {
    double total = 0;
    while (static_cast<int>(runs.size()) < std::max(1, o.max_reps) &&
           (runs.empty() || total < o.target_seconds) && !(stop_requested() && !runs.empty())) {
      const auto t0 = clock_type::now();
      const Status s = b.run(p, out);
      const double dt = seconds_since(t0);
      if (!s.ok()) return s;
      runs.push_back(dt);
      total += dt;
    }
  }
  std::sort(runs.begin(), runs.end());
  t.best_s = runs.front();
  t.median_s = runs[runs.size() / 2];
  t.reps = static_cast<int>(runs.size());
  return Status::Ok();
}

void fill_rates(result_entry& e, const op_work& full_work, const roof* r) {
  if (e.time.best_s <= 0) return;
  e.rate_gops = e.timed_ops / e.time.best_s * 1e-9;
  if (r == nullptr) return;
  e.peak_gops = full_work.float_math ? r->f32_gflops : r->int8_gops;
  const double intensity = e.timed_bytes > 0 ? e.timed_ops / e.timed_bytes : 0;
  e.roof_gops = std::min(e.peak_gops, intensity * r->mem_gbs);
  if (e.roof_gops > 0) e.share_roofline = e.rate_gops / e.roof_gops;
  if (e.peak_gops > 0) e.share_peak = e.rate_gops / e.peak_gops;
}

}  // namespace

void corrupt_output(void* out, dtype t) {
  switch (t) {
    case dtype::s8: *static_cast<std::int8_t*>(out) ^= 1; break;
    case dtype::u8: *static_cast<std::uint8_t*>(out) ^= 1; break;
    case dtype::s32: *static_cast<std::int32_t*>(out) ^= 1; break;
    case dtype::f32: *static_cast<float*>(out) += 1.0f; break;
    default: break;
  }
}

bool measure_workload(const workload& w, std::size_t index, const measure_context& ctx,
                      workload_record& record, std::vector<result_entry>& out) {
  const run_options& o = *ctx.options;
  record.w = w;
  record.work = work_of_desc(w.desc);
  record.shape = shape_text(w.desc);
  record.dtypes = dtype_text(w.desc);
  record.ran = true;
  record.fits_in_llc = ctx.llc_bytes > 0 && record.work.bytes <= static_cast<double>(ctx.llc_bytes);
  const op_kind kind = kind_of(w.desc);
  const dtype out_type = output_type(w.desc);

  const auto entry_for = [&](const backend_slot& b) {
    result_entry e;
    e.workload = w.id;
    e.backend = b.info().name;
    e.op = kind;
    return e;
  };
  // A failure before any backend ran: every backend's entry says so.
  const auto all_fail = [&](const Status& s, const char* during) {
    for (backend_slot* b : ctx.backends) {
      result_entry e = entry_for(*b);
      fail(e, s, during);
      if (e.outcome == "unsupported") e.outcome = "error";
      out.push_back(e);
      if (ctx.on_result) ctx.on_result(out.back());
    }
    return true;
  };

  // ---- data, sample, oracle ----
  problem full;
  Status s = materialize(w.desc, o.seed, index, full);
  if (!s.ok()) return all_fail(s, "preparing the inputs");
  sample smp;
  s = make_sample(full, o.verify_macs, o.seed + 7919 * (index + 1), smp);
  if (!s.ok()) return all_fail(s, "preparing the verification sample");
  record.sample = smp.whole ? std::string("every output")
                            : fmt::format("{} ({} of {} outputs)", smp.description, smp.map.size(),
                                          smp.full_outputs);
  const problem& oracle = smp.whole ? full : smp.reduced;
  record.total_outputs = output_elements(w.desc);
  record.sample_outputs =
      smp.whole ? record.total_outputs : static_cast<std::int64_t>(smp.map.size());
  const op_work oracle_work = work_of_desc(desc_of(oracle));
  aligned_bytes reference_out;
  if (!reference_out.allocate(output_bytes(oracle))) {
    return all_fail(Status::make(status_code::out_of_memory, "keel-envelope",
                                 "cannot allocate the reference output"),
                    "the reference");
  }
  if (ctx.on_step) ctx.on_step(w.id + " reference");
  const auto t_oracle0 = clock_type::now();
  s = run_reference(oracle, reference_out.data());
  const double t_oracle = seconds_since(t_oracle0);
  if (!s.ok()) return all_fail(s, "the reference");

  for (backend_slot* bp : ctx.backends) {
    backend_slot& b = *bp;
    result_entry e = entry_for(b);
    if (stop_requested()) return false;
    if (ctx.on_step) ctx.on_step(w.id + " " + e.backend);

    // ---- the reference: the oracle run is its row ----
    if (b.caps().kind == backend_kind::reference) {
      e.outcome = "ok";
      e.timed_full = smp.whole;
      e.timed_ops = oracle_work.ops;
      e.timed_bytes = oracle_work.bytes;
      e.time.best_s = e.time.median_s = t_oracle;
      e.time.reps = 1;
      e.verified_on = "oracle";
      e.check.rule = "is the oracle";
      if (!smp.whole) e.message = "timed once on the verification sample";
      fill_rates(e, record.work, ctx.roof_of(e.backend));
      out.push_back(e);
      if (ctx.on_result) ctx.on_result(out.back());
      continue;
    }

    // ---- does it take this shape at all ----
    s = b.supports(w.desc);
    if (!s.ok()) {
      fail(e, s, "supports()");
      out.push_back(e);
      if (ctx.on_result) ctx.on_result(out.back());
      continue;
    }
    const bool hook = !o.wrong_result_backend.empty() && o.wrong_result_backend == e.backend;
    const bool simulated = b.info().simulated;

    // ---- the sample first (when it is not the whole problem): checked in full ----
    double t_sample = 0;
    aligned_bytes sample_out;
    bool ok = true;
    if (!smp.whole) {
      s = b.prepare(smp.reduced);
      if (s.ok() && !sample_out.allocate(output_bytes(smp.reduced))) {
        s = Status::make(status_code::out_of_memory, "keel-envelope", "sample output");
      }
      if (s.ok()) {
        const auto t0 = clock_type::now();
        s = b.run(smp.reduced, sample_out.data());
        t_sample = seconds_since(t0);
      }
      if (!s.ok()) {
        fail(e, s, "running the sample");
        ok = false;
      } else {
        if (hook) corrupt_output(sample_out.data(), out_type);
        merge(e.check,
              check_output(smp.reduced, reference_out.data(), sample_out.data(), {}, w.desc));
        e.verified_on = "sample";
      }
    }
    const double predicted =
        smp.whole ? 0 : t_sample * record.work.ops / std::max(oracle_work.ops, 1.0);
    const bool run_full = ok && (smp.whole || predicted <= o.max_run_seconds) && !stop_requested();

    // ---- the full shape: packed once (timed), run, checked at the sample's positions ----
    if (run_full) {
      aligned_bytes full_out;
      const auto tp = clock_type::now();
      s = b.prepare(full);
      e.pack_s = seconds_since(tp);
      if (s.ok() && !full_out.allocate(output_bytes(full))) {
        s = Status::make(status_code::out_of_memory, "keel-envelope", "output of the full shape");
      }
      double t_full = 0;
      if (s.ok()) {
        const auto t0 = clock_type::now();
        s = b.run(full, full_out.data());
        t_full = seconds_since(t0);
      }
      if (!s.ok()) {
        fail(e, s, "running the full shape");
        ok = false;
      } else {
        if (hook) corrupt_output(full_out.data(), out_type);
        merge(e.check,
              check_output(oracle, reference_out.data(), full_out.data(), smp.map, w.desc));
        e.verified_on = smp.whole ? "full" : "full (sampled) + sample";
        e.timed_full = true;
        e.timed_ops = record.work.ops;
        e.timed_bytes = record.work.bytes;
        const double device = simulated ? b.device_seconds(w.desc) : std::nan("");
        if (!std::isnan(device)) {
          e.time = {device, device, 1, true, t_full};
        } else {
          s = time_runs(b, full, full_out.data(), t_full, o, e.time);
          if (!s.ok()) {
            fail(e, s, "a timed run");
            ok = false;
          }
        }
      }
    } else if (ok) {
      // ---- too slow for the full shape: the sample is what gets timed ----
      const double device = simulated ? b.device_seconds(w.desc) : std::nan("");
      if (!std::isnan(device)) {
        e.time = {device, device, 1, true, t_sample};
        e.timed_full = true;
        e.timed_ops = record.work.ops;
        e.timed_bytes = record.work.bytes;
        e.message = fmt::format(
            "the host would take about {:.1f} s to simulate the full shape: "
            "verified on the sample, timed by the cycle model",
            predicted);
      } else {
        e.timed_ops = oracle_work.ops;
        e.timed_bytes = oracle_work.bytes;
        s = time_runs(b, smp.reduced, sample_out.data(), t_sample, o, e.time);
        if (!s.ok()) {
          fail(e, s, "a timed run");
          ok = false;
        }
        e.message = fmt::format(
            "the full shape would take about {:.1f} s (over "
            "--max-run-seconds {:g}): timed on the verification sample",
            predicted, o.max_run_seconds);
      }
    }
    b.release();

    if (ok) {
      e.outcome = e.check.mismatches > 0 ? "mismatch" : "ok";
      if (e.check.mismatches > 0) {
        e.message =
            fmt::format("{} of {} checked outputs differ from the reference ({}); first: {}",
                        e.check.mismatches, e.check.checked, e.check.rule, e.check.first_mismatch);
      }
      fill_rates(e, record.work, ctx.roof_of(e.backend));
    }
    out.push_back(e);
    if (ctx.on_result) ctx.on_result(out.back());
  }
  return true;
}

double measure_launch_us(backend_slot& cpu) {
  matmul_i8_desc d;
  d.m = 1;
  d.n = 16;
  d.k = 16;
  d.out.type = dtype::s32;
  problem p;
  if (!materialize(op_desc(d), 1, 0, p).ok() || !cpu.prepare(p).ok()) return 0;
  std::int32_t out[16];
  double best = 1e9;
  for (int i = 0; i < 300; ++i) {
    const auto t0 = clock_type::now();
    const Status s = cpu.run(p, out);
    const double dt = seconds_since(t0);
    if (!s.ok()) {
      cpu.release();
      return 0;
    }
    best = std::min(best, dt);
  }
  cpu.release();
  return best * 1e6;
}

}  // namespace keel::envelope
