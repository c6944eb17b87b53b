"""Measurement helpers for bench/run (standard library only).

    measure.py freeport                      a free loopback port
    measure.py cpu PID                       utime+stime of PID and its descendants
                                             (nginx's workers), in seconds
    measure.py mem PID                       {"rss_kb":..,"hwm_kb":..} of PID
    measure.py ready URL RUNS IDLE_SECS OUT -- CMD...
        starts CMD RUNS times (each on a fresh copy of nothing: CMD must use a
        fresh database itself, see bench/run), times process start to the
        first 200 from URL, polling every millisecond; after the last run,
        waits IDLE_SECS and records the idle resident memory; writes JSON to OUT
    measure.py report RAW_DIR OUT_JSON OUT_MD
        turns the raw results bench/run wrote into the report
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime of PID and of every living descendant (nginx's workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                # Field 4 (ppid) is at 1 after the command.
                children.setdefault(int(stat_fields(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = stat_fields(current)
        except OSError:
            continue
        # Fields 14 and 15 (utime, stime) are at 11 and 12 after the command.
        total += int(fields[11]) + int(fields[12])
        todo += children.get(current, [])
    return total / TICKS


def memory_kb(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["hwm_kb"] = int(line.split()[1])
    return out


def ready(url: str, runs: int, idle_secs: float, out: str, cmd: list) -> None:
    times = []
    idle = None
    for run in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = None
        while time.monotonic() - start < 30:
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        elapsed = (time.monotonic() - start) * 1000
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.001)
        if elapsed is None:
            proc.kill()
            sys.exit(f"{cmd[0]} did not become ready (exit {proc.poll()})")
        times.append(elapsed)
        if run == runs - 1:
            time.sleep(idle_secs)
            idle = memory_kb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with open(out, "w") as f:
        json.dump({"ready_ms": times, "idle": idle}, f)


def lines(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load(path: str):
    with open(path) as f:
        return json.load(f)


READ_SCENARIOS = [
    ("direct", "direct upstream: simulator `GET /api/public/v1/jobs/{id}`, its own token"),
    ("front-one", "Airlock front `GET /api/public/v1/jobs/{id}`, one token"),
    ("front-pool", "Airlock front `GET /api/public/v1/jobs/{id}`, 1,000 tokens"),
    ("front-running", "Airlock front `GET /api/public/v1/jobs/{id}` of a running job (forwarded), one token"),
    ("v1-one", "Airlock `GET /v1/jobs/{id}`, one token"),
    ("v1-pool", "Airlock `GET /v1/jobs/{id}`, 1,000 tokens"),
    ("v1-running", "Airlock `GET /v1/jobs/{id}` of a running job, one token"),
]

# The forwarded read against a fake Airbyte that answers in microseconds
# (nginx), through each gateway: what a JWT check in front of Airbyte costs
# elsewhere, next to Airlock's front.
REFERENCE_SCENARIOS = [
    ("fake-direct", "fake Airbyte (nginx, a fixed job) directly", "—"),
    ("fake-nginx", "bare nginx reverse proxy (keep-alive upstream; no identity, no policy)", "nginx"),
    ("fake-haproxy", "HAProxy 2.6 verifying the RS256 JWT on every request, role checked, token swapped", "HAProxy"),
    ("fake-front", "Airlock front, running job forwarded (one token)", "Airlock"),
    ("fake-front-traced", "the same with traces on: every request sampled, OTLP/HTTP to a local sink", "Airlock"),
    ("fake-front-each", "the same with its request log written a line at a time (`request_log_flush_ms = 0`)", "Airlock"),
]


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(raw: str, out_json: str, out_md: str) -> None:
    meta = load(f"{raw}/meta.json")
    result = {"meta": meta, "reads": {}, "triggers": {}, "tracking": {}, "memory": {}, "targets": []}
    md = [
        "# Airlock benchmark results",
        "",
        f"Run {meta['date']} on `{meta['commit']}`{' (uncommitted changes)' if meta['dirty'] else ''}; "
        f"{meta['nproc']} CPUs ({meta['cpu']}), {meta['mem_gb']} GB RAM; "
        f"load tool `{meta['wrk']}` with {meta['threads']} threads, {meta['connections']} connections, "
        f"{meta['rounds']} interleaved rounds of {meta['duration']} per scenario. "
        f"Token issuer: RS256 (2048-bit) served as JWKS by a local HTTP server. "
        f"Flags: `{meta['flags'] or '(none)'}`. Load average when the run began: {meta.get('loadavg_at_start', '?')} "
        "(the machine is shared; everything, load tool included, runs on the same CPUs).",
        "",
    ]

    # 1. Reads.
    if os.path.exists(f"{raw}/reads-direct.jsonl"):
        md += reads_section(raw, result)
    if os.path.exists(f"{raw}/reads-fake-direct.jsonl"):
        md += reference_section(raw, result)
    md += triggers_section(raw, result)
    md += flood_section(raw, result)
    if os.path.exists(f"{raw}/tracking.json"):
        md += tracking_section(raw, result)
    if os.path.exists(f"{raw}/ready.json"):
        md += startup_section(raw, result)
    md += targets_section(result)
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
    with open(out_md, "w") as f:
        f.write("\n".join(md))


def reads_section(raw: str, result: dict) -> list:
    md = [
        "## Authenticated reads",
        "",
        "| scenario | req/s | vs direct | p50 ms | p99 ms | non-200 | Airlock CPU µs/req | simulator CPU µs/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    direct_rps = None
    for key, label in READ_SCENARIOS:
        rounds = lines(f"{raw}/reads-{key}.jsonl")
        requests = sum(r["requests"] for r in rounds)
        seconds = sum(r["duration_us"] for r in rounds) / 1e6
        rps = requests / seconds
        p50 = statistics.median(r["p50_us"] for r in rounds) / 1000
        p99 = max(r["p99_us"] for r in rounds) / 1000
        non200 = sum(r["non200"] + r["socket_errors"] for r in rounds)
        cpu_airlock = sum(r.get("cpu_airlock", 0) for r in rounds) / requests * 1e6
        cpu_sim = sum(r.get("cpu_sim", 0) for r in rounds) / requests * 1e6
        if key == "direct":
            direct_rps = rps
        ratio = rps / direct_rps
        result["reads"][key] = {
            "label": label,
            "requests": requests,
            "rps": round(rps),
            "ratio_to_direct": round(ratio, 3),
            "p50_ms": p50,
            "p99_ms": p99,
            "non200_or_errors": non200,
            "airlock_cpu_us_per_req": round(cpu_airlock, 1),
            "sim_cpu_us_per_req": round(cpu_sim, 1),
            "rounds": rounds,
        }
        md.append(
            f"| {label} | {rps:,.0f} | {ratio:.0%} | {p50:.2f} | {p99:.2f} | {non200} | "
            f"{'—' if key == 'direct' else f'{cpu_airlock:.0f}'} | {cpu_sim:.0f} |"
        )
    mem = load(f"{raw}/reads-mem.json")
    result["reads"]["peak_rss_kb"] = mem
    md += [
        "",
        f"Peak resident memory (VmHWM) after the read rounds: Airlock {mem['airlock']['hwm_kb'] / 1024:.1f} MB, "
        f"simulator {mem['sim']['hwm_kb'] / 1024:.1f} MB. p50 is the median of the rounds, p99 the worst round.",
        "",
    ]
    return md


def reference_section(raw: str, result: dict) -> list:
    md = [
        "## The forwarded read next to other gateways",
        "",
        "Every row reads the same job from the same fake Airbyte (nginx answering "
        "`GET /api/public/v1/jobs/{id}` with a fixed running job); the gateways forward it.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | non-200 | gateway | gateway CPU µs/req | fake CPU µs/req |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    result["reference"] = {}
    for key, label, gateway in REFERENCE_SCENARIOS:
        rounds = lines(f"{raw}/reads-{key}.jsonl")
        requests = sum(r["requests"] for r in rounds)
        rps = requests / (sum(r["duration_us"] for r in rounds) / 1e6)
        p50 = statistics.median(r["p50_us"] for r in rounds) / 1000
        p99 = max(r["p99_us"] for r in rounds) / 1000
        non200 = sum(r["non200"] + r["socket_errors"] for r in rounds)
        cpu_gateway = sum(r.get("cpu_gateway", 0) for r in rounds) / requests * 1e6
        cpu_fake = sum(r.get("cpu_fake", 0) for r in rounds) / requests * 1e6
        result["reference"][key] = {
            "label": label, "rps": round(rps), "p50_ms": p50, "p99_ms": p99,
            "non200_or_errors": non200, "gateway_cpu_us_per_req": round(cpu_gateway, 1),
            "fake_cpu_us_per_req": round(cpu_fake, 1), "rounds": rounds,
        }
        shown = "—" if gateway == "—" else f"{cpu_gateway:.1f}"
        md.append(
            f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {non200} | {gateway} | {shown} | {cpu_fake:.1f} |"
        )
    md.append("")
    spans = f"{raw}/reads-traced-spans.json"
    if os.path.exists(spans):
        with open(spans) as f:
            counts = json.load(f)
        result["reference"]["traced_spans"] = counts
        md.append(
            "The traced front's spans (`airlock_trace_spans_total`): "
            + ", ".join(f"{outcome} {count:,.0f}" for outcome, count in sorted(counts.items()))
            + "."
        )
        md.append("")
    return md


def triggers_section(raw: str, result: dict) -> list:
    if not any(os.path.exists(f"{raw}/triggers-{b}.json") for b in ("sqlite", "postgres")):
        return []
    md = [
        "## Accepted triggers (durable, 202 after commit)",
        "",
        "| storage | jobs queued | accepted/s | p50 ms | p99 ms | refused (status) or timed out (> 2 s, wrk's limit) | Airbyte jobs started during the triggers | started/s in the next 10 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in ("sqlite", "postgres"):
        path = f"{raw}/triggers-{backend}.json"
        if not os.path.exists(path):
            continue
        t = load(path)
        w = t["wrk"]
        seconds = w["duration_us"] / 1e6
        rate = w["accepted"] / seconds
        t["accepted_per_s"] = round(rate)
        t["dispatch_during_per_s"] = round(t["dispatched_during"] / seconds, 1)
        result["triggers"][backend] = t
        refused = w["refused"] + w["socket_errors"]
        detail = ", ".join(f"{n} × {s}" for s, n in sorted(w.get("refused_by_status", {}).items()))
        if w["socket_errors"]:
            detail = ", ".join(filter(None, [detail, f"{w['socket_errors']} timed out"]))
        md.append(
            f"| {backend} | {w['accepted']:,} | {rate:,.0f} | {w['p50_us'] / 1000:.2f} | {w['p99_us'] / 1000:.2f} | "
            f"{refused}{f' ({detail})' if detail else ''} | {t['dispatched_during']:,} ({t['dispatch_during_per_s']:,}/s) | "
            f"{t['dispatched_after'] / t['after_secs']:,.1f} |"
        )
    md += [""]
    return md


def tracking_section(raw: str, result: dict) -> list:
    tracking = load(f"{raw}/tracking.json")
    result["tracking"] = tracking
    md = [
        "## Airbyte calls per poll interval while tracking running jobs",
        "",
        f"Poll interval {tracking['poll_interval_secs']} s, measured over {tracking['window_secs']} s "
        f"(= {tracking['window_secs'] // tracking['poll_interval_secs']} intervals, a whole cycle of eleven "
        "incremental passes and one full pass); jobs spread over 2 workspaces.",
        "",
        "| running jobs tracked | tracker calls (`GET /jobs` lists) per interval | one GET per job | ratio | catalog `GET /connections` per interval (refresh every 30 s) | Airlock RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step in tracking["steps"]:
        intervals = tracking["window_secs"] / tracking["poll_interval_secs"]
        per = step["list_calls"] / intervals
        other = step["get_job_calls"] / intervals
        per += other
        step["calls_per_interval"] = round(per, 2)
        step["catalog_calls_per_interval"] = round(step["connection_calls"] / intervals, 2)
        step["ratio"] = per / step["jobs"]
        md.append(
            f"| {step['jobs']:,} | {per:.1f} | {step['jobs']:,} | 1/{step['jobs'] / per:,.0f} | "
            f"{step['catalog_calls_per_interval']:.1f} | {step['rss_kb'] / 1024:.1f} |"
        )
    md += [""]
    return md


def startup_section(raw: str, result: dict) -> list:
    r = load(f"{raw}/ready.json")
    result["memory"] = {
        "ready_ms": r["ready_ms"],
        "ready_ms_median": statistics.median(r["ready_ms"]),
        "idle_rss_kb": r["idle"]["rss_kb"],
    }
    m = result["memory"]
    tracked = result["tracking"]["steps"][-1] if result["tracking"] else None
    if tracked:
        m["tracked_10k_rss_kb"] = tracked["rss_kb"]
        m["tracked_10k_jobs"] = tracked["jobs"]
    md = [
        "## Memory and start-up (SQLite)",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| process start to `/readyz` 200, median of {len(r['ready_ms'])} | {m['ready_ms_median']:.0f} ms "
        f"(runs: {', '.join(f'{x:.0f}' for x in r['ready_ms'])}) |",
        f"| resident memory idle | {m['idle_rss_kb'] / 1024:.1f} MB |",
    ]
    if tracked:
        md.append(
            f"| resident memory tracking {m['tracked_10k_jobs']:,} running jobs | {m['tracked_10k_rss_kb'] / 1024:.1f} MB |"
        )
    md.append("")
    return md


def flood_section(raw: str, result: dict) -> list:
    """Triggers' latency, quiet and under a flood of unauthenticated requests."""
    if not os.path.exists(f"{raw}/flood-triggers-quiet.jsonl"):
        return []
    quiet = lines(f"{raw}/flood-triggers-quiet.jsonl")
    loud = lines(f"{raw}/flood-triggers-loud.jsonl")
    attack = lines(f"{raw}/flood-attack.jsonl")
    md = [
        "## Triggers under a flood of unauthenticated requests (SQLite)",
        "",
        "| round | quiet: triggers/s | quiet p99 ms | flood: requests/s (statuses) | under the flood: triggers/s | p99 ms | p99 ratio |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    ratios = []
    for i, (q, l, a) in enumerate(zip(quiet, loud, attack), start=1):
        ratio = l["p99_us"] / q["p99_us"]
        ratios.append(ratio)
        statuses = ", ".join(f"{n:,} × {s}" for s, n in sorted(a["by_status"].items()))
        md.append(
            f"| {i} | {q['accepted'] / (q['duration_us'] / 1e6):,.0f} | {q['p99_us'] / 1000:.2f} | "
            f"{a['requests'] / (a['duration_us'] / 1e6):,.0f} ({statuses}) | "
            f"{l['accepted'] / (l['duration_us'] / 1e6):,.0f} | {l['p99_us'] / 1000:.2f} | {ratio:.2f} |"
        )
    result["flood"] = {"quiet": quiet, "loud": loud, "attack": attack, "worst_p99_ratio": max(ratios)}
    md += [""]
    return md


def targets_section(result: dict) -> list:
    """The issue's targets, for the parts of the run that were measured."""
    targets = []
    reads = result["reads"]
    if reads:
        def ratio(key: str, goal: float, label: str) -> None:
            value = reads[key]["ratio_to_direct"]
            targets.append((f"{label} ≥ {goal:.0%} of direct", f"{value:.0%}", value >= goal))

        def p99(key: str, label: str) -> None:
            value = reads[key]["p99_ms"]
            targets.append((f"{label} p99 ≤ 2 ms at 50 connections", f"{value:.2f} ms", value <= 2.0))

        ratio("front-one", 0.40, "front of a finished job (one token)")
        p99("front-one", "front of a finished job (one token)")
        ratio("front-pool", 0.25, "front of a finished job (1,000 tokens)")
        ratio("front-running", 0.40, "front of a running job, forwarded to Airbyte (one token)")
        p99("front-running", "front of a running job, forwarded to Airbyte (one token)")
        ratio("v1-one", 0.40, "`/v1/jobs/{id}` of a finished job (one token)")
        p99("v1-one", "`/v1/jobs/{id}` of a finished job (one token)")
        ratio("v1-pool", 0.25, "`/v1/jobs/{id}` of a finished job (1,000 tokens)")
        ratio("v1-running", 0.40, "`/v1/jobs/{id}` of a running job (one token)")
        p99("v1-running", "`/v1/jobs/{id}` of a running job (one token)")
    reference = result.get("reference")
    if reference:
        front, haproxy = reference["fake-front"], reference["fake-haproxy"]
        label = "front's forwarded read, fake Airbyte (one token)"
        cpu = front["gateway_cpu_us_per_req"]
        targets.append((f"{label}: Airlock CPU ≤ 25 µs/req", f"{cpu:.1f} µs", cpu <= 25))
        targets.append((f"{label}: p99 ≤ 2 ms at 50 connections", f"{front['p99_ms']:.2f} ms", front["p99_ms"] <= 2.0))
        times = front["rps"] / haproxy["rps"]
        targets.append((f"{label}: ≥ 1.5× HAProxy verifying the JWT", f"{times:.2f}×", times >= 1.5))
    for backend, goal in (("sqlite", 2000), ("postgres", 1000)):
        if backend in result["triggers"]:
            rate = result["triggers"][backend]["accepted_per_s"]
            queued = result["triggers"][backend]["wrk"]["accepted"]
            targets.append((f"≥ {goal:,} accepted triggers/s on {backend} ({queued:,} jobs)", f"{rate:,}/s", rate >= goal))
    if result["tracking"]:
        last = result["tracking"]["steps"][-1]
        targets.append((
            f"Airbyte calls per poll interval at {last['jobs']:,} jobs ≤ 1/50 of one GET per job",
            f"{last['calls_per_interval']:.1f} calls (1/{last['jobs'] / last['calls_per_interval']:,.0f})",
            last["calls_per_interval"] <= last["jobs"] / 50,
        ))
    if result.get("flood"):
        worst = result["flood"]["worst_p99_ratio"]
        targets.append(("triggers' p99 under 10,000 unauthenticated requests/s ≤ 2× quiet", f"{worst:.2f}×", worst <= 2.0))
    m = result["memory"]
    if m:
        targets.append(("idle RSS ≤ 30 MB", f"{m['idle_rss_kb'] / 1024:.1f} MB", m["idle_rss_kb"] <= 30 * 1024))
        if "tracked_10k_rss_kb" in m:
            targets.append((
                f"RSS ≤ 150 MB with {m['tracked_10k_jobs']:,} tracked jobs",
                f"{m['tracked_10k_rss_kb'] / 1024:.1f} MB",
                m["tracked_10k_rss_kb"] <= 150 * 1024,
            ))
        targets.append(("ready ≤ 200 ms after start (SQLite)", f"{m['ready_ms_median']:.0f} ms", m["ready_ms_median"] <= 200))
    md = ["## Targets", "", "| target | measured | |", "| --- | ---: | --- |"]
    for name, value, ok in targets:
        result["targets"].append({"target": name, "measured": value, "met": ok})
        md.append(f"| {name} | {value} | {verdict(ok)} |")
    md.append("")
    return md


def sink(port: int) -> None:
    """An OTLP/HTTP collector that takes every export and keeps nothing."""
    import http.server

    class Sink(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def main() -> None:
    command = sys.argv[1]
    if command == "freeport":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1])
    elif command == "cpu":
        print(f"{cpu_seconds(int(sys.argv[2])):.2f}")
    elif command == "mem":
        print(json.dumps(memory_kb(int(sys.argv[2]))))
    elif command == "ready":
        url, runs, idle, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        ready(url, runs, idle, out, sys.argv[sys.argv.index("--") + 1 :])
    elif command == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "sink":
        sink(int(sys.argv[2]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
