#!/usr/bin/env python3
"""Tests of the keel-envelope program as a whole (tools/envelope/meson.build registers each mode).

  quick         --quick completes, prints the table, reports every backend (Vulkan "not built"),
                writes JSON that validates against docs/envelope-schema.json (and a broken copy
                that does not), HTML and a header; bad command lines exit 2
  wrong-result  KEEL_ENVELOPE_WRONG_RESULT=<backend> makes that backend's results mismatch: loud
                on stderr, exit status 1, the JSON says so
  header        the generated board header compiles (with -Wall -Wextra -Werror) in a program that
                routes a matmul through keel::router on that board, bit-exact; the router's plans
                for every workload equal the routing table in the JSON
  html          headless Chromium renders the report: the roofline is drawn with one marker per
                timed result, no script error, no network reference; the screenshot is kept
  compare       `keel-envelope compare` on a real document and a copy with some times changed
  interrupt     SIGINT while the workloads run (and while the ceilings run): exit 130, and the
                outputs hold what was measured, valid against the schema

Artifacts (outputs, screenshot, compiler output) go to --artifacts (the build's meson-logs/envelope).
Exit status 77 means skipped (Meson's convention), with the reason printed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(cmd, env=None, timeout=600, **kw):
    merged = dict(os.environ)
    merged.update(env or {})
    merged.setdefault("NO_COLOR", "1")
    return subprocess.run(cmd, env=merged, timeout=timeout, capture_output=True, text=True, **kw)


def save(args, name, text):
    os.makedirs(args.artifacts, exist_ok=True)
    with open(os.path.join(args.artifacts, name), "w") as f:
        f.write(text)


# ---- the JSON schema ------------------------------------------------------------------------

VALIDATE = r"""
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errors[:10]:
    print("/".join(str(p) for p in e.absolute_path), ":", e.message[:300])
sys.exit(1 if errors else 0)
"""


def python_with_jsonschema():
    """The first interpreter that has jsonschema: this one, or Debian's (python3-jsonschema)."""
    for py in [sys.executable, "/usr/bin/python3", "python3"]:
        exe = shutil.which(py) if os.sep not in py else (py if os.path.exists(py) else None)
        if exe and subprocess.run([exe, "-c", "import jsonschema"], capture_output=True).returncode == 0:
            return exe
    return None


def validate(args, path):
    """(ok, messages) of validating `path` against the schema."""
    py = python_with_jsonschema()
    if py is None:
        raise Failure("no Python with jsonschema (scripts/setup.sh installs python3-jsonschema)")
    r = subprocess.run([py, "-c", VALIDATE, args.schema, path], capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


def require_valid(args, path):
    ok, msg = validate(args, path)
    check(ok, f"{path} does not validate against {args.schema}:\n{msg}")


# ---- modes ------------------------------------------------------------------------------------

def quick_run(args, out, extra=(), env=None):
    cmd = [args.tool, "--quick", "--out-dir", out, "--board-name", "envelope_test_board"] + list(extra)
    r = run(cmd, env=env)
    save(args, os.path.basename(out) + ".stdout.txt", r.stdout)
    save(args, os.path.basename(out) + ".stderr.txt", r.stderr)
    return r


def mode_quick(args, tmp):
    out = os.path.join(tmp, "quick")
    r = quick_run(args, out)
    check(r.returncode == 0, f"--quick exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    for text in ["Ceilings", "Results", "Routing", "Verified:", "envelope.json"]:
        check(text in r.stdout, f"the terminal output lacks {text!r}")
    path = os.path.join(out, "envelope.json")
    require_valid(args, path)
    doc = json.load(open(path))
    for name in ["envelope.json", "envelope.html", "envelope_test_board.hpp"]:
        check(os.path.exists(os.path.join(out, name)), f"{name} was not written")
        shutil.copy(os.path.join(out, name), os.path.join(args.artifacts, "quick-" + name))

    # Every backend that is present reports, and verifies, results; Vulkan says "not built".
    available = [b["name"] for b in doc["backends"] if b["status"] == "available"]
    check({"reference", "cpu", "keel_vnpu"} <= set(available), f"backends: {available}")
    for name in available:
        ok = [x for x in doc["results"] if x["backend"] == name and x["outcome"] == "ok"]
        check(ok, f"backend {name} has no verified result")
        check(re.search(rf"^\s+.*\b{re.escape(name)}\b", r.stdout, re.M), f"{name} is not in the table")
    vulkan = [b for b in doc["backends"] if b["name"] == "vulkan"]
    check(vulkan and vulkan[0]["status"] == "not built", "Vulkan is not reported as not built")
    check(doc["accelerators"]["vulkan"]["status"] == "not built", "accelerators.vulkan")
    check(doc["summary"]["mismatches"] == 0 and doc["summary"]["errors"] == 0, doc["summary"])
    check(doc["run"]["complete"] and not doc["run"]["interrupted"], "run not complete")
    ops = {x["op"] for x in doc["results"] if x["outcome"] == "ok"}
    check(ops == {"matmul_i8", "matmul_i4", "conv2d_i8", "attention"}, f"ops verified: {ops}")
    workloads = {w["id"].split(".")[0] for w in doc["workloads"]}
    check(workloads == {"llm7b", "mbv2", "minilm"}, f"workload families: {workloads}")

    # The schema check can fail: a document missing a required field, or with a wrong type.
    broken = json.load(open(path))
    del broken["results"][0]["outcome"]
    broken["run"]["seed"] = "one"
    bad_path = os.path.join(tmp, "broken.json")
    json.dump(broken, open(bad_path, "w"))
    ok, _ = validate(args, bad_path)
    check(not ok, "a broken document validated")

    # Bad command lines exit 2 and write nothing.
    for bad in (["--ops", "matmul_i9"], ["--board-name", "9lives"], ["--backends", "nosuch"],
                ["--workloads", "nosuch"], ["--threads", "0"]):
        o = os.path.join(tmp, "bad")
        b = run([args.tool, "--quick", "--out-dir", o] + bad)
        check(b.returncode == 2, f"{bad} exited {b.returncode}, not 2: {b.stderr[-500:]}")
        check(not os.path.exists(o), f"{bad} wrote outputs")
    h = run([args.tool, "--help"])
    check(h.returncode == 0 and "--quick" in h.stdout and "compare" in h.stdout, "--help")


def mode_wrong_result(args, tmp):
    for backend in ["cpu", "keel_vnpu"]:
        out = os.path.join(tmp, "wrong-" + backend)
        r = quick_run(args, out, ["--workloads", "minilm,mbv2.b1", "--ceiling-seconds", "0.01"],
                      env={"KEEL_ENVELOPE_WRONG_RESULT": backend})
        check(r.returncode == 1, f"hook {backend}: exit {r.returncode}, not 1\n{r.stderr[-2000:]}")
        check(f"MISMATCH {backend}" in r.stderr, f"hook {backend}: no MISMATCH line on stderr")
        check("FAILED" in r.stdout, f"hook {backend}: the verdict does not say FAILED")
        path = os.path.join(out, "envelope.json")
        require_valid(args, path)
        doc = json.load(open(path))
        check(doc["run"]["test_hook_wrong_result"] == backend, "the JSON does not name the hook")
        mine = [x for x in doc["results"] if x["backend"] == backend and x["outcome"] != "unsupported"]
        check(mine and all(x["outcome"] == "mismatch" for x in mine),
              f"hook {backend}: not every result mismatched: {[x['outcome'] for x in mine]}")
        others = [x for x in doc["results"] if x["backend"] != backend]
        check(all(x["outcome"] in ("ok", "unsupported") for x in others), "other backends failed")
        check(doc["summary"]["mismatches"] == len(mine), doc["summary"])
    r = run([args.tool, "--quick", "--out-dir", os.path.join(tmp, "x")],
            env={"KEEL_ENVELOPE_WRONG_RESULT": "reference"})
    check(r.returncode == 2, "the hook accepted the reference")


def mode_header(args, tmp):
    out = os.path.join(tmp, "header")
    r = quick_run(args, out, ["--ceiling-seconds", "0.01"])
    check(r.returncode == 0, f"--quick exited {r.returncode}\n{r.stderr[-2000:]}")
    header = os.path.join(out, "envelope_test_board.hpp")
    text = open(header).read()
    check(text.startswith("// keel/boards/envelope_test_board.hpp: a board profile GENERATED by "
                          "keel-envelope"), "the banner's first line")
    check("// Machine: " in text and "static_assert(check_profile<envelope_test_board>());" in text,
          "the banner names the machine; the profile is checked")
    exe = os.path.join(tmp, "route_check")
    cmd = (args.cxx + ["-std=c++20", "-O1", "-Wall", "-Wextra", "-Werror"] + args.cflags +
           [f'-DKEEL_ENVELOPE_BOARD_HEADER="{header}"', "-DKEEL_ENVELOPE_BOARD=envelope_test_board",
            args.route_check, args.lib, "-o", exe] + args.libs)
    c = run(cmd, timeout=900)
    save(args, "route_check.compile.txt", " ".join(cmd) + "\n" + c.stdout + c.stderr)
    check(c.returncode == 0, f"the generated header does not compile:\n{c.stderr[-4000:]}")
    p = run([exe])
    save(args, "route_check.stdout.txt", p.stdout + p.stderr)
    check(p.returncode == 0, f"route_check exited {p.returncode}:\n{p.stdout[-2000:]}")
    check(re.search(r"^route matmul_i8 \S+ bit-exact$", p.stdout, re.M), "no routed matmul line")

    # The router compiled against the header plans exactly what the JSON's routing table says.
    doc = json.load(open(os.path.join(out, "envelope.json")))
    table = {(c["policy"], c["workload"]): c["order"] for c in doc["routing"]["choices"]}
    plans = [l.split() for l in p.stdout.splitlines() if l.startswith("plan ")]
    check(len(plans) == len(table) and plans, f"{len(plans)} plans, {len(table)} table rows")
    for _, policy, workload, *order in plans:
        want = table.get((policy, workload))
        check(want is not None, f"no routing row for {policy} {workload}")
        got = [(o.split("=")[0], float(o.split("=")[1])) for o in order]
        check([g[0] for g in got] == [w["backend"] for w in want],
              f"{policy} {workload}: router {got}, JSON {want}")
        for (name, us), w in zip(got, want):
            # The router keeps predictions as float; the JSON has the double they came from.
            check(abs(us - w["predicted_us"]) <= 1e-6 * max(1.0, abs(us)),
                  f"{policy} {workload} {name}: router {us} us, JSON {w['predicted_us']} us")


def mode_html(args, tmp):
    chromium = next((shutil.which(c) for c in ["chromium", "chromium-browser", "google-chrome"]
                     if shutil.which(c)), None)
    if chromium is None:
        print("skipped: no chromium (scripts/setup.sh installs Debian's chromium)")
        return SKIP
    out = os.path.join(tmp, "html")
    r = quick_run(args, out, ["--ceiling-seconds", "0.01"])
    check(r.returncode == 0, f"--quick exited {r.returncode}\n{r.stderr[-2000:]}")
    html_path = os.path.join(out, "envelope.html")
    html = open(html_path).read()
    # Offline: nothing to fetch. No element loads a URL and no stylesheet imports one.
    check(not re.search(r"""(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""", html, re.I), "a remote src/href")
    check(not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html, re.I), "a remote CSS reference")
    check("<link" not in html.lower(), "a <link> element")
    doc = json.load(open(os.path.join(out, "envelope.json")))
    expected = sum(1 for x in doc["results"]
                   if x["time_s"] and (x["rate_gops"] or 0) > 0 and (x["intensity"] or 0) > 0)
    check(expected > 0, "no timed result to plot")

    profile = os.path.join(tmp, "chromium-profile")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
            "--user-data-dir=" + profile]
    url = "file://" + os.path.abspath(html_path)
    dom = run(base + ["--dump-dom", url], timeout=180)
    check(dom.returncode == 0, f"chromium --dump-dom exited {dom.returncode}: {dom.stderr[-2000:]}")
    root = re.search(r"<html[^>]*>", dom.stdout)
    check(root, "no <html> in the rendered DOM")
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
    check("data-js-errors" not in attrs, f"script errors: {attrs.get('data-js-errors')}")
    check(attrs.get("data-roofline") == "drawn", f"the roofline was not drawn: {attrs}")
    check(attrs.get("data-points") == str(expected), f"{attrs.get('data-points')} markers, {expected} timed results")
    check(dom.stdout.count('class="point"') == expected, "markers in the SVG")

    shot = os.path.join(args.artifacts, "envelope-report.png")
    if os.path.exists(shot):
        os.remove(shot)
    s = run(base + ["--enable-logging=stderr", "--v=0", "--window-size=1280,2400",
                    "--screenshot=" + shot, url], timeout=180)
    save(args, "chromium.stderr.txt", s.stderr)
    console = [l for l in s.stderr.splitlines() if "CONSOLE" in l]
    check(not any(re.search(r"Uncaught|Error|error", l) for l in console),
          "console errors:\n" + "\n".join(console))
    check(os.path.exists(shot) and os.path.getsize(shot) > 10000, "no screenshot")
    shutil.copy(html_path, os.path.join(args.artifacts, "envelope-report.html"))
    print(f"screenshot: {shot}")


def mode_compare(args, tmp):
    out = os.path.join(tmp, "cmp")
    r = quick_run(args, out, ["--ceiling-seconds", "0.01", "--workloads", "minilm,mbv2.b1"])
    check(r.returncode == 0, f"--quick exited {r.returncode}")
    a = os.path.join(out, "envelope.json")
    doc = json.load(open(a))
    timed = [x for x in doc["results"] if x["outcome"] == "ok" and x["backend"] == "cpu"]
    check(len(timed) >= 2, "too few cpu results")
    faster, slower = timed[0], timed[1]
    faster["time_s"]["best"] /= 4
    slower["time_s"]["best"] *= 3
    b = os.path.join(tmp, "b.json")
    json.dump(doc, open(b, "w"))
    c = run([args.tool, "compare", a, b])
    save(args, "compare.stdout.txt", c.stdout + c.stderr)
    check(c.returncode == 0, f"compare exited {c.returncode}: {c.stderr}")
    check(re.search(rf"{re.escape(faster['workload'])}\s+cpu .*4\.00x faster", c.stdout), "the 4x gain")
    check(re.search(rf"{re.escape(slower['workload'])}\s+cpu .*3\.00x slower", c.stdout), "the 3x loss")
    check(re.search(r"1 faster, 1 slower, \d+ unchanged", c.stdout), "the counts")
    same = run([args.tool, "compare", a, a])
    check(same.returncode == 0 and " 0 faster, 0 slower" in " " + same.stdout.splitlines()[-1], "a vs a")
    check(run([args.tool, "compare", a, b, "--fail-on-slowdown", "1.5"]).returncode == 4, "fail-on-slowdown")
    check(run([args.tool, "compare", a, os.path.join(tmp, "missing.json")]).returncode == 3, "missing file")
    check(run([args.tool, "compare", a]).returncode == 2, "one file")


def interrupt(args, out, extra, wait_for, delay):
    cmd = [args.tool, "--quick", "--out-dir", out, "--board-name", "envelope_test_board"] + extra
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    deadline = time.time() + 300
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen.append(line)
        if wait_for in line:
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            break
    stdout, stderr = p.communicate(timeout=300)
    save(args, os.path.basename(out) + ".stdout.txt", stdout)
    save(args, os.path.basename(out) + ".stderr.txt", "".join(seen) + stderr)
    return p.returncode, stdout


def mode_interrupt(args, tmp):
    # While the workloads run: long timed runs give the signal time to land mid-way.
    out = os.path.join(tmp, "int-work")
    # Each result takes 0.3 s of timed runs (--max-reps lifted), so the run lasts well beyond the
    # moment the signal lands, whatever the machine's load.
    rc, stdout = interrupt(args, out, ["--ceiling-seconds", "0.01", "--target-seconds", "0.3",
                                       "--max-reps", "100000"], "[ 3/", 0.2)
    check(rc == 130, f"exit {rc}, not 130\n{stdout[-2000:]}")
    check("Interrupted" in stdout, "the verdict does not say Interrupted")
    path = os.path.join(out, "envelope.json")
    require_valid(args, path)
    doc = json.load(open(path))
    check(doc["run"]["interrupted"] and not doc["run"]["complete"], "run flags")
    check(doc["results"], "no results kept")
    check(any(not w["ran"] for w in doc["workloads"]), "every workload ran despite the signal")
    check(os.path.exists(os.path.join(out, "envelope.html")), "no HTML")
    check(os.path.exists(os.path.join(out, "envelope_test_board.hpp")), "no header")

    # While the ceilings run: no results, no header (the ceilings are incomplete), valid JSON.
    out = os.path.join(tmp, "int-ceil")
    rc, stdout = interrupt(args, out, ["--ceiling-seconds", "3"], "measuring", 0.5)
    check(rc == 130, f"exit {rc}, not 130")
    path = os.path.join(out, "envelope.json")
    require_valid(args, path)
    doc = json.load(open(path))
    check(doc["run"]["interrupted"] and doc["results"] == [], "results after a stop in the ceilings")
    check(doc["outputs"]["header"] == "", "a header claimed from incomplete ceilings")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["quick", "wrong-result", "header", "html", "compare", "interrupt"])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--route-check", dest="route_check")
    ap.add_argument("--lib", help="libkeel_envelope.a")
    # One flag per option, written --cflag=-I... (argparse would read a bare -I... as an option).
    ap.add_argument("--cxx", action="append", default=[], help="the compiler command, one word each")
    ap.add_argument("--cflag", dest="cflags", action="append", default=[])
    ap.add_argument("--lib-flag", dest="libs", action="append", default=[])
    args = ap.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    modes = {"quick": mode_quick, "wrong-result": mode_wrong_result, "header": mode_header,
             "html": mode_html, "compare": mode_compare, "interrupt": mode_interrupt}
    with tempfile.TemporaryDirectory(prefix="keel-envelope-test-") as tmp:
        try:
            rc = modes[args.mode](args, tmp)
        except Failure as f:
            print(f"FAIL ({args.mode}): {f}")
            return 1
        except subprocess.TimeoutExpired as t:
            print(f"FAIL ({args.mode}): timed out: {t.cmd}")
            return 1
    if rc == SKIP:
        return SKIP
    print(f"ok: {args.mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
