#!/usr/bin/env python3
"""Request throughput and tail latency of Coffer's API, side by side with winterbaume-backup and
moto's server mode, in the same run.

Servers (each on 127.0.0.1, started by this script):
  - coffer: `coffer serve`, release build, SigV4 verified on every request, SQLite store
    (durable: WAL, synchronous=FULL, on the disk of the data directory);
  - coffer-pg (with --postgres URL): the same, its store a fresh database on that PostgreSQL
    server (one node, no read cache);
  - winterbaume: winterbaume-backup 0.2 (an in-memory Rust mock of AWS Backup, no
    authentication) behind a small hyper front of ours, bench/api/winterbaume-front, built
    here with `cargo build --release --manifest-path bench/api/winterbaume-front/Cargo.toml`
    (its own workspace, so the repository's CI never builds it);
  - moto: moto_server (moto[server]), the usual local stand-in for AWS Backup in tests.

Operations, each SigV4-signed and replayed by wrk (2 threads, 64 connections by default, on the
same machine as the servers):
  reads   GetBackupPlan, ListBackupPlans (20 plans), DescribeBackupVault, ListBackupVaults
          (20 vaults), ListRecoveryPointsByBackupVault (MaxResults=50, 50 points in Coffer's
          vault: real backups of a small directory);
  writes  CreateBackupPlan (a new plan name every request, in us-west-2 so the plans the runs
          create do not change the read set; a region per run) and TagResource (the vault's tag `bench` set to a
          new value every request).
Coffer refuses an unsigned or replayed-with-another-body request, so its write requests are
signed here in advance (a pool per wrk thread, bench/api/write.lua replays them; the run says
if a thread ever ran out and reused one). winterbaume and moto check no signature: wrk makes
their bodies as it goes.

Reads run before writes in every run. It prints per run and then a table of medians (req/s, p99)
with the ratios Coffer/winterbaume, Coffer/moto and coffer-pg/coffer.

  bench/api/run.py [--runs 3] [--duration 10] [--connections 64] [--no-moto]
                   [--no-winterbaume] [--postgres postgres://USER@HOST:PORT/DB] [--only OP,OP]
                   [--coffer-bin PATH] [--write-pool N] [--perf]

--perf counts, with `perf stat` attached to each Coffer process, its fsyncs (fsync + fdatasync)
and context switches per request (threads that exist when perf attaches).

Needs: wrk (Debian package), boto3/botocore and moto[server] (PyPI), cargo; psql for --postgres.
"""
import argparse
import datetime
import hashlib
import hmac
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
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
AKID, SECRET = "AKIDBENCH00000000001", "bench-secret-0000000000000000000000000"
ACCOUNT = "111122223333"
REGION = "us-east-1"
# CreateBackupPlan writes into a region of its own per run (at most five runs): the plans one run
# creates change neither the read set nor the next run's starting point.
WRITE_REGIONS = ["us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "ca-central-1"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
RESOURCE = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-bench"
READS = ["GetBackupPlan", "ListBackupPlans", "DescribeBackupVault", "ListBackupVaults",
         "ListRecoveryPointsByBackupVault"]
WRITES = ["CreateBackupPlan", "TagResource"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"the server on {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def signed_headers(url, region=REGION):
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(AKID, SECRET), "backup", region).add_auth(req)
    return {k: v for k, v in req.headers.items() if k.lower() in ("authorization", "x-amz-date")}


class Signer:
    """SigV4 for the write pools: botocore's rules (the path's segments encoded again in the
    canonical URI), fast enough to sign a few hundred thousand requests."""

    def __init__(self, region):
        self.region = region
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.amz_date = self.now.strftime("%Y%m%dT%H%M%SZ")
        self.date = self.now.strftime("%Y%m%d")
        k = hmac.new(("AWS4" + SECRET).encode(), self.date.encode(), hashlib.sha256).digest()
        for part in (region, "backup", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self.key = k
        self.scope = f"{self.date}/{region}/backup/aws4_request"

    def request(self, method, raw_path, host, body):
        canonical_uri = urllib.parse.quote(raw_path, safe="/~")
        creq = (f"{method}\n{canonical_uri}\n\nhost:{host}\nx-amz-date:{self.amz_date}\n\n"
                f"host;x-amz-date\n{hashlib.sha256(body).hexdigest()}")
        sts = (f"AWS4-HMAC-SHA256\n{self.amz_date}\n{self.scope}\n"
               f"{hashlib.sha256(creq.encode()).hexdigest()}")
        sig = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        auth = (f"AWS4-HMAC-SHA256 Credential={AKID}/{self.scope}, "
                f"SignedHeaders=host;x-amz-date, Signature={sig}")
        return (f"{method} {raw_path} HTTP/1.1\r\nHost: {host}\r\nX-Amz-Date: {self.amz_date}\r\n"
                f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def write_request(op, thread, i, vault_arn, salt=""):
    """(method, raw path, body) of write request number `i` of wrk thread `thread` (`salt`
    tells runs apart)."""
    if op == "CreateBackupPlan":
        body = {"BackupPlan": {"BackupPlanName": f"w{salt}-{thread}-{i}",
                               "Rules": [{"RuleName": "daily",
                                          "TargetBackupVaultName": "bench-vault-00"}]}}
        return "PUT", "/backup/plans/", json.dumps(body, separators=(",", ":")).encode()
    body = {"Tags": {"bench": f"v{salt}-{thread}-{i}"}}
    return ("POST", "/tags/" + urllib.parse.quote(vault_arn, safe=""),
            json.dumps(body, separators=(",", ":")).encode())


def write_region(op, run):
    return WRITE_REGIONS[run % len(WRITE_REGIONS)] if op == "CreateBackupPlan" else REGION


def write_pools(op, port, vault_arn, count, workdir, salt, region, threads=2):
    """Files of pre-signed requests, one per wrk thread, separated by \\x01."""
    signer = Signer(region)
    host = f"127.0.0.1:{port}"
    base = os.path.join(workdir, f"{op}-{port}")
    for t in range(threads):
        with open(f"{base}.{t}", "wb") as f:
            for i in range(count // threads):
                method, path, body = write_request(op, t, i, vault_arn, salt)
                f.write(signer.request(method, path, host, body))
                f.write(b"\x01")
    return base


def run_wrk(url, duration, connections, headers=None, lua=None, lua_args=(), perf_pid=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if lua:
        cmd += ["-s", lua]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    if lua_args:
        cmd += ["--", *lua_args]
    perf = perf_start(perf_pid) if perf_pid else None
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    per_request = perf_stop(perf, total) if perf else None
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    wrapped = re.search(r"WRAPPED (\d+)", out)
    return {"rps": rps, "p99": float(p99.group(1)) * scale,
            "errors": int(non2xx.group(1)) if non2xx else 0,
            "wrapped": int(wrapped.group(1)) if wrapped else 0, "out": out,
            "per_request": per_request}


PERF_EVENTS = ["syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync", "context-switches"]


def perf_start(pid):
    return subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(PERF_EVENTS), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def perf_stop(proc, requests):
    """Per request: fsyncs (fsync + fdatasync) and context switches of the server process."""
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    counts = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2] in PERF_EVENTS and parts[0].strip().isdigit():
            counts[parts[2]] = int(parts[0])
    syncs = counts.get(PERF_EVENTS[0], 0) + counts.get(PERF_EVENTS[1], 0)
    return syncs / max(requests, 1), counts.get("context-switches", 0) / max(requests, 1)


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def client(port, region=REGION):
    return boto3.client("backup", endpoint_url=f"http://127.0.0.1:{port}", region_name=region,
                        aws_access_key_id=AKID, aws_secret_access_key=SECRET)


def wait_job(c, job_id, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        j = c.describe_backup_job(BackupJobId=job_id)
        if j["State"] in ("COMPLETED", "FAILED", "ABORTED", "EXPIRED"):
            return j
        time.sleep(0.05)
    sys.exit(f"backup job {job_id} did not end in {timeout}s")


def seed(name, port):
    """The read set: 20 vaults, 20 plans, 50 recovery points in bench-vault-07 where the server
    can make them. Returns what the requests name."""
    c = client(port)
    for i in range(20):
        c.create_backup_vault(BackupVaultName=f"bench-vault-{i:02d}")
    for region in WRITE_REGIONS:
        client(port, region).create_backup_vault(BackupVaultName="bench-vault-00")
    plan_ids = []
    for i in range(20):
        out = c.create_backup_plan(BackupPlan={
            "BackupPlanName": f"bench-plan-{i:02d}",
            "Rules": [{"RuleName": "daily", "TargetBackupVaultName": "bench-vault-00",
                       "ScheduleExpression": "cron(0 5 ? * * *)"}]})
        plan_ids.append(out["BackupPlanId"])
    vault_arn = c.describe_backup_vault(BackupVaultName="bench-vault-07")["BackupVaultArn"]
    points = 0
    if name.startswith("coffer"):
        for _ in range(50):
            job = c.start_backup_job(BackupVaultName="bench-vault-07", ResourceArn=RESOURCE,
                                     IamRoleArn=ROLE)
            j = wait_job(c, job["BackupJobId"])
            if j["State"] != "COMPLETED":
                sys.exit(f"{name}: backup job ended {j['State']}: {j.get('StatusMessage')}")
    try:
        points = len(c.list_recovery_points_by_backup_vault(
            BackupVaultName="bench-vault-07", MaxResults=50)["RecoveryPoints"])
    except Exception as e:  # noqa: BLE001 (moto may not have the operation)
        points = f"n/a ({type(e).__name__})"
    return {"plan_id": plan_ids[7], "vault_arn": vault_arn, "points": points}


def read_path(op, s):
    return {"GetBackupPlan": f"/backup/plans/{s['plan_id']}/",
            "ListBackupPlans": "/backup/plans/",
            "DescribeBackupVault": "/backup-vaults/bench-vault-07",
            "ListBackupVaults": "/backup-vaults/",
            "ListRecoveryPointsByBackupVault":
                "/backup-vaults/bench-vault-07/recovery-points/?maxResults=50"}[op]


def start_coffer(binary, port, data, store, source):
    cfg = os.path.join(data, "coffer.toml")
    os.makedirs(data, exist_ok=True)
    with open(cfg, "w") as f:
        f.write(f'[[credentials]]\naccess_key_id = "{AKID}"\nsecret_access_key = "{SECRET}"\n'
                f'account_id = "{ACCOUNT}"\n\n[[resources]]\narn = "{RESOURCE}"\n'
                f'source = "{source}"\n')
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
           os.path.join(data, "data"), "--config", cfg]
    if store:
        cmd += ["--store", store]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "COFFER_LOG": "warn"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--no-moto", action="store_true")
    ap.add_argument("--no-winterbaume", action="store_true")
    ap.add_argument("--postgres", help="also run Coffer on this PostgreSQL server (a fresh "
                    "database named coffer_bench_<pid> is created there)")
    ap.add_argument("--only", help="comma-separated operations to measure (default: all)")
    ap.add_argument("--write-pool", type=int, default=0,
                    help="pre-signed write requests per operation and run (default 40000 x duration)")
    ap.add_argument("--coffer-bin", help="use this coffer binary instead of building the release one")
    ap.add_argument("--perf", action="store_true",
                    help="count Coffer's fsyncs and context switches per request with perf stat")
    args = ap.parse_args()
    if args.runs > len(WRITE_REGIONS):
        sys.exit(f"at most {len(WRITE_REGIONS)} runs (one write region each)")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    ops = [o for o in READS + WRITES if not args.only or o in args.only.split(",")]
    pool = args.write_pool or 40000 * args.duration

    coffer_bin = args.coffer_bin
    if not coffer_bin:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-server"], cwd=ROOT,
                       check=True)
        coffer_bin = os.path.join(ROOT, "target", "release", "coffer")
    front_target = os.path.join(ROOT, "target", "winterbaume-front")
    if not args.no_winterbaume:
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path",
                        os.path.join(HERE, "winterbaume-front", "Cargo.toml")],
                       cwd=ROOT, check=True, env={**os.environ, "CARGO_TARGET_DIR": front_target})
    work = tempfile.mkdtemp(prefix="coffer-apibench-", dir=os.path.join(ROOT, "target"))
    source = os.path.join(work, "source")
    os.makedirs(source)
    for i in range(8):
        with open(os.path.join(source, f"file-{i}.txt"), "w") as f:
            f.write(f"bench file {i}\n" * 100)

    targets = {}
    procs = []
    port = free_port()
    procs.append(start_coffer(coffer_bin, port, os.path.join(work, "coffer"), None, source))
    targets["coffer"] = (port, procs[-1])
    if args.postgres:
        db = f"coffer_bench_{os.getpid()}"
        subprocess.run(["psql", args.postgres, "-q", "-c",
                        f"CREATE DATABASE {db} ENCODING 'UTF8' TEMPLATE template0"], check=True)
        u = urllib.parse.urlsplit(args.postgres)
        url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, ""))
        pport = free_port()
        procs.append(start_coffer(coffer_bin, pport, os.path.join(work, "coffer-pg"), url, source))
        targets["coffer-pg"] = (pport, procs[-1])
    if not args.no_winterbaume:
        wport = free_port()
        procs.append(subprocess.Popen([os.path.join(front_target, "release", "winterbaume-front"),
                                       f"127.0.0.1:{wport}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        targets["winterbaume"] = (wport, procs[-1])
    if not args.no_moto:
        mport = free_port()
        procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(mport)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        targets["moto"] = (mport, procs[-1])
    lua = os.path.join(HERE, "write.lua")
    try:
        seeded = {}
        for name, (p, proc) in targets.items():
            wait_port(p, proc)
            seeded[name] = seed(name, p)
            print(f"{name}: seeded; ListRecoveryPointsByBackupVault answers "
                  f"{seeded[name]['points']} points", flush=True)
        results = {}
        for run in range(args.runs):
            pools = {}
            for name, (p, proc) in targets.items():
                perf_pid = proc.pid if args.perf and name.startswith("coffer") else None
                for op in ops:
                    url = f"http://127.0.0.1:{p}"
                    if op in READS:
                        url += read_path(op, seeded[name])
                        r = run_wrk(url, args.duration, args.connections, signed_headers(url),
                                    perf_pid=perf_pid)
                    elif name.startswith("coffer"):
                        if (name, op) not in pools:
                            pools[(name, op)] = write_pools(op, p, seeded[name]["vault_arn"],
                                                            pool, work, f"{os.getpid()}r{run}",
                                                            write_region(op, run))
                        r = run_wrk(url, args.duration, args.connections, lua=lua,
                                    lua_args=("file", pools[(name, op)]), perf_pid=perf_pid)
                    else:
                        method, path, _ = write_request(op, 0, 0, seeded[name]["vault_arn"])
                        region = write_region(op, run)
                        r = run_wrk(url, args.duration, args.connections, lua=lua,
                                    lua_args=("gen", op, method, path, seeded[name]["vault_arn"],
                                              region, AKID, f"{os.getpid()}r{run}"))
                    if r["errors"]:
                        print(f"run {run + 1}: {name} {op}: {r['errors']} error responses",
                              flush=True)
                        if name.startswith("coffer"):
                            sys.exit(r["out"])
                        r["rps"] = None
                    if r["wrapped"]:
                        print(f"run {run + 1}: {name} {op}: the pre-signed pool ran out "
                              f"{r['wrapped']} times (requests reused)", flush=True)
                    results.setdefault((name, op), []).append(r)
                    rps = f"{r['rps']:10.0f}" if r["rps"] is not None else "    errors"
                    per = ""
                    if r["per_request"]:
                        per = (f"  fsyncs/request {r['per_request'][0]:.3f}"
                               f"  context switches/request {r['per_request'][1]:.2f}")
                    print(f"run {run + 1}: {name:11} {op:32} {rps} req/s  p99 {r['p99']:8.2f} ms"
                          f"{per}", flush=True)
            for base in {b for b in pools.values()}:
                for t in range(2):
                    os.remove(f"{base}.{t}")
        report(results, targets, ops, args)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def median(rs, key):
    vals = [r[key] for r in rs if r[key] is not None]
    return statistics.median(vals) if vals else None


def report(results, targets, ops, args):
    print()
    print(f"Medians of {args.runs} runs, wrk -t2 -c{args.connections} -d{args.duration}s on the "
          "same machine.\n")
    names = list(targets)
    print("| Operation | " + " | ".join(f"{n} req/s | {n} p99" for n in names) + " |")
    print("|---|" + "---:|---:|" * len(names))
    summary = {}
    for op in ops:
        cells = []
        for n in names:
            rs = results.get((n, op), [])
            rps, p99 = median(rs, "rps"), median(rs, "p99")
            summary[(n, op)] = rps
            cells.append(f"{rps:,.0f}" if rps is not None else "errors")
            cells.append(f"{p99:.2f} ms" if p99 is not None else "")
        print(f"| {op} | " + " | ".join(cells) + " |")
    print()
    pairs = [("coffer", "winterbaume"), ("coffer", "moto"), ("coffer-pg", "coffer")]
    pairs = [(a, b) for a, b in pairs if a in names and b in names]
    if pairs:
        print("| Operation | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
        print("|---|" + "---:|" * len(pairs))
        for op in ops:
            cells = []
            for a, b in pairs:
                x, y = summary.get((a, op)), summary.get((b, op))
                cells.append(f"{x / y:.2f}x" if x and y else "n/a")
            print(f"| {op} | " + " | ".join(cells) + " |")
    print()
    for n, (_, proc) in targets.items():
        print(f"- {n}: peak RSS {peak_rss_mib(proc.pid):.0f} MiB")


if __name__ == "__main__":
    main()
