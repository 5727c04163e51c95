#!/usr/bin/env python3
"""Request throughput and latency of Coffer's read path, side by side with moto's server mode.

What it measures: DescribeBackupVault and ListBackupVaults, each a SigV4-signed request replayed
by wrk (64 connections, 2 threads, on the same machine as the server), against
  - coffer serve (release build, SigV4 verified on every request, SQLite store), and
  - moto_server (moto[server], the usual local stand-in for AWS Backup in tests),
in the same run, several times; it prints the median requests/s and p99 latency of each.

  bench/api/run.py [--runs 3] [--duration 15] [--connections 64] [--no-moto]

Needs: wrk (Debian package), boto3/botocore and moto[server] (PyPI), cargo.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AKID, SECRET, REGION = "AKIDBENCH00000000001", "bench-secret-0000000000000000000000000", "us-east-1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def signed_headers(url):
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(AKID, SECRET), "backup", REGION).add_auth(req)
    return {k: v for k, v in req.headers.items() if k.lower() in ("authorization", "x-amz-date")}


def wrk(url, headers, duration, connections):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"{url}: {non2xx.group(1)} error responses during the run:\n{out}")
    return rps, float(p99.group(1)) * scale


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--no-moto", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-server"], cwd=ROOT, check=True)
    coffer_bin = os.path.join(ROOT, "target", "release", "coffer")
    data = tempfile.mkdtemp(prefix="coffer-bench-")
    targets = {}
    procs = []
    port = free_port()
    procs.append(subprocess.Popen(
        [coffer_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--access-key-id", AKID, "--secret-access-key", SECRET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "COFFER_LOG": "warn"}))
    targets["coffer"] = (port, procs[-1])
    if not args.no_moto:
        mport = free_port()
        procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(mport)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        targets["moto"] = (mport, procs[-1])
    try:
        for name, (p, _) in targets.items():
            wait_port(p)
            client = boto3.client("backup", endpoint_url=f"http://127.0.0.1:{p}", region_name=REGION,
                                  aws_access_key_id=AKID, aws_secret_access_key=SECRET)
            for i in range(20):
                client.create_backup_vault(BackupVaultName=f"bench-vault-{i:02d}")
        results = {}
        for run in range(args.runs):
            for name, (p, _) in targets.items():
                for op, path in (("DescribeBackupVault", "/backup-vaults/bench-vault-07"),
                                 ("ListBackupVaults", "/backup-vaults/")):
                    url = f"http://127.0.0.1:{p}{path}"
                    rps, p99 = wrk(url, signed_headers(url), args.duration, args.connections)
                    results.setdefault((name, op), []).append((rps, p99))
                    print(f"run {run + 1}: {name:6} {op:20} {rps:10.0f} req/s  p99 {p99:7.2f} ms", flush=True)
        print()
        print(f"Medians of {args.runs} runs, wrk -t2 -c{args.connections} -d{args.duration}s on the same machine; "
              "ListBackupVaults lists 20 vaults.\n")
        print("| Server | Operation | Requests/s | p99 latency | Peak RSS |")
        print("|---|---|---:|---:|---:|")
        summary = {}
        for (name, op), rs in results.items():
            rps = statistics.median(r for r, _ in rs)
            p99 = statistics.median(p for _, p in rs)
            summary[(name, op)] = rps
            print(f"| {name} | {op} | {rps:,.0f} | {p99:.2f} ms | {peak_rss_mib(targets[name][1].pid):.0f} MiB |")
        if "moto" in targets:
            print()
            for op in ("DescribeBackupVault", "ListBackupVaults"):
                print(f"- {op}: Coffer serves {summary[('coffer', op)] / summary[('moto', op)]:.0f}x moto's throughput")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
