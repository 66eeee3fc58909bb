#!/usr/bin/env python3
"""scripts/bench_extract.py — the extract part of scripts/bench: PostgreSQL's CPU, and the summary.

  pgcpu DB OUT          samples, every 20 ms until SIGTERM, the CPU time (utime + stime from
                        /proc/<pid>/stat) of every PostgreSQL backend connected to database DB, and
                        writes their total in seconds to OUT (OUT.ready appears once sampling runs).
                        A backend is a process named `postgres` whose title is
                        `postgres: [cluster: ]user DB host(port) …`; the last <= 20 ms of each backend
                        before it exits are not seen, so the figure errs low by that much per
                        connection. Needs PostgreSQL on this machine, its /proc readable.
  summary RESULTS OUT   the extract rows of the results (migrate's extract, psql's row_to_json COPY,
                        psql's binary COPY to /dev/null): rows/s, client and PostgreSQL CPU seconds per
                        million rows, and the extract targets; printed, and added as "extract" to OUT.

Standard library only.
"""
import json
import os
import signal
import sys
import time


def backend_db(pid):
    """The database of a settled backend title, '' for another settled postgres process, None when
    the process is not (yet) titled."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""
    if not title.startswith("postgres: "):
        return None  # a fresh fork still shows the postmaster's argv
    words = title.split()[1:]
    if words and words[0].endswith(":"):
        words = words[1:]  # cluster_name prefix, e.g. "15/main:"
    return words[1] if len(words) >= 3 else ""


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields, int(fields[11]) + int(fields[12])


def pgcpu(db, out):
    hz = os.sysconf("SC_CLK_TCK")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    known = {}   # pid -> True (a backend of db) / False (anything else)
    last = {}    # pid -> last ticks seen
    first = True
    while True:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if known.get(pid) is False:
                continue
            if pid not in known:
                try:
                    with open(f"/proc/{pid}/comm", "rb") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                if comm != b"postgres":
                    known[pid] = False
                    continue
                d = backend_db(pid)
                if d is None:
                    continue  # look again next time
                known[pid] = d == db
                if not known[pid]:
                    continue
            t = ticks(pid)
            if t is not None:
                last[pid] = t[1]
        if first:
            # backends already connected count from now on
            base = dict(last)
            open(out + ".ready", "w").close()
            first = False
        if stop:
            break
        time.sleep(0.02)
    total = sum(v - base.get(p, 0) for p, v in last.items())
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{total / hz:.2f}\n")
    os.replace(tmp, out)


def summary(results, out):
    recs = [json.loads(l) for l in open(results, encoding="utf-8") if l.strip()]
    by = {(r["size"], r["kind"], r["name"]): r for r in recs}
    rows = [("migrate --phase extract", by.get(("main", "migrate", "extract"))),
            ("psql row_to_json COPY", by.get(("main", "baseline", "psql-copy-json"))),
            ("psql binary COPY to /dev/null", by.get(("main", "baseline", "psql-copy-binary")))]
    table = []
    for name, r in rows:
        if not r:
            continue
        items = r.get("items") or 0
        pg = r.get("serverCpuSeconds")
        table.append({"name": name, "rc": r["rc"], "rows": items, "wallSeconds": r["wallSeconds"],
                      "rowsPerSecond": r.get("itemsPerSecond"),
                      "clientCpuSecondsPerMillion": r.get("cpuSecondsPerMillion"),
                      "postgresCpuSeconds": pg,
                      "postgresCpuSecondsPerMillion": round(pg / items * 1e6, 2) if pg is not None and items else None,
                      "peakRssMb": r["peakRssMb"]})
    if not table:
        return
    m = next((t for t in table if t["name"].startswith("migrate")), None)
    j = next((t for t in table if "row_to_json" in t["name"]), None)
    b = next((t for t in table if "binary" in t["name"]), None)
    targets = []

    def ratio(x, y, key):
        if not x or not y or x["rc"] or y["rc"] or not x.get(key) or not y.get(key):
            return None
        return round(x[key] / y[key], 2)

    for what, r, goal, better in [
            ("extract rows/s vs psql row_to_json COPY", ratio(m, j, "rowsPerSecond"), 1.5, "high"),
            ("extract rows/s vs PostgreSQL's binary COPY to /dev/null", ratio(m, b, "rowsPerSecond"), 0.6, "high"),
            ("PostgreSQL CPU per row, extract vs row_to_json COPY",
             ratio(m, j, "postgresCpuSecondsPerMillion"), 0.5, "low"),
            ("extract peak RSS MB", m["peakRssMb"] if m else None, 64, "low")]:
        met = None if r is None else (r >= goal if better == "high" else r <= goal)
        targets.append({"target": what, "measured": r, "goal": (">= " if better == "high" else "<= ") + str(goal),
                        "met": met})
    print()
    print("extract beside PostgreSQL (PostgreSQL CPU: its backends' /proc times; a shared machine: noisy)")
    head = ["", "rows", "wall s", "rows/s", "client CPU s/M", "PostgreSQL CPU s/M", "RSS MB"]
    lines = [head] + [[t["name"], f"{t['rows']:,}", f"{t['wallSeconds']:.2f}",
                       f"{t['rowsPerSecond']:,.0f}" if t["rowsPerSecond"] else "-",
                       f"{t['clientCpuSecondsPerMillion']:.2f}" if t["clientCpuSecondsPerMillion"] is not None else "-",
                       f"{t['postgresCpuSecondsPerMillion']:.2f}" if t["postgresCpuSecondsPerMillion"] is not None else "-",
                       f"{t['peakRssMb']:.1f}"] for t in table]
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for i, r in enumerate(lines):
        print("  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for t in targets:
        mark = "-" if t["met"] is None else ("met" if t["met"] else "MISSED")
        print(f"  {t['target']}: {t['measured'] if t['measured'] is not None else '-'} (goal {t['goal']}) {mark}")
    try:
        with open(out, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return
    doc["extract"] = {"rows": table, "targets": targets}
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, out)


def main(argv):
    if len(argv) == 3 and argv[0] == "pgcpu":
        pgcpu(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "summary":
        summary(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
