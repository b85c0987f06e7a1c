#!/usr/bin/env python3
"""Turns benchmark JSON (Google Benchmark's --benchmark_format=json, and onnxruntime_bench.py's
output in the same shape) into the markdown tables of docs/performance.md.

    make_table.py [--machine machine.json] [--out-md table.md] [--out-json merged.json]
                  [--update-doc docs/performance.md] results/*.json

Rows are named `op/impl/shape_<t>t` (bench/peers/common.hpp). Each keel row is put beside the best
peer row of the same kind (GEMV or GEMM), the same weight class (int8 or int4 weights), the same
shape and the same thread count, and beside this machine's ceiling for the same thread count:
memory read bandwidth for GEMV rows (they stream their weights once), the AVX2 int8
multiply-accumulate rate for GEMM rows (keel's kernels are AVX2).

With --update-doc, the text between the markers `<!-- results:begin -->` and
`<!-- results:end -->` in that file is replaced by the tables; the rest of the file is kept.
"""

import argparse
import json
import re
import sys

GB_SUFFIXES = re.compile(r"(/(real_time|process_time|manual_time|min_time:[^/]*|"
                         r"min_warmup_time:[^/]*|iterations:\d+|repeats:\d+|threads:\d+))+$")
THREADS = re.compile(r"^(?P<shape>.*?)_(?P<t>\d+)t$")
SHAPE = re.compile(r"^M(?P<m>\d+)_N(?P<n>\d+)_K(?P<k>\d+)$")

# Issue 3's targets: (label, which keel rows, against what, the least value that meets it).
#   against: "ceiling" (share of the row's ceiling), "best" (keel over the best peer) or an impl
#   prefix ("onednn": keel over each oneDNN variant in the run).
TARGETS = [
    ("int8 GEMV: >= 90% of read bandwidth",
     lambda r: r.kind == "gemv" and r.weight_class == "int8", "ceiling", 0.90),
    ("int8 GEMV: >= 1.07x the best peer",
     lambda r: r.kind == "gemv" and r.weight_class == "int8", "best", 1.07),
    ("int4 GEMV: >= 85% of read bandwidth",
     lambda r: r.kind == "gemv" and r.weight_class == "int4", "ceiling", 0.85),
    ("int4 GEMV: >= 1.4x the best peer",
     lambda r: r.kind == "gemv" and r.weight_class == "int4", "best", 1.4),
    ("int8 GEMM M=128, K=N=4096: >= 90% of the int8 ceiling",
     lambda r: r.weight_class == "int8" and r.shape == "M128_N4096_K4096", "ceiling", 0.90),
    ("int8 GEMM 1024^3: >= 0.97x oneDNN",
     lambda r: r.weight_class == "int8" and r.shape == "M1024_N1024_K1024", "onednn", 0.97),
    ("int4 GEMM M=512: >= 60% of the int8 ceiling",
     lambda r: r.kind == "gemm" and r.weight_class == "int4" and r.mnk and r.mnk[0] == 512,
     "ceiling", 0.60),
]


# ---- reading ---------------------------------------------------------------------------------

class Row:
    def __init__(self, name, entry, source):
        self.name = name
        self.source = source
        self.op, self.impl, rest = (name.split("/", 2) + ["", ""])[:3]
        m = THREADS.match(rest)
        self.shape = m.group("shape") if m else rest
        self.threads = int(m.group("t")) if m else int(entry.get("nthreads", 1) or 1)
        s = SHAPE.match(self.shape)
        self.mnk = tuple(int(s.group(g)) for g in "mnk") if s else None
        self.real_time = entry.get("real_time")  # per iteration, in time_unit
        self.cpu_time = entry.get("cpu_time")
        self.time_unit = entry.get("time_unit", "ns")
        self.ops = entry.get("ops")              # per second
        self.bytes = entry.get("bytes")          # per second
        self.bytes_per_iter = entry.get("bytes_per_iter")
        self.cold_copies = int(entry.get("cold_copies", 1) or 1)
        self.label = entry.get("label", "")
        self.reps = 1

    @property
    def kind(self):
        return self.op.split("_", 1)[0]

    @property
    def dtypes(self):
        return self.op.split("_", 1)[1] if "_" in self.op else ""

    @property
    def weight_class(self):
        # int4 rows name a 4-bit dtype (s4, u4); everything else here is int8.
        return "int4" if re.search(r"[su]4", self.dtypes) else "int8"

    @property
    def cpu_share(self):
        """Process CPU time over wall time times threads: how much of its cores the row got."""
        if not self.real_time or self.cpu_time is None:
            return None
        share = self.cpu_time / (self.real_time * self.threads)
        return share if share <= 1.5 else None  # a row without process CPU time: unknown

    def key(self):
        return (self.kind, self.weight_class, self.shape, self.threads)


def median_of(rows):
    """One row from repetitions: the median by real time (the rates move with it)."""
    rows = sorted(rows, key=lambda r: r.real_time)
    mid = rows[len(rows) // 2]
    mid.reps = len(rows)
    return mid


def load(paths):
    rows, errors, contexts = {}, [], []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        contexts.append((path, doc.get("context", {})))
        reps = {}
        medians = {}
        for e in doc.get("benchmarks", []):
            name = GB_SUFFIXES.sub("", e.get("run_name") or e.get("name", ""))
            if e.get("error_occurred"):
                errors.append((name, e.get("error_message", "")))
                continue
            if e.get("run_type") == "aggregate":
                if e.get("aggregate_name") == "median":
                    medians[name] = Row(name, e, path)
                    medians[name].reps = int(e.get("repetitions", 1))
                continue
            reps.setdefault(name, []).append(Row(name, e, path))
        for name, rs in reps.items():
            rows[name] = median_of(rs)
        rows.update(medians)  # Google Benchmark's own median wins over ours
    return rows, errors, contexts


# ---- formatting ------------------------------------------------------------------------------

def fmt_rate(row):
    """GEMV rows are read in GB/s (memory-bound), everything else in GOPS."""
    if row.kind == "gemv" or row.op.startswith("mem_"):
        return f"{row.bytes / 1e9:.1f} GB/s" if row.bytes else "-"
    return f"{row.ops / 1e9:.1f} GOPS" if row.ops else "-"


def rate_value(row):
    return (row.bytes if row.kind == "gemv" else row.ops) or 0.0


def cell(text):
    """Text safe inside a markdown table cell (a regex in a command line holds '|')."""
    return str(text).replace("|", "\\|")


def fmt_time(row):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}.get(row.time_unit, 1.0)
    return f"{row.real_time * scale:.3f}"


def fmt_share(x):
    return f"{100 * x:.0f}%" if x is not None else "-"


def best_ceiling(ceilings, op, threads, rate):
    """The ceiling row of `op` ("mem_read", "int8_mac") at `threads` with the highest rate over
    every method measured (the AVX2, AVX-512 VNNI and AMX MAC loops; the read loops), and its
    method."""
    found = [(rate(r), variant) for (o, variant, t), r in ceilings.items()
             if o == op and t == threads and rate(r)]
    return max(found) if found else (None, "")


def ceiling_for(row, ceilings):
    """(value, label) of the ceiling a row is measured against, or (None, ''): GEMV rows against
    the fastest read loop, GEMM rows against the fastest int8 MAC loop of the same thread count
    (on a CPU with AMX, the tdpbusd loop; with AVX-512 VNNI, the vpdpbusd loop: every impl of the
    table may use it)."""
    if row.kind == "gemv":
        c, variant = best_ceiling(ceilings, "mem_read", row.threads, lambda r: r.bytes)
        return (c, f"read BW ({variant})") if c else (None, "")
    c, variant = best_ceiling(ceilings, "int8_mac", row.threads, lambda r: r.ops)
    return (c, f"int8 MAC ({variant})") if c else (None, "")


def collect_ceilings(rows):
    out = {}
    for r in rows.values():
        if r.impl == "ceiling":
            m = THREADS.match(r.name.split("/", 2)[2])
            variant = m.group("shape") if m else r.shape
            out[(r.op, variant, r.threads)] = r
    return out


def is_keel(row):
    return row.impl == "keel" or row.impl.startswith("keel_")


def per_cpu_second(row):
    """The row's rate per second of CPU time the process actually received (its ops or bytes over
    its process CPU time), in the row's unit, or None. On a loaded machine this estimates what
    the row's cores would do if they were its own; spinning threads inflate CPU time, so it is a
    floor for multi-thread rows."""
    share = row.cpu_share
    if not share:
        return None
    value = row.bytes if (row.kind == "gemv" or row.op.startswith("mem_")) else row.ops
    return value / (share * row.threads) if value else None


def fmt_per_cpu(row):
    v = per_cpu_second(row)
    if v is None:
        return "-"
    unit = "GB" if (row.kind == "gemv" or row.op.startswith("mem_")) else "G"
    return f"{v / 1e9:.1f} {unit}"


def contended(row):
    share = row.cpu_share
    return share is not None and share < 0.8


def build_tables(rows, errors, contexts, machine):
    ceilings = collect_ceilings(rows)
    # keel's rows: `keel` (the backend's own choice on full-range data) and its variants
    # (`keel_ubs`: weights restricted to the range the faster ubs kernel is exact on;
    # `keel_<kernel>`: one kernel forced). Targets are judged on `keel` rows only.
    keel = [r for r in rows.values() if is_keel(r)]
    peers = [r for r in rows.values() if not is_keel(r) and r.impl != "ceiling"]
    by_key = {}
    for p in peers:
        by_key.setdefault(p.key(), []).append(p)
    lines = []
    w = lines.append

    # Header: what, where, when.
    w("| | |")
    w("|---|---|")
    for k in ("date", "command", "git", "cpu", "cores", "memory", "load_before", "load_after",
              "note"):
        if machine.get(k):
            w(f"| {k.replace('_', ' ')} | {cell(machine[k])} |")
    versions = {}  # name -> values seen (files may differ: say so rather than pick one)
    for _, ctx in contexts:
        for k, v in ctx.items():
            if k.endswith("_version") or k.endswith("_isa") or k in (
                    "cold_pool_mib", "stream_buffer_mib", "llc_mib", "ort_intra_op_spinning"):
                versions.setdefault(k, []).append(str(v))
            if k == "library_build_type":  # Debian's libbenchmark reports its own build, not ours
                versions.setdefault("libbenchmark_build", []).append(str(v))
    for k, v in sorted(machine.get("packages", {}).items()):
        versions.setdefault(k, []).append(v)
    if versions:
        w("| versions and settings | " + ", ".join(
            f"{k} {' / '.join(dict.fromkeys(v))}" for k, v in sorted(versions.items())) + " |")
    w("")

    # Ceilings.
    w("### Ceilings")
    w("")
    w("| row | threads | rate | time per iteration (ms) | CPU share | per CPU-second (~ per core) |")
    w("|---|---:|---:|---:|---:|---:|")
    for (op, variant, t), r in sorted(ceilings.items()):
        rate = f"{r.bytes / 1e9:.1f} GB/s" if op.startswith("mem_") else f"{r.ops / 1e9:.0f} GOPS"
        w(f"| `{r.name}` | {t} | {rate} | {fmt_time(r)} | {fmt_share(r.cpu_share)} | "
          f"{fmt_per_cpu(r)} |")
    w("")

    # keel beside the best peer.
    w("### keel beside the best peer and the ceiling")
    w("")
    if not keel:
        w("_No keel rows in this run (bench_matmul was built without bench/bench_gemm_i8.cpp, or "
          "its rows were filtered out)._")
        w("")
    else:
        w("| row | keel | share of ceiling | best peer | peer | keel / peer |")
        w("|---|---:|---:|---|---:|---:|")
        for r in sorted(keel, key=sort_key):
            c, clabel = ceiling_for(r, ceilings)
            share = rate_value(r) / c if c else None
            cands = by_key.get(r.key(), [])
            best = max(cands, key=rate_value) if cands else None
            ratio = rate_value(r) / rate_value(best) if best and rate_value(best) else None
            flag = " (contended)" if contended(r) else ""
            w(f"| `{r.name}`{flag} | {fmt_rate(r)} | {fmt_share(share)} {clabel} | "
              f"{'`' + best.op + '/' + best.impl + '`' if best else '-'} | "
              f"{fmt_rate(best) if best else '-'} | "
              f"{f'{ratio:.2f}x' if ratio else '-'} |")
        w("")

    # Targets.
    if keel:
        w("### Issue 3's targets")
        w("")
        w("| target | keel row | against | measured | met |")
        w("|---|---|---|---:|---|")
        for label, which, against, least in TARGETS:
            for r in sorted((r for r in keel if r.impl == "keel" and which(r)), key=sort_key):
                for vs, value in target_values(r, against, ceilings, by_key):
                    met = "yes" if value is not None and value >= least else "no"
                    shown = (fmt_share(value) if against == "ceiling" else
                             f"{value:.2f}x" if value is not None else "-")
                    if value is None:
                        met = "not measured"
                    w(f"| {label} | `{r.name}` | {vs} | {shown} | {met} |")
        w("")

    # Every row.
    w("### Every row")
    w("")
    w("| row | time (ms) | GOPS | GB/s | bytes/iter (MB) | share of ceiling | cold copies | "
      "CPU share | per CPU-second (~ per core) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted((r for r in rows.values() if r.impl != "ceiling"), key=sort_key):
        c, clabel = ceiling_for(r, ceilings)
        share = rate_value(r) / c if c else None
        w(f"| `{r.name}` | {fmt_time(r)} | {(r.ops or 0) / 1e9:.1f} | {(r.bytes or 0) / 1e9:.2f} | "
          f"{(r.bytes_per_iter or 0) / 1e6:.2f} | {fmt_share(share)} {clabel} | {r.cold_copies} | "
          f"{fmt_share(r.cpu_share)} | {fmt_per_cpu(r)} |")
    w("")
    if errors:
        w("Rows that did not run:")
        w("")
        for name, msg in errors:
            w(f"- `{name}`: {msg}")
        w("")
    return "\n".join(lines)


def target_values(r, against, ceilings, by_key):
    """[(what the row is compared with, value)] for one target kind."""
    if against == "ceiling":
        c, clabel = ceiling_for(r, ceilings)
        return [(clabel or "ceiling", rate_value(r) / c if c else None)]
    cands = by_key.get(r.key(), [])
    if against == "best":
        best = max(cands, key=rate_value) if cands else None
        return [(f"`{best.impl}`" if best else "best peer",
                 rate_value(r) / rate_value(best) if best and rate_value(best) else None)]
    chosen = [p for p in cands if p.impl.startswith(against)]
    if not chosen:
        return [(against, None)]
    return [(f"`{p.impl}`", rate_value(r) / rate_value(p) if rate_value(p) else None)
            for p in sorted(chosen, key=lambda p: p.impl)]


def sort_key(r):
    kinds = {"gemv": 0, "gemm": 1}
    mnk = r.mnk or (0, 0, 0)
    return (r.weight_class, kinds.get(r.kind, 2), mnk, r.threads, not is_keel(r), r.impl != "keel",
            r.op, r.impl)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("json", nargs="+", help="benchmark JSON files")
    p.add_argument("--machine", help="machine.json written by run_all.sh")
    p.add_argument("--out-md", help="write the tables here")
    p.add_argument("--out-json", help="write every row, merged, here")
    p.add_argument("--update-doc", help="replace the results block of this markdown file")
    args = p.parse_args()

    machine = {}
    if args.machine:
        with open(args.machine) as f:
            machine = json.load(f)
    rows, errors, contexts = load(args.json)
    text = build_tables(rows, errors, contexts, machine)

    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    if args.out_json:
        merged = {"machine": machine, "contexts": {path: ctx for path, ctx in contexts},
                  "rows": [dict(vars(r), name=r.name) for r in rows.values()],
                  "errors": [{"name": n, "message": m} for n, m in errors]}
        with open(args.out_json, "w") as f:
            json.dump(merged, f, indent=1)
    if args.update_doc:
        with open(args.update_doc) as f:
            doc = f.read()
        begin, end = "<!-- results:begin -->", "<!-- results:end -->"
        if begin not in doc or end not in doc:
            print(f"make_table: {args.update_doc} has no {begin} ... {end} block", file=sys.stderr)
            return 1
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        with open(args.update_doc, "w") as f:
            f.write(head + begin + "\n" + text + "\n" + end + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
