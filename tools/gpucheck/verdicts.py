"""Whether a stage checked what it promised, read from its own outputs (not
from its exit status alone): a stage that checked nothing is a failure.

Each verdict takes the stage's Outcome and the results folder and returns
(status, detail): "ok" (all it promised), "partial" (it stopped itself at its
deadline with results, in order of value, that are worth having) or "failed".
A stage cut by its hard limit never reads ok. Pure functions of files: the
tests feed them logs and XML written by hand.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import xml.etree.ElementTree as ET

# The skip reason every test that needs a GPU gives where none is usable
# (tests/_helpers.py NO_GPU): one skipped for that on the GPU machine fails the stage.
NO_GPU_TAG = "[no GPU]"
# The reason the deadline plugin gives to tests it did not start.
DEADLINE_TAG = "[gpu-check deadline]"


@dataclasses.dataclass(frozen=True)
class Outcome:
    rc: int            # exit status (negative: killed by that signal)
    seconds: float
    limit: float
    cut: bool          # killed at its hard limit
    log: pathlib.Path


def _read(path) -> str:
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def _cut(o: Outcome):
    return ("failed", f"cut at its {o.limit:.0f} s limit (exit {o.rc}): it did not stop itself in "
                      "time") if o.cut else None


# ---------------------------------------------------------------- plain commands


def exit_status(o: Outcome, outdir):
    """Commands whose exit status is their verdict (preflight, build, plans)."""
    return _cut(o) or (("ok", "exit 0") if o.rc == 0 else ("failed", f"exit {o.rc}"))


# ---------------------------------------------------------------- pytest junit


def parse_junit(path):
    """Counts of a pytest junit XML: passed, failed, errors, skipped,
    skipped_no_gpu, skipped_deadline, interrupted, total, failures [names];
    None when missing or unreadable. A run stopped by a signal leaves the test
    it was in as an empty <testcase/>: counted as interrupted, not passed."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    c = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "skipped_no_gpu": 0,
         "skipped_deadline": 0, "interrupted": 0, "failures": []}
    for case in root.iter("testcase"):
        if not case.get("name"):
            c["interrupted"] += 1
            continue
        kids = {child.tag: child for child in case}
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if "error" in kids:
            c["errors"] += 1
            c["failures"].append(name + " (error)")
        elif "failure" in kids:
            c["failed"] += 1
            c["failures"].append(name)
        elif "skipped" in kids:
            c["skipped"] += 1
            why = kids["skipped"].get("message", "") + (kids["skipped"].text or "")
            c["skipped_no_gpu"] += NO_GPU_TAG in why
            c["skipped_deadline"] += DEADLINE_TAG in why
        else:
            c["passed"] += 1
    c["total"] = c["passed"] + c["failed"] + c["errors"] + c["skipped"]
    c["executed"] = c["passed"] + c["failed"] + c["errors"]
    return c


def cuda_tests(o: Outcome, outdir):
    """GPU run: tests executed > 0, none failed, none skipped for lack of a GPU."""
    t = parse_junit(pathlib.Path(outdir) / "pytest_cuda.xml")
    if t is None:
        return ("failed", f"no junit XML (exit {o.rc})")
    counts = (f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
              f"{t['skipped']} skipped")
    if t["executed"] == 0:
        return ("failed", f"no CUDA test ran ({counts}): nothing was checked")
    if t["skipped_no_gpu"]:
        return ("failed", f"{t['skipped_no_gpu']} skipped for lack of a GPU ({counts})")
    if t["failed"] or t["errors"] or t["interrupted"] or (o.rc not in (0, 5) and not o.cut):
        return ("failed", counts + (f", {t['interrupted']} interrupted" if t["interrupted"] else ""))
    if o.cut:
        return _cut(o)
    if t["skipped_deadline"]:
        return ("partial", f"{counts}; {t['skipped_deadline']} not started by the deadline")
    return ("ok", counts)


def cuda_tests_dry(o: Outcome, outdir):
    """Dry run (no GPU): the command and XML work, every test skipped as having
    no GPU, and the GPU verdict would call that a failure."""
    t = parse_junit(pathlib.Path(outdir) / "pytest_cuda.xml")
    if t is None or t["total"] == 0:
        return ("failed", "no junit XML or no tests in it")
    if t["skipped_no_gpu"] != t["total"]:
        return ("failed", f"{t['total'] - t['skipped_no_gpu']} of {t['total']} CUDA tests did not "
                          f"skip with the '{NO_GPU_TAG}' reason")
    gpu = cuda_tests(dataclasses.replace(o, rc=0, cut=False), outdir)
    if gpu[0] != "failed":
        return ("failed", f"the GPU verdict would read all-skipped as {gpu[0]!r}")
    return ("ok", f"{t['total']} CUDA tests collected and skipped (no GPU); on a GPU this "
                  "would fail: " + gpu[1])


# ---------------------------------------------------------------- compute-sanitizer


_ERR = re.compile(r"ERROR SUMMARY:\s*(\d+)\s+errors?")
_RACE = re.compile(r"RACECHECK SUMMARY:\s*(\d+)\s+hazards?\s+displayed\s*\((\d+)\s+errors?,"
                   r"\s*(\d+)\s+warnings?\)")
_CASES = re.compile(r"SANITIZE CASES:\s*(\d+) of (\d+) run, (\d+) wrong")
_COVER = re.compile(r"SANITIZE COVERAGE:\s*(\d+) of (\d+)")


def sanitizer_result(text: str) -> dict:
    """What a compute-sanitizer log reports: errors (None without a summary
    line: cut or crashed, never clean), warnings, cases run/total/wrong,
    coverage (families x passes x dtypes run of planned) and whether the
    cases stopped at their deadline."""
    race, errs = _RACE.findall(text), _ERR.findall(text)
    out = {"errors": None, "warnings": None, "complete": bool(race or errs)}
    if race:
        out["errors"] = sum(int(e) for _, e, _ in race)
        out["warnings"] = sum(int(w) for _, _, w in race)
    elif errs:
        out["errors"] = sum(int(e) for e in errs)
    m = _CASES.search(text)
    out["cases_run"], out["cases_total"], out["cases_wrong"] = (
        tuple(int(g) for g in m.groups()) if m else (None, None, None))
    m = _COVER.search(text)
    out["covered"], out["coverable"] = tuple(int(g) for g in m.groups()) if m else (None, None)
    out["stopped_by_deadline"] = "STOPPED BY DEADLINE" in text
    return out


def sanitizer(o: Outcome, outdir):
    """errors == 0 with a summary line, cases run > 0, none wrong; partial when
    the deadline stopped the cases before every family, pass and dtype ran."""
    r = sanitizer_result(_read(o.log))
    if o.cut:
        return _cut(o)
    if not r["complete"]:
        return ("failed", f"no sanitizer summary in the log (exit {o.rc})")
    if not r["cases_run"]:
        return ("failed", "0 cases ran under the sanitizer: nothing was checked")
    cases = f"{r['cases_run']} of {r['cases_total']} cases"
    errors = f"{r['errors']} errors" + (f" ({r['warnings']} warnings)" if r["warnings"] else "")
    if r["errors"] or r["cases_wrong"] or o.rc != 0:
        return ("failed", f"{errors}, {r['cases_wrong']} wrong, {cases} (exit {o.rc})")
    if r["covered"] is not None and r["covered"] < r["coverable"]:
        return ("partial", f"{errors}; {cases}, covering {r['covered']} of {r['coverable']} "
                           "family x pass x dtype (stopped by the deadline)")
    return ("ok", f"{errors}; {cases}" + (" (the larger shapes stopped by the deadline)"
                                           if r["stopped_by_deadline"] else ""))


# ---------------------------------------------------------------- layout probe


def layout_probe(o: Outcome, outdir):
    res = _json(pathlib.Path(outdir) / "layout_probe" / "compare.json")
    if o.cut:
        return _cut(o)
    if res is None:
        return ("failed", f"the probe did not run to a comparison (exit {o.rc}; see its log)")
    probes = res["probes"]
    total = sum(p["lines"] for p in probes.values())
    matched = sum(p["matched"] for p in probes.values())
    if res["ok"] and total:
        return ("ok", f"{matched} of {total} registers match the PTX ISA's layouts "
                      f"({len(probes)} probes)")
    bad = [f"{name} ({p['lines'] - p['matched']} differ)" for name, p in probes.items()
           if p["mismatches"]]
    return ("failed", f"{total - matched} of {total} registers differ: " + ", ".join(bad))


def layout_probe_dry(o: Outcome, outdir):
    res = _json(pathlib.Path(outdir) / "layout_probe" / "dry.json")
    if o.cut:
        return _cut(o)
    if res is None or o.rc != 0:
        return ("failed", f"exit {o.rc}" + (": " + "; ".join(res["problems"]) if res else ""))
    return ("ok", "; ".join(res["checked"]))


# ---------------------------------------------------------------- timing tables, benchmarks


def conv_cells(o: Outcome, outdir, part):
    """Every planned cell of the part timed and checked = ok; stopped by its
    deadline with cells done = partial; a wrong output or none done = failed."""
    meta = _json(pathlib.Path(outdir) / f"conv_cells_{part}.json")
    if o.cut:
        return _cut(o)
    if meta is None:
        return ("failed", f"no conv_cells_{part}.json (exit {o.rc})")
    done, planned = meta["done"], meta["planned"]
    detail = f"{done} of {planned} cells" + "".join(f"; {k}" for k in meta.get("notes", []))
    if meta["wrong"]:
        return ("failed", f"{len(meta['wrong'])} WRONG: " + ", ".join(meta["wrong"][:5])
                + f"; {detail}")
    if o.rc != 0:
        return ("failed", f"exit {o.rc}; {detail}")
    if done == 0:
        return ("failed", "no cell was timed: nothing was checked")
    return ("ok" if done == planned else "partial", detail)


def bench(o: Outcome, outdir):
    """The first benchmark stage complete, no row failed = ok (later stages
    run as far as the budget goes, most valuable first)."""
    meta = _json(pathlib.Path(outdir) / "bench" / "stages.json")
    if o.cut:
        return _cut(o)
    if meta is None or not meta.get("stages"):
        return ("failed", f"no benchmark stage ran (exit {o.rc})")
    rows = sum(s["rows"] for s in meta["stages"].values())
    done = [n for n, s in meta["stages"].items() if s["complete"]]
    failed = [n for n, s in meta["stages"].items() if s["rc"] not in (0, 5)]
    detail = (f"{rows} rows in {len(meta['stages'])} of {meta['planned']} stages; complete: "
              + (", ".join(done) or "none"))
    if failed:
        return ("failed", f"rows failed in {', '.join(failed)}; {detail}")
    if not rows:
        return ("failed", "no benchmark row ran")
    first = meta["order"][0]
    return ("ok" if first in done else "partial", detail)
