#!/usr/bin/env python3
"""Turns the bench VM's control-port log into results.json and a table.

Input lines (from selftests/bench.sh in the guest):
  BENCH-RUN id=N round=R workload=W side=A|B driver=D bdf=B disk=X busy=T total=T ios=N
  BENCH-FIO N <one line of fio's JSON output for run N>
  BENCH-VERIFY driver=D bdf=B disk=X bytes=N ok
Per run: IOPS, completion-latency (clat) and total-latency (lat: submission + completion)
percentiles from fio; guest CPU per I/O from the /proc/stat
busy ticks (user, nice, system, irq, softirq, steal; USER_HZ 100) over the disk's completed I/Os
in the same window. Per workload and driver: the median over rounds (TCG timing is noisy; every
round is kept in the JSON), and the B/A ratios of those medians.
Usage: bench_report.py RAW RESULTS_JSON
"""
import json
import statistics
import sys

USER_HZ = 100


def us(percentiles, key):
    return percentiles[key] / 1000 if key in percentiles else None


def kv(words):
    return dict(w.split("=", 1) for w in words if "=" in w)


def parse(path):
    runs, fio_text, verify = {}, {}, []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("BENCH-RUN "):
                r = kv(line.split()[1:])
                runs[r["id"]] = r
            elif line.startswith("BENCH-FIO "):
                _, rid, rest = (line.split(" ", 2) + [""])[:3]
                fio_text.setdefault(rid, []).append(rest)
            elif line.startswith("BENCH-VERIFY "):
                verify.append(kv(line.split()[1:]))
    out = []
    for rid, r in sorted(runs.items(), key=lambda x: int(x[0])):
        text = "\n".join(fio_text.get(rid, []))
        try:
            fio = json.loads(text[text.index("{"):])
        except ValueError as e:
            raise SystemExit(f"bench_report: run {rid}: fio JSON unreadable: {e}")
        job = fio["jobs"][0]
        ddir = max(("read", "write"), key=lambda d: job[d]["total_ios"])
        d = job[ddir]
        pct = d["clat_ns"].get("percentile", {})
        lpct = d["lat_ns"].get("percentile", {})
        ios = int(r["ios"])
        busy = int(r["busy"])
        out.append({
            "id": int(rid), "round": int(r["round"]), "workload": r["workload"],
            "side": r["side"], "driver": r["driver"], "bdf": r["bdf"], "disk": r["disk"], "ddir": ddir,
            "iops": d["iops"], "bw_kib_s": d["bw"],
            "clat_p50_us": us(pct, "50.000000"), "clat_p99_us": us(pct, "99.000000"),
            "clat_mean_us": d["clat_ns"]["mean"] / 1000,
            "lat_p50_us": us(lpct, "50.000000"), "lat_p99_us": us(lpct, "99.000000"),
            "window_ios": ios, "cpu_busy_ticks": busy, "cpu_total_ticks": int(r["total"]),
            "cpu_us_per_io": busy * (1e6 / USER_HZ) / ios if ios else None,
            "fio_errors": job.get("error", 0),
        })
    return out, verify


def summarize(runs):
    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    a = next(r["driver"] for r in runs if r["side"] == "A")
    b = next(r["driver"] for r in runs if r["side"] == "B")
    metrics = ["iops", "clat_p50_us", "clat_p99_us", "lat_p50_us", "lat_p99_us", "cpu_us_per_io"]
    summary = []
    for w in workloads:
        row = {"workload": w}
        for side, drv in (("A", a), ("B", b)):
            sel = [r for r in runs if r["workload"] == w and r["side"] == side]
            row[side] = {"driver": drv, "rounds": len(sel)}
            for m in metrics:
                vals = [r[m] for r in sel if r[m] is not None]
                row[side][m] = statistics.median(vals) if vals else None
                row[side][m + "_per_round"] = vals
        row["ratio_b_over_a"] = {
            m: row["B"][m] / row["A"][m] if row["A"][m] and row["B"][m] is not None else None
            for m in metrics}
        summary.append(row)
    return summary


def main():
    raw, dest = sys.argv[1], sys.argv[2]
    runs, verify = parse(raw)
    if not runs:
        raise SystemExit(f"bench_report: no runs in {raw}")
    summary = summarize(runs)
    with open(dest, "w") as f:
        json.dump({"verify": verify, "summary": summary, "runs": runs}, f, indent=2)
        f.write("\n")
    a = summary[0]["A"]["driver"]
    b = summary[0]["B"]["driver"]
    bname = b if a != b else b + " (as B)"
    print(f"\nA = {a}, B = {bname}; median of {summary[0]['A']['rounds']} rounds; clat: completion "
          "latency, lat: submission + completion; CPU: guest CPU time per I/O incl. irq/softirq")
    cols = [("iops", "IOPS", 0), ("clat_p50_us", "clat p50", 1), ("clat_p99_us", "clat p99", 1),
            ("lat_p50_us", "lat p50", 1), ("lat_p99_us", "lat p99", 1), ("cpu_us_per_io", "CPU/IO", 1)]
    fmt = lambda v, p: "-" if v is None else f"{v:.{p}f}"
    print(f"{'workload':<22} {'driver':<16}" + "".join(f" {c[1]:>9}" for c in cols))
    print(f"{'':<22} {'':<16}" + "".join(f" {u:>9}" for u in ["", "us", "us", "us", "us", "us"]))
    for row in summary:
        for side, name in (("A", a), ("B", bname)):
            print(f"{row['workload']:<22} {name:<16}" + "".join(f" {fmt(row[side][m], p):>9}" for m, _, p in cols))
        q = row["ratio_b_over_a"]
        print(f"{'':<22} {'B/A':<16}" + "".join(f" {fmt(q[m], 2):>9}" for m, _, _ in cols))
    errs = [r for r in runs if r["fio_errors"]]
    if errs:
        print(f"fio reported errors in runs {[r['id'] for r in errs]}")
    print(f"\nresults: {dest}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
