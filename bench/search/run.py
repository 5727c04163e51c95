#!/usr/bin/env python3
"""How fast AWS Backup Search answers over a large index: 1,000,000 indexed files.

What it measures, against a real `coffer serve` (SQLite store, SigV4 on), with boto3's
`backupsearch` client:
  - first page: StartSearchJob, then ListSearchJobResults until the first page of results is
    there (the time a user waits to see results), for a filter that matches often
    (`*.txt`, every other file) and for a needle (one file, the last in path order, so the
    whole catalogue is read before it is found);
  - full scan: StartSearchJob until GetSearchJob says COMPLETED, for the needles (the `*.txt`
    search is stopped with StopSearchJob once its first page is there). The EQUALS_TO needle
    lets Coffer skip every catalogue part whose path range cannot hold it; the CONTAINS needle
    (the last file's name) cannot skip anything: every file is decoded and matched.

How the index is made: one real indexed backup of a one-file tree (so the recovery point, its
index record and the vault are Coffer's own), then, with Coffer stopped, N catalogue rows are
added to that index in the store exactly as the index build writes them (table `rp_catalog`,
key `ACCOUNT:REGION:RPID:PATH`, the CatalogEntry JSON), and the index record's item count set
to match. Those are the JSON rows earlier versions of Coffer wrote: at start, Coffer converts
them to its compact catalogue (docs/indexes.md), and the benchmark waits until that is done (the
directory written and the JSON rows deleted) and reports how long it took. Building a
1,000,000-file index through a real backup is not what this benchmark times (bench/index/run.py
times index builds).

  bench/search/run.py [--files 1000000] [--runs 3] [--binary target/release/coffer]

Needs: boto3/botocore with the backupsearch model (1.35.x or later), cargo (unless --binary).
"""
import argparse
import json
import os
import sqlite3
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


def start(binary, work):
    cfg = os.path.join(work, "coffer.toml")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"), "--config", cfg],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "COFFER_LOG": "warn"})
    for line in proc.stdout:
        if line.startswith("Coffer listening on "):
            return proc, line.split("Coffer listening on ", 1)[1].strip()
    sys.exit("coffer did not start")


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AKID, aws_secret_access_key=SECRET,
              config=Config(retries={"max_attempts": 1}))
    return boto3.client("backup", **kw), boto3.client("backupsearch", **kw)


def wait(what, check, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        v = check()
        if v:
            return v
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


def seed(work, binary, files):
    src = os.path.join(work, "src")
    os.makedirs(src)
    with open(os.path.join(src, "seed.txt"), "w") as f:
        f.write("seed\n")
    with open(os.path.join(work, "coffer.toml"), "w") as f:
        f.write(f'[[credentials]]\naccess_key_id = "{AKID}"\nsecret_access_key = "{SECRET}"\naccount_id = "{ACCOUNT}"\n\n'
                f'[[resources]]\narn = "{FS_ARN}"\nsource = "{src}"\n')
    proc, endpoint = start(binary, work)
    backup, _ = clients(endpoint)
    backup.create_backup_vault(BackupVaultName="bench")
    job = backup.start_backup_job(BackupVaultName="bench", ResourceArn=FS_ARN, IamRoleArn=ROLE, Index="ENABLED")
    rp = job["RecoveryPointArn"]
    wait("the backup", lambda: backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "COMPLETED")
    wait("the index", lambda: backup.get_recovery_point_index_details(
        BackupVaultName="bench", RecoveryPointArn=rp)["IndexStatus"] == "ACTIVE")
    proc.terminate()
    proc.wait()
    rp_id = rp.rsplit(":", 1)[1]
    db = sqlite3.connect(os.path.join(work, "data", "metadata.db"))
    prefix = f"{ACCOUNT}:{REGION}:{rp_id}:"
    # Make the index look like one an earlier version wrote: no compact catalogue, JSON rows
    # (seed.txt's row too).
    db.execute("DELETE FROM records WHERE tbl IN ('rp_catalog_dir', 'rp_catalog_part') AND key LIKE ?",
               (f"{ACCOUNT}:{REGION}:{rp_id}%",))
    db.execute("INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?, ?, ?)",
               ("rp_catalog", f"{prefix}seed.txt",
                json.dumps({"path": "seed.txt", "size": 5, "modified_ms": 1_700_000_000_000,
                            "content_hash": "0" * 64}).encode()))
    t = time.time()
    rows = ((
        "rp_catalog",
        f"{prefix}{p}",
        json.dumps({"path": p, "size": i % 100_000, "modified_ms": 1_700_000_000_000 + i,
                    "content_hash": f"{i:064x}"}).encode())
        for i, p in ((i, f"d{i // 1000:04d}/f{i:07d}.{'txt' if i % 2 == 0 else 'bin'}") for i in range(files)))
    db.executemany("INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?, ?, ?)", rows)
    key = f"{ACCOUNT}:{REGION}:{rp_id}"
    rec = json.loads(db.execute("SELECT value FROM records WHERE tbl='rp_index_record' AND key=?", (key,)).fetchone()[0])
    rec["total_items"] = files + 1
    db.execute("UPDATE records SET value=? WHERE tbl='rp_index_record' AND key=?", (json.dumps(rec).encode(), key))
    db.commit()
    db.close()
    print(f"seeded {files} catalogue rows in {time.time() - t:.1f} s")
    last = f"/d{(files - 1) // 1000:04d}/f{files - 1:07d}.{'txt' if (files - 1) % 2 == 0 else 'bin'}"
    return last, rp_id


def wait_converted(work, rp_id):
    """Waits until Coffer has converted the seeded JSON rows to its compact catalogue."""
    db = sqlite3.connect(f"file:{os.path.join(work, 'data', 'metadata.db')}?mode=ro", uri=True)
    key = f"{ACCOUNT}:{REGION}:{rp_id}"

    def done():
        d = db.execute("SELECT 1 FROM records WHERE tbl='rp_catalog_dir' AND key=?", (key,)).fetchone()
        rows = db.execute("SELECT 1 FROM records WHERE tbl='rp_catalog' AND key >= ? AND key < ? LIMIT 1",
                          (key + ":", key + ";")).fetchone()
        return d is not None and rows is None

    end = time.time() + 1800
    while not done():
        if time.time() > end:
            sys.exit("timed out waiting for the conversion to the compact catalogue")
        time.sleep(0.5)
    db.close()


def one_search(search, filters, stop):
    t0 = time.perf_counter()
    job = search.start_search_job(SearchScope={"BackupResourceTypes": ["EBS"]}, ItemFilters=filters)
    jid = job["SearchJobIdentifier"]
    wait("the first page", lambda: search.list_search_job_results(SearchJobIdentifier=jid, MaxResults=100)["Results"])
    first = time.perf_counter() - t0
    if stop:
        try:
            search.stop_search_job(SearchJobIdentifier=jid)
        except search.exceptions.ConflictException:
            pass  # it had already read everything: COMPLETED

    wait("the end", lambda: search.get_search_job(SearchJobIdentifier=jid)["Status"] not in ("RUNNING", "STOPPING"))
    total = time.perf_counter() - t0
    j = search.get_search_job(SearchJobIdentifier=jid)
    assert j["Status"] in (("STOPPED", "COMPLETED") if stop else ("COMPLETED",)), j
    return first, total, j["CurrentSearchProgress"], j["Status"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary")
    args = ap.parse_args()
    binary = args.binary
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-server"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "coffer")
    with tempfile.TemporaryDirectory(prefix="coffer-search-bench-") as work:
        needle, rp_id = seed(work, binary, args.files)
        t = time.time()
        proc, endpoint = start(binary, work)
        try:
            wait_converted(work, rp_id)
            print(f"converted {args.files + 1} JSON catalogue rows to the compact catalogue in {time.time() - t:.1f} s")
            _, search = clients(endpoint)
            cases = {
                # Stopped once its first page is there (matching half a million files is
                # not what is measured); the needle's search runs to the end.
                "*.txt (every other file)": ({"EBSItemFilters": [{"FilePaths": [{"Operator": "ENDS_WITH", "Value": ".txt"}]}]}, True),
                "needle (last file), EQUALS_TO": ({"EBSItemFilters": [{"FilePaths": [{"Operator": "EQUALS_TO", "Value": needle}]}]}, False),
                "needle (last file's name), CONTAINS": ({"EBSItemFilters": [{"FilePaths": [{"Operator": "CONTAINS", "Value": needle.rsplit("/", 1)[1]}]}]}, False),
            }
            for name, (filters, stop) in cases.items():
                firsts, totals, ends = [], [], []
                for _ in range(args.runs):
                    first, total, progress, status = one_search(search, filters, stop)
                    firsts.append(first)
                    totals.append(total)
                    ends.append(status)
                print(f"{name}: first page median {statistics.median(firsts):.3f} s "
                      f"(runs {', '.join(f'{x:.3f}' for x in firsts)}); ended ({'/'.join(ends)}) median {statistics.median(totals):.3f} s; "
                      f"scanned {progress['ItemsScannedCount']}, matched {progress['ItemsMatchedCount']}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
