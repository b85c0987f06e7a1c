// tools/envelope/report_html.cpp — the offline HTML report: one file, inline CSS and script, the
// JSON document embedded, the roofline drawn by the script into an SVG element. No URL in it is
// ever fetched (there are none), so it opens the same on a board with no network.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "keel/version.hpp"
#include "report.hpp"

namespace keel::envelope {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string pct(double share) {
  return share > 0 ? fmt::format("{:.1f}%", share * 100) : "&ndash;";
}

std::string gops(double v) {
  if (!(v > 0)) return "&ndash;";
  return v >= 100 ? fmt::format("{:.0f}", v)
                  : (v >= 1 ? fmt::format("{:.2f}", v) : fmt::format("{:.3g}", v));
}

constexpr const char* kStyle = R"CSS(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1200px; color: #1d232b; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 1px solid #d8dde3; padding-bottom: 4px; } h3 { font-size: 15px; }
.sub { color: #5a6572; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e7ec; padding: 4px 10px 4px 0; text-align: left;
         vertical-align: top; }
th { font-weight: 600; cursor: pointer; user-select: none; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: #1b7f3b; } .bad { color: #b3261e; font-weight: 600; } .dim { color: #8a94a0; }
.verdict { padding: 10px 14px; border-radius: 6px; margin: 12px 0; font-weight: 600; }
.verdict.ok { background: #e6f4ea; } .verdict.bad { background: #fce8e6; }
pre { background: #f5f7f9; padding: 12px; overflow-x: auto; font-size: 12px; }
#roofline { border: 1px solid #e3e7ec; background: #fff; }
.note { color: #5a6572; font-size: 13px; max-width: 900px; }
)CSS";

// Draws the roofline: ceilings as lines (solid: int8, dashed: f32; each unit its colour), one
// marker per (workload, backend) result (shape: op; colour: backend), axes in decades.
constexpr const char* kScript = R"JS(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('envelope-data').textContent);
  var svg = document.getElementById('roofline');
  var NS = 'http://www.w3.org/2000/svg';
  var W = 960, H = 540, L = 72, R = 230, T = 24, B = 56;
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    (parent || svg).appendChild(e);
    return e;
  }
  var palette = {reference: '#8a94a0', cpu: '#1f6fd1', keel_vnpu: '#e8710a', vulkan: '#188038'};
  var extra = ['#9334e6', '#d01884', '#12a4af', '#a8a116'];
  function colour(name) {
    if (!(name in palette)) palette[name] = extra[Object.keys(palette).length % extra.length];
    return palette[name];
  }
  var pts = data.results.filter(function (r) {
    return r.rate_gops > 0 && r.intensity > 0 && r.time_s;
  });
  var roofs = data.roofs.filter(function (r) { return r.mem_gbs > 0; });
  var xs = pts.map(function (p) { return p.intensity; });
  var ys = pts.map(function (p) { return p.rate_gops; });
  roofs.forEach(function (r) {
    if (r.int8_gops > 0) { ys.push(r.int8_gops); xs.push(r.int8_gops / r.mem_gbs); }
    if (r.f32_gflops > 0) { ys.push(r.f32_gflops); xs.push(r.f32_gflops / r.mem_gbs); }
  });
  if (!xs.length) { xs = [1]; ys = [1]; }
  function lg(v) { return Math.log(v) / Math.LN10; }
  var lx0 = Math.floor(lg(Math.min.apply(null, xs) / 2));
  var lx1 = Math.ceil(lg(Math.max.apply(null, xs) * 2));
  var ly0 = Math.floor(lg(Math.min.apply(null, ys) / 2));
  var ly1 = Math.ceil(lg(Math.max.apply(null, ys) * 1.5));
  if (lx1 <= lx0) lx1 = lx0 + 1;
  if (ly1 <= ly0) ly1 = ly0 + 1;
  function X(v) { return L + (lg(v) - lx0) / (lx1 - lx0) * (W - L - R); }
  function Y(v) { return H - B - (lg(v) - ly0) / (ly1 - ly0) * (H - T - B); }
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  function label(v) {
    if (v >= 1 && v < 1e5) return String(v);
    if (v < 1 && v >= 0.001) return String(Number(v.toPrecision(1)));
    return '1e' + Math.round(lg(v));
  }
  // ---- axes and decade grid ----
  var grid = el('g', {stroke: '#e3e7ec', 'stroke-width': 1});
  for (var i = lx0; i <= lx1; i++) {
    var gx = X(Math.pow(10, i));
    el('line', {x1: gx, y1: T, x2: gx, y2: H - B}, grid);
    el('text', {x: gx, y: H - B + 18, 'text-anchor': 'middle', 'font-size': 12, fill: '#5a6572'},
       svg, label(Math.pow(10, i)));
  }
  for (var j = ly0; j <= ly1; j++) {
    var gy = Y(Math.pow(10, j));
    el('line', {x1: L, y1: gy, x2: W - R, y2: gy}, grid);
    el('text', {x: L - 8, y: gy + 4, 'text-anchor': 'end', 'font-size': 12, fill: '#5a6572'},
       svg, label(Math.pow(10, j)));
  }
  el('rect', {x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#9aa4ae'});
  el('text', {x: (L + W - R) / 2, y: H - 14, 'text-anchor': 'middle', 'font-size': 13}, svg,
     'arithmetic intensity (ops per byte moved, keel cost model)');
  el('text', {x: 18, y: (T + H - B) / 2, 'text-anchor': 'middle', 'font-size': 13,
              transform: 'rotate(-90 18 ' + (T + H - B) / 2 + ')'}, svg, 'achieved rate (GOPS)');
  // ---- ceilings: min(peak, bandwidth x intensity) ----
  var clip = el('clipPath', {id: 'plot-area'});
  el('rect', {x: L, y: T, width: W - L - R, height: H - T - B}, clip);
  var roofLayer = el('g', {'clip-path': 'url(#plot-area)'});
  var labelYs = [];  // roof labels already placed: a label that would overlap one moves down
  function labelY(y) {
    var moved = true;
    while (moved) {
      moved = false;
      labelYs.forEach(function (u) { if (Math.abs(u - y) < 13) { y = u + 13; moved = true; } });
    }
    labelYs.push(y);
    return y;
  }
  // The reference's roof is the cpu's at one thread: its points are plotted, its lines are not.
  roofs.filter(function (r) { return r.backend !== 'reference'; }).forEach(function (r) {
    [['int8_gops', ''], ['f32_gflops', '6 4']].forEach(function (kind) {
      var peak = r[kind[0]];
      if (!(peak > 0)) return;
      var path = '';
      for (var s = 0; s <= 200; s++) {
        var xv = Math.pow(10, lx0 + (lx1 - lx0) * s / 200);
        var yv = Math.min(peak, r.mem_gbs * xv);
        path += (s ? 'L' : 'M') + X(xv).toFixed(1) + ' ' +
                Y(Math.max(yv, Math.pow(10, ly0))).toFixed(1);
      }
      el('path', {d: path, fill: 'none', stroke: colour(r.backend), 'stroke-width': 2,
                  'stroke-dasharray': kind[1], opacity: 0.75}, roofLayer);
      el('text', {x: W - R - 4, y: labelY(Math.max(Y(peak) - 5, T + 12)), 'text-anchor': 'end',
                  'font-size': 11,
                  fill: colour(r.backend)}, roofLayer,
         r.backend + (kind[0] === 'int8_gops' ? ' int8 ' : ' f32 ') +
         Number(peak.toPrecision(3)) + ' G/s');
    });
  });
  // ---- one marker per result ----
  var ops = {matmul_i8: 'circle', matmul_i4: 'square', conv2d_i8: 'triangle', attention: 'diamond'};
  function marker(shape, x, y, attrs, parent) {
    var r = 5.5;
    if (shape === 'circle') return el('circle', Object.assign({cx: x, cy: y, r: r}, attrs), parent);
    if (shape === 'square') {
      return el('rect', Object.assign({x: x - r, y: y - r, width: 2 * r, height: 2 * r}, attrs),
                parent);
    }
    var d = shape === 'triangle'
        ? 'M' + x + ' ' + (y - r - 1) + 'L' + (x + r + 1) + ' ' + (y + r) +
          'L' + (x - r - 1) + ' ' + (y + r) + 'Z'
        : 'M' + x + ' ' + (y - r - 1) + 'L' + (x + r + 1) + ' ' + y +
          'L' + x + ' ' + (y + r + 1) + 'L' + (x - r - 1) + ' ' + y + 'Z';
    return el('path', Object.assign({d: d}, attrs), parent);
  }
  var dots = el('g', {});
  var drawn = 0;
  pts.forEach(function (p) {
    var bad = p.outcome !== 'ok';
    var m = marker(ops[p.op] || 'circle', X(p.intensity), Y(p.rate_gops), {
      fill: colour(p.backend), 'fill-opacity': p.timed_shape === 'full' ? 0.85 : 0.35,
      stroke: bad ? '#b3261e' : '#ffffff', 'stroke-width': bad ? 2.5 : 1, 'class': 'point'}, dots);
    el('title', {}, m, p.workload + ' on ' + p.backend + ': ' + Number(p.rate_gops.toPrecision(3)) +
       ' GOPS at ' + Number(p.intensity.toPrecision(3)) + ' ops/byte' +
       (p.share_of_roofline
            ? ', ' + (100 * p.share_of_roofline).toFixed(1) + '% of the roofline' : '') +
       (p.timed_shape === 'sample' ? ' (timed on the verification sample)' : '') +
       (bad ? ' [' + p.outcome + ']' : ''));
    drawn++;
  });
  // ---- legend ----
  var lx = W - R + 20, ly = T + 8;
  el('text', {x: lx, y: ly, 'font-size': 12, 'font-weight': 600}, svg, 'backend');
  var names = [];
  pts.forEach(function (p) { if (names.indexOf(p.backend) < 0) names.push(p.backend); });
  roofs.forEach(function (r) { if (names.indexOf(r.backend) < 0) names.push(r.backend); });
  names.forEach(function (n) {
    ly += 18;
    el('rect', {x: lx, y: ly - 9, width: 12, height: 12, fill: colour(n)});
    el('text', {x: lx + 18, y: ly + 1, 'font-size': 12}, svg, n);
  });
  ly += 28;
  el('text', {x: lx, y: ly, 'font-size': 12, 'font-weight': 600}, svg, 'op');
  Object.keys(ops).forEach(function (o) {
    ly += 18;
    marker(ops[o], lx + 6, ly - 3, {fill: '#5a6572'});
    el('text', {x: lx + 18, y: ly + 1, 'font-size': 12}, svg, o);
  });
  ly += 28;
  el('text', {x: lx, y: ly, 'font-size': 12, 'font-weight': 600}, svg, 'ceilings');
  ly += 18;
  el('line', {x1: lx, y1: ly - 4, x2: lx + 14, y2: ly - 4, stroke: '#333', 'stroke-width': 2});
  el('text', {x: lx + 18, y: ly + 1, 'font-size': 12}, svg, 'int8 roofline');
  ly += 18;
  el('line', {x1: lx, y1: ly - 4, x2: lx + 14, y2: ly - 4, stroke: '#333', 'stroke-width': 2,
              'stroke-dasharray': '6 4'});
  el('text', {x: lx + 18, y: ly + 1, 'font-size': 12}, svg, 'f32 roofline');
  ly += 18;
  el('text', {x: lx, y: ly + 1, 'font-size': 11, fill: '#5a6572'}, svg,
     'faint: timed on the sample');
  ly += 16;
  el('text', {x: lx, y: ly + 1, 'font-size': 11, fill: '#b3261e'}, svg,
     'red outline: not verified');
  document.documentElement.setAttribute('data-points', String(drawn));
  document.documentElement.setAttribute('data-roofline', 'drawn');

  // ---- sortable tables: click a header ----
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable th'), function (th, idx) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var col = Array.prototype.indexOf.call(th.parentNode.children, th);
      var asc = th.getAttribute('data-asc') !== '1';
      th.setAttribute('data-asc', asc ? '1' : '0');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
        var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
)JS";

std::string time_cell(const result_entry& r) {
  if (r.time.reps == 0) return "<td class=n>&ndash;</td>";
  return fmt::format("<td class=n data-v=\"{:.9g}\">{}{}</td>", r.time.best_s,
                     esc(format_seconds(r.time.best_s)), r.time.simulated ? " (sim)" : "");
}

}  // namespace

std::string html_report(const envelope& e, const nlohmann::ordered_json& doc) {
  const machine_info& m = e.machine;
  const outcome_counts c = count_outcomes(e);
  std::string h;
  h.reserve(1 << 18);
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Errors of the page's own script are recorded on <html> so a headless check can read them.
  h += "<script>window.addEventListener('error', function (e) { var d = document.documentElement;"
       " d.setAttribute('data-js-errors', (d.getAttribute('data-js-errors') || '') + e.message +"
       " '; '); });</script>\n";
  h += fmt::format("<title>keel envelope: {}</title>\n<style>{}</style>\n</head>\n<body>\n",
                   esc(m.cpu.model), kStyle);
  h += fmt::format("<h1>keel envelope: {}</h1>\n", esc(m.cpu.model));
  h += fmt::format(
      "<p class=sub>keel-envelope {} &middot; {} &middot; host {} &middot; {:.1f} s{}</p>\n",
      KEEL_VERSION_STRING, esc(e.started), esc(m.os.hostname), e.duration_s,
      e.options.quick ? " &middot; quick mode (shapes scaled down)" : "");
  const bool bad = c.mismatch > 0 || c.error > 0;
  h += fmt::format(
      "<div class=\"verdict {}\">{}</div>\n", bad ? "bad" : "ok",
      bad ? fmt::format("{} mismatch(es) and {} error(s) among {} results: see the tables below.",
                        c.mismatch, c.error, c.total)
          : fmt::format("All {} results agree with the reference ({} unsupported pairs).", c.ok,
                        c.unsupported));
  if (e.interrupted) {
    h += "<div class=\"verdict bad\">The run was interrupted: this report holds what was measured "
         "before the stop.</div>\n";
  }

  // ---- machine ----
  h += "<h2>Machine</h2>\n<table>\n";
  std::string features;
  for (const isa_feature& f : m.cpu.features) features += f.name + (f.usable ? " " : " (off) ");
  h += fmt::format(
      "<tr><th>CPU</th><td>{} ({}), {} CPUs online, {} usable, {:.0f} MHz{}</td></tr>\n",
      esc(m.cpu.model), esc(m.cpu.arch), m.cpu.logical_cpus, m.cpu.usable_cpus, m.cpu.freq_mhz,
      m.cpu.hypervisor ? ", virtual machine" : "");
  h += fmt::format("<tr><th>ISA</th><td>{}</td></tr>\n", esc(features));
  std::string caches;
  for (const cache_info& k : m.cpu.caches) {
    caches +=
        fmt::format("L{} {} {} KiB (shared by {}); ", k.level, k.type, k.size_kib, k.shared_by);
  }
  h += fmt::format("<tr><th>Caches</th><td>{}</td></tr>\n", esc(caches));
  h += fmt::format("<tr><th>Memory</th><td>{} MiB, {} MiB available</td></tr>\n",
                   m.memory.total_mib, m.memory.available_mib);
  h += fmt::format("<tr><th>OS</th><td>{} {}</td></tr>\n</table>\n", esc(m.os.name),
                   esc(m.os.release));
  h += "<h3>Backends</h3>\n<table>\n<tr><th>backend</th><th>unit</th><th>status</th><th>bit-exact</"
       "th>"
       "<th>detail</th></tr>\n";
  for (const backend_info& b : e.backends) {
    h +=
        fmt::format("<tr><td>{}</td><td>{}</td><td class={}>{}</td><td>{}</td><td>{}</td></tr>\n",
                    esc(b.name), esc(b.unit), b.status == "available" ? "ok" : "dim", esc(b.status),
                    b.status == "available" ? (b.bit_exact ? "yes" : "no") : "", esc(b.detail));
  }
  h += "</table>\n";

  // ---- ceilings ----
  h += "<h2>Ceilings</h2>\n<table class=sortable>\n<thead><tr><th>ceiling</th><th>method</th>"
       "<th>threads</th><th>value</th></tr></thead><tbody>\n";
  for (const ceiling& k : e.ceilings) {
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n data-v=\"{}\">{} {}</td></tr>\n",
        esc(k.id), esc(k.method), k.threads, k.value, gops(k.value), esc(k.unit));
  }
  h += "</tbody></table>\n";

  // ---- roofline ----
  h += "<h2>Roofline</h2>\n<svg id=\"roofline\" role=\"img\" aria-label=\"roofline plot\"></svg>\n"
       "<noscript><p class=note>The plot is drawn by the page's script; the tables below hold the "
       "same numbers.</p></noscript>\n";
  h +=
      "<p class=note>Each marker is one workload on one backend: x is its arithmetic intensity "
      "(operations per byte of its operands, keel's cost model), y the rate it achieved. Lines are "
      "each unit's ceilings: the measured compute peak and memory read bandwidth (cpu, reference) "
      "or the configured MAC array and DMA rate (virtual NPU, whose points are its cycle model's "
      "prediction).</p>\n";

  // ---- per-op tables ----
  h += "<h2>Results by op</h2>\n";
  for (op_kind k :
       {op_kind::matmul_i8, op_kind::matmul_i4, op_kind::conv2d_i8, op_kind::attention}) {
    bool any = false;
    for (const result_entry& r : e.results) any = any || r.op == k;
    if (!any) continue;
    h += fmt::format(
        "<h3>{}</h3>\n<table class=sortable>\n<thead><tr><th>workload</th><th>shape</th>"
        "<th>dtypes</th><th>backend</th><th>time</th><th>GOPS</th><th>% roofline</th>"
        "<th>% peak</th><th>timed on</th><th>verification</th></tr></thead><tbody>\n",
        to_string(k));
    for (const result_entry& r : e.results) {
      if (r.op != k) continue;
      const workload_record* w = e.find_workload(r.workload);
      std::string verdict;
      if (r.outcome == "ok") {
        verdict = r.verified_on == "oracle" ? "<span class=dim>oracle</span>"
                                            : fmt::format("<span class=ok>ok</span>: {} on {}",
                                                          esc(r.check.rule), esc(r.verified_on));
      } else if (r.outcome == "unsupported") {
        verdict = "<span class=dim>unsupported</span>: " + esc(r.message);
      } else {
        verdict = fmt::format("<span class=bad>{}</span>: {}", esc(r.outcome), esc(r.message));
      }
      if (r.outcome == "ok" && !r.message.empty())
        verdict += "<br><span class=dim>" + esc(r.message) + "</span>";
      h += fmt::format(
          "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td class=n>{}</td>"
          "<td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>\n",
          w ? esc(w->w.model + ": " + w->w.layer) : "", esc(r.workload), w ? esc(w->shape) : "",
          w ? esc(w->dtypes) : "", esc(r.backend), time_cell(r),
          r.time.reps ? gops(r.rate_gops) : "&ndash;",
          r.time.reps ? pct(r.share_roofline) : "&ndash;",
          r.time.reps ? pct(r.share_peak) : "&ndash;",
          r.time.reps ? (r.timed_full ? "full shape" : "sample") : "", verdict);
    }
    h += "</tbody></table>\n";
  }
  h += "<h3>Verification samples</h3>\n<table>\n<tr><th>workload</th><th>what the reference "
       "computed</th></tr>\n";
  for (const workload_record& w : e.workloads) {
    if (w.ran) h += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", esc(w.w.id), esc(w.sample));
  }
  h += "</table>\n<p class=note>The scalar reference is too slow for full model shapes, so it "
       "computes a sample: whole rows and columns of a matmul, whole output channels (or groups) "
       "of a convolution, whole KV heads of an attention, always including the first and last "
       "ones. Every backend's full output is compared at those positions, and the sample itself is "
       "also run on the backend and compared in full. Integer outputs, and the f32 outputs of "
       "matmul_i8 and conv2d_i8, must be bit-exact; the f32 outputs of matmul_i4 and attention "
       "must stay within the bounds of docs/semantics.md.</p>\n";

  // ---- routing ----
  if (!e.routing.empty()) {
    h += "<h2>Routing table on this machine</h2>\n<p class=note>What keel::router would run first "
         "for each workload under each shipped policy, on the measured board profile below, with "
         "its predicted time; and the backend that was measured fastest on the full shape.</p>\n";
    h += "<table class=sortable>\n<thead><tr><th>workload</th>";
    for (const std::string& p : policy_names()) h += "<th>" + esc(p) + "</th>";
    h += "<th>measured fastest</th></tr></thead><tbody>\n";
    std::vector<std::string> ids;
    for (const route_row& r : e.routing) {
      if (std::find(ids.begin(), ids.end(), r.workload) == ids.end()) ids.push_back(r.workload);
    }
    for (const std::string& id : ids) {
      h += "<tr><td>" + esc(id) + "</td>";
      for (const std::string& p : policy_names()) {
        std::string cell;
        for (const route_row& r : e.routing) {
          if (r.workload != id || r.policy != p) continue;
          for (std::size_t i = 0; i < r.order.size(); ++i) {
            cell += fmt::format("{}{} {}", i ? " &gt; " : "<b>", esc(r.order[i].backend),
                                esc(format_seconds(r.order[i].predicted_us * 1e-6)));
            if (i == 0) cell += "</b>";
          }
        }
        h += "<td>" + cell + "</td>";
      }
      const auto [fastest, s] = measured_fastest(e, id);
      h += "<td>" +
           (fastest.empty() ? std::string("&ndash;") : esc(fastest + " " + format_seconds(s))) +
           "</td></tr>\n";
    }
    h += "</tbody></table>\n";
    h += "<h3>Compile-time candidates</h3>\n<table>\n";
    for (const auto& [key, order] : e.candidates) {
      h += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", esc(key), esc(order));
    }
    h += "</table>\n";
  }

  // ---- the board profile ----
  if (!e.header_text.empty()) {
    h += "<h2>Board profile</h2>\n";
    if (!e.written.header.empty()) {
      h += "<p class=note>Written to <code>" + esc(e.written.header) + "</code>:</p>\n";
    }
    h += "<pre>" + esc(e.header_text) + "</pre>\n";
  }

  // ---- the data, then the script that draws from it ----
  std::string json = doc.dump();
  for (std::size_t p = json.find("</"); p != std::string::npos; p = json.find("</", p + 3)) {
    json.replace(p, 2, "<\\/");
  }
  h += "<script type=\"application/json\" id=\"envelope-data\">" + json + "</script>\n";
  h += "<script>" + std::string(kScript) + "</script>\n</body>\n</html>\n";
  return h;
}

}  // namespace keel::envelope
