#!/usr/bin/env python3
# Before/after of two builds of our server on the cache-off path, side by side in one run:
# rounds alternate the builds so that both see the same machine (other work on a shared machine
# moves every figure; alternating spreads it over both). Per round and build: the cache-off
# hover phase (wrk -t2 -c50, a domain per query, upstream 0 ms: CPU per query, requests/s,
# latency) and the 100 ms upstream phase at 10 concurrent, with wrk straight against the fake
# just before it as the baseline (the overhead is ours minus the fake alone, same client).
#
#   python3 bench/ab.py --before OLD_BINARY --after target/release/misp-domaintools \
#       [--fake target/release/examples/fake_api] [--rounds 3] [--duration 8]
#
# Uses bench.py's pieces (same wrk scripts, same fake, same flags); prints a Markdown table of
# the medians and writes every figure to target/bench/ab.json.
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--fake", default="target/release/examples/fake_api")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--out", default="target/bench")
    args = parser.parse_args()
    args.wrk, args.threads = "wrk", 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    distinct = out_dir / "hover-distinct.json"
    distinct.write_text(json.dumps(dict(bench.HOVER, domain="__DOMAIN__")))

    fake = bench.Fake(args.fake)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOMAINTOOLS_", "MISP_DOMAINTOOLS_"))}
    env.update(NO_PROXY="127.0.0.1,localhost", RUST_LOG="warn")
    runs = {"before": [], "after": []}
    try:
        for round_no in range(args.rounds):
            for name in ("before", "after"):
                binary = getattr(args, name)
                server = bench.Server(name, lambda port: [
                    binary, "--port", str(port), "--api-url", fake.url,
                    "--cache-size-mb", "0", "--rate-limits", "off"], env, 10)
                try:
                    fake.latency(0)
                    # Warm-up: connections to the fake, allocator pages.
                    bench.wrk(args, server.port, "/query", str(distinct), 50, 2,
                              server.proc.pid, fake.proc.pid, distinct=True)
                    hover = bench.wrk(args, server.port, "/query", str(distinct), 50,
                                      args.duration, server.proc.pid, fake.proc.pid,
                                      distinct=True)
                    fake.latency(100)
                    base = bench.fake_alone_wrk(args, fake.port, 10, args.duration, out_dir)
                    c10 = bench.wrk(args, server.port, "/query", str(distinct), 10,
                                    args.duration, server.proc.pid, fake.proc.pid,
                                    distinct=True)
                finally:
                    server.stop()
                entry = {
                    "cpu_ms": hover["cpu_s"] * 1000 / max(hover["requests"], 1),
                    "rps": hover["rps"], "p50_ms": hover["p50_ms"], "p99_ms": hover["p99_ms"],
                    "load": (hover["load_before"] + c10["load_after"]) / 2,
                    "c10_p50_over": c10["p50_ms"] - base["p50_ms"],
                    "c10_p99_over": c10["p99_ms"] - base["p99_ms"],
                    "c10_p99": c10["p99_ms"], "base_p99": base["p99_ms"],
                    "errors": sum(hover["errors"].values()) + sum(c10["errors"].values()),
                }
                runs[name].append(entry)
                print(f"round {round_no + 1} {name}: " + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in entry.items()), flush=True)
    finally:
        fake.stop()

    (out_dir / "ab.json").write_text(json.dumps(runs, indent=2))
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for name, rs in runs.items()}
    rows = [
        ("CPU per cache-off hover query, server process (ms)", "cpu_ms", "{:.3f}"),
        ("Cache-off hover: requests/s (wrk -t2 -c50)", "rps", "{:,.0f}"),
        ("Cache-off hover: p50 latency (ms)", "p50_ms", "{:.1f}"),
        ("Cache-off hover: p99 latency (ms)", "p99_ms", "{:.1f}"),
        ("100 ms upstream, 10 concurrent: p50 over the fake alone (ms)", "c10_p50_over", "{:+.1f}"),
        ("100 ms upstream, 10 concurrent: p99 over the fake alone (ms)", "c10_p99_over", "{:+.1f}"),
        ("the fake alone's own p99 at 10 concurrent (ms)", "base_p99", "{:.1f}"),
        ("load average during the phases", "load", "{:.1f}"),
        ("socket, status or timeout errors", "errors", "{:.0f}"),
    ]
    print(f"\nMedians of {args.rounds} alternating rounds, {args.duration} s per phase.\n")
    print("| Measure | before | after |")
    print("|---|---:|---:|")
    for label, key, fmt in rows:
        print(f"| {label} | {fmt.format(med['before'][key])} | {fmt.format(med['after'][key])} |")


if __name__ == "__main__":
    main()
