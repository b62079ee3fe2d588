#!/usr/bin/env python3
# Peak memory of decoding one large Iris answer (issue 12, row 5): a stdlib HTTP server on
# loopback answers every Iris Investigate call with one ~30 MB answer (the first recorded
# record, amazon.com, repeated under distinct names, under the client's 32 MiB cap), and our release binary
# is asked one hover (Iris-Investigate) and one pivot (Iris-Pivot on an IP, which reads every
# record of the page). The figure is the server's VmHWM (/proc/PID/status) before and after,
# against the answer's size. A fresh server per query, so each peak is that query's alone.
#
#   python3 bench/decode_memory.py [--ours target/release/misp-domaintools] [--mb 30]
#
# A measurement for docs/benchmarks.md, not a test: nothing here passes or fails.
import argparse
import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

FIXTURE = (Path(__file__).resolve().parent.parent / "crates" / "domaintools-fake" / "fixtures"
           / "domaintools" / "iris-investigate-domain.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(megabytes):
    """An Iris Investigate answer of about `megabytes` MB: the first recorded record again and
    again, each under a name of its own."""
    recorded = json.loads(FIXTURE.read_text())["response"]
    first = recorded["results"][0]
    template = json.dumps(first)
    per_record = len(template)
    count = int(megabytes * 1_000_000 / per_record)
    name = json.dumps(first["domain"])
    records = [template.replace(name, f'"big-{i}.example"') for i in range(count)]
    envelope = dict(recorded, results_count=count, total_count=count, has_more_results=False)
    head = json.dumps(dict(envelope, results=[]))
    # Spliced as text so building the answer here does not take a Python object per record.
    body = head.replace('"results": []', '"results": [' + ", ".join(records) + "]")
    return body.encode(), count


class Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(body):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = Upstream(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def query(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/query", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def measure(ours, upstream_url, request):
    port = free_port()
    proc = subprocess.Popen([ours, "--port", str(port), "--api-url", upstream_url,
                             "--rate-limits", "off", "--cache-size-mb", "0"],
                            env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.02)
        time.sleep(0.3)
        before = status(proc.pid)
        started = time.perf_counter()
        code, reply = query(port, request)
        seconds = time.perf_counter() - started
        after = status(proc.pid)
        results = reply.get("results")
        shown = len(results) if isinstance(results, list) else "object"
        return {"status": code, "results": shown, "error": reply.get("error"),
                "seconds": seconds, "hwm_before_mib": before["VmHWM"],
                "hwm_after_mib": after["VmHWM"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", default="target/release/misp-domaintools")
    parser.add_argument("--mb", type=float, default=30.0)
    args = parser.parse_args()
    body, count = answer(args.mb)
    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = {"username": "u", "api_key": "k"}
    cases = [
        ("Iris-Investigate hover", {"module": "DomainTools-Iris-Investigate",
                                    "domain": "google.com", "config": config}),
        ("Iris-Pivot on an IP (every record read)",
         {"module": "DomainTools-Iris-Pivot", "ip-src": "1.2.3.4", "config": config}),
    ]
    mib = len(body) / 2**20
    print(f"answer: {len(body):,} bytes ({mib:.1f} MiB), {count:,} records")
    print("| query | VmHWM before (MiB) | VmHWM after (MiB) | peak ÷ answer size | time (s) | results |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, request in cases:
        m = measure(args.ours, url, request)
        if m["status"] != 200 or m["error"]:
            print(f"<!-- {name}: status {m['status']}, error {m['error']!r} -->")
        print(f"| {name} | {m['hwm_before_mib']:.1f} | {m['hwm_after_mib']:.1f} | "
              f"{m['hwm_after_mib'] / mib:.1f}× | {m['seconds']:.2f} | {m['results']} |")
    server.shutdown()


if __name__ == "__main__":
    main()
