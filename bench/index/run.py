#!/usr/bin/env python3
"""How long a recovery point index takes to build: in full, and from the previous index.

Against a real `coffer serve` (SQLite store, SigV4 on), with boto3's `backup` client:

  1. a dataset tree made by bench/make-dataset.py (many small files: --files, --size-mib),
     backed up with Index ENABLED: the first index is built in full;
  2. --runs times: one file of the tree changed, backed up again with Index ENABLED: the index
     is built from the previous point's catalogue (only the changed directories are read);
  3. --runs times: the last point's index built in full (every other index DISABLED first, so
     there is no base; then DISABLED and ENABLED again).

Times come from Coffer's log line "recovery point index built" (total_ms: from loading the
base's catalogue to the index ACTIVE, parts written; read_ms: until the catalogue was read),
with the number of directory trees read and of files taken over from the base.

  bench/index/run.py [--files 100000] [--size-mib 200] [--runs 3] [--binary target/release/coffer]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AKID, SECRET, ACCOUNT, REGION = "AKIDBENCH00000000001", "bench-secret-0000000000000000000000000", "111122223333", "us-east-1"
FS_ARN = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-bench"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bench"
VAULT = "bench"


def start(binary, work, log):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
         "--config", os.path.join(work, "coffer.toml")],
        stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, env={**os.environ, "COFFER_LOG": "info"})
    for line in proc.stdout:
        if line.startswith("Coffer listening on "):
            return proc, line.split("Coffer listening on ", 1)[1].strip()
    sys.exit("coffer did not start")


def wait(what, check, timeout=3600):
    end = time.time() + timeout
    while time.time() < end:
        v = check()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def index_status(backup, rp):
    try:
        return backup.get_recovery_point_index_details(BackupVaultName=VAULT, RecoveryPointArn=rp)["IndexStatus"]
    except backup.exceptions.ResourceNotFoundException:
        return None


def built(log, rp, n):
    """The n-th "recovery point index built" line of `rp` (waits for it), as a dict."""
    rp_id = rp.rsplit(":", 1)[1]

    def find():
        lines = [l for l in open(log).read().splitlines() if "recovery point index built" in l and rp_id in l]
        return lines[n] if len(lines) > n else None

    line = wait("the index build's log line", find)
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def backup_indexed(backup):
    job = backup.start_backup_job(BackupVaultName=VAULT, ResourceArn=FS_ARN, IamRoleArn=ROLE, Index="ENABLED")
    wait("the backup", lambda: backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "COMPLETED")
    rp = job["RecoveryPointArn"]
    wait("the index", lambda: index_status(backup, rp) == "ACTIVE")
    return rp


def set_index(backup, rp, on):
    backup.update_recovery_point_index_settings(BackupVaultName=VAULT, RecoveryPointArn=rp,
                                                Index="ENABLED" if on else "DISABLED")
    wait("the index setting", lambda: index_status(backup, rp) == ("ACTIVE" if on else None))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary")
    args = ap.parse_args()
    binary = args.binary
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-server"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "coffer")
    with tempfile.TemporaryDirectory(prefix="coffer-index-bench-") as work:
        src = os.path.join(work, "src")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make-dataset.py"), src,
                        "--files", str(args.files), "--size-mib", str(args.size_mib)], check=True)
        with open(os.path.join(work, "coffer.toml"), "w") as f:
            f.write(f'[[credentials]]\naccess_key_id = "{AKID}"\nsecret_access_key = "{SECRET}"\naccount_id = "{ACCOUNT}"\n\n'
                    f'[[resources]]\narn = "{FS_ARN}"\nsource = "{src}"\n')
        log = os.path.join(work, "coffer.log")
        proc, endpoint = start(binary, work, log)
        try:
            backup = boto3.client("backup", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AKID,
                                  aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
            backup.create_backup_vault(BackupVaultName=VAULT)
            points = [backup_indexed(backup)]
            first = built(log, points[0], 0)
            print(f"first index: {first['files']} files, {first['trees_read']} trees read, {first['total_ms']} ms")
            target = sorted(os.path.join(d, n) for d, _, ns in os.walk(src) for n in ns)[len(points) * 7919 % args.files]
            inc = []
            for i in range(args.runs):
                with open(target, "ab") as f:
                    f.write(b"one more line %d\n" % i)
                points.append(backup_indexed(backup))
                b = built(log, points[-1], 0)
                assert b["incremental"] == "true", b
                inc.append(b)
            full = []
            for rp in points[:-1]:
                set_index(backup, rp, False)
            for i in range(args.runs):
                set_index(backup, points[-1], False)
                set_index(backup, points[-1], True)
                b = built(log, points[-1], i + 1)
                assert b["incremental"] == "false", b
                full.append(b)
            for name, runs in (("full", full), ("incremental (one file changed)", inc)):
                tot = [int(b["total_ms"]) for b in runs]
                rd = [int(b["read_ms"]) for b in runs]
                print(f"{name}: {runs[0]['files']} files; total median {statistics.median(tot) / 1000:.3f} s "
                      f"(runs {', '.join(f'{x / 1000:.3f}' for x in tot)}); catalogue read median {statistics.median(rd) / 1000:.3f} s; "
                      f"trees read {runs[0]['trees_read']}, files taken over {runs[0]['files_reused']}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
