#!/usr/bin/env python3
"""Crash campaign: kill a real `coffer` with SIGKILL at random moments and check what survives.

Why: Coffer promises that a crash loses no job, no completed recovery point and no vault, and
that interrupted jobs finish after a restart. This script tries to break that promise on a real
server (release build, SigV4 through boto3, 127.0.0.1 only) with data it generates itself.

Each round:
  1. changes the generated sources a little (so backups carry new data), keeps two to four
     vaults alive;
  2. sends a random mix of StartBackupJob, StartCopyJob, StartRestoreJob (into new targets and,
     with overwrite, into targets holding user files), DeleteRecoveryPoint and DeleteBackupVault
     (after deleting its points) while another thread SIGKILLs the server at a random moment
     (during the requests or while the jobs run);
  3. with the server dead, runs `restic check --read-data` (key from `coffer vault-key export`)
     on every vault the round touched;
  4. restarts the server on the same data directory, re-sends the requests whose answer was
     lost (same idempotency token), and waits until every job is final;
  5. checks: no job vanished, every job is final, every COMPLETED backup and copy recorded a
     recovery point that restores byte for byte (content, size, mode, mtime, symlinks) to the
     source as it was when the job was started, every COMPLETED restore (interrupted or not)
     left exactly the recovery point in its target (plus, for overwrite, the user's files),
     deleted points and vaults stay deleted, and no FAILED job.
At the end: waits for queued deletions, kills the server, checks every vault with restic and
that deleted recovery points are gone from their vaults. Writes `summary.json` in the work
directory and prints it; exits 1 when anything failed.

Usage (see docs/crash-campaign.md):
  cargo build --release -p coffer-server
  python3 scripts/crash-campaign.py --rounds 200 --work /tmp/coffer-crash
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions

AKID = "AKIDCRASHCAMPAIGN001"
SECRET = "crash-campaign-secret-key-000000000000001"
ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
RESOURCES = 3

FINAL = {
    "backup": {"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"},
    "copy": {"COMPLETED", "FAILED", "PARTIAL"},
    "restore": {"COMPLETED", "FAILED", "ABORTED"},
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- data


def manifest(root):
    """Every entry under root: kind, mode, size, mtime and content hash (files), link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(st.st_mode & 0o7777))
            else:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = (
                    "file",
                    oct(st.st_mode & 0o7777),
                    st.st_size,
                    int(st.st_mtime),
                    h.hexdigest(),
                )
    return out


def diff(expected, actual, limit=5):
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    parts = []
    if missing:
        parts.append(f"missing {missing[:limit]}")
    if extra:
        parts.append(f"extra {extra[:limit]}")
    if changed:
        parts.append(
            "changed " + "; ".join(f"{k}: want {expected[k]} got {actual[k]}" for k in changed[:limit])
        )
    return ", ".join(parts)


def write_file(path, rng, size, mode=0o644, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    os.chmod(path, mode)
    t = mtime if mtime is not None else time.time() - rng.randrange(10, 10**6)
    os.utime(path, (t, t))


def make_source(root, rng, big_mib):
    os.makedirs(root)
    for i in range(2):
        write_file(os.path.join(root, f"big/blob{i}.bin"), rng, big_mib * (1 << 20) + rng.randrange(4096))
    for i in range(12):
        sub = ["", "a", "a/b", "c"][i % 4]
        write_file(os.path.join(root, sub, f"small{i}.dat"), rng, rng.randrange(1, 64 << 10))
    write_file(os.path.join(root, "empty"), rng, 0)
    write_file(os.path.join(root, "a/run.sh"), rng, 100, mode=0o750)
    os.makedirs(os.path.join(root, "empty-dir"))
    os.symlink("a/run.sh", os.path.join(root, "link-to-run"))


def mutate_source(root, rng, round_no):
    files = [
        os.path.join(d, f)
        for d, _, fs in os.walk(root)
        for f in fs
        if not os.path.islink(os.path.join(d, f))
    ]
    victim = rng.choice(files)
    write_file(victim, rng, rng.randrange(1, 2 << 20), mode=os.lstat(victim).st_mode & 0o7777)
    write_file(os.path.join(root, "gen", f"round{round_no}.bin"), rng, rng.randrange(1, 512 << 10))
    gens = sorted(os.listdir(os.path.join(root, "gen")))
    if len(gens) > 4:
        os.remove(os.path.join(root, "gen", gens[0]))


# ---------------------------------------------------------------- server


class Server:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.data = os.path.join(work, "data")
        self.cfg = os.path.join(work, "coffer.toml")
        self.log_path = os.path.join(work, "server.log")
        self.proc = None
        self.endpoint = None
        self.starts = 0

    def start(self):
        logf = open(self.log_path, "ab")
        offset = logf.tell()
        env = dict(os.environ, COFFER_LOG="info,rustic_core=warn")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data, "--config", self.cfg],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
        )
        logf.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                m = re.search(rb"Coffer listening on (http://127\.0\.0\.1:\d+)", f.read())
            if m:
                self.endpoint = m.group(1).decode()
                self.starts += 1
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"coffer exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.05)
        raise SystemExit("coffer did not start within 60 s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.proc = None

    def client(self):
        return boto3.client(
            "backup",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            config=botocore.config.Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=120,
            ),
        )

    def export_key(self, vault):
        out = subprocess.run(
            [self.binary, "vault-key", "export", "--vault", vault, "--data-dir", self.data, "--account-id", ACCOUNT],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            return None, out.stderr.strip()
        fields = dict(
            (line.split(":", 1)[0].strip(), line.split(":", 1)[1].strip())
            for line in out.stdout.splitlines()
            if ":" in line
        )
        return (fields.get("repository"), fields.get("password")), None


def lost(e):
    """The request's answer never came (the server died under it)."""
    return isinstance(
        e,
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionError,
        ),
    )


def code(e):
    return e.response["Error"]["Code"] if isinstance(e, botocore.exceptions.ClientError) else type(e).__name__


# ---------------------------------------------------------------- campaign


class Campaign:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.rng = random.Random(args.seed)
        self.server = Server(os.path.abspath(args.binary), self.work)
        self.sources = {}  # arn -> path
        self.expected = {}  # arn -> manifest of the source now
        self.vaults = {}  # name -> arn (alive as far as we know)
        self.deleted_vaults = set()
        self.points = {}  # rp arn -> {"vault", "expected", "verified"}
        self.deleted_points = {}  # rp arn -> vault name
        self.jobs = []  # every job started
        self.keys = {}  # vault -> (repo, password)
        self.failures = []
        self.stats = {
            "rounds": 0,
            "kills": 0,
            "kills_during_requests": 0,
            "kills_with_jobs_running": 0,
            "kills_interrupting_jobs": 0,
            "jobs_running_at_kill": 0,
            "jobs": {"backup": 0, "copy": 0, "restore": 0},
            "jobs_final": {},
            "jobs_interrupted_then_completed": {"backup": 0, "copy": 0, "restore": 0},
            "restores_resumed_after_crash": 0,
            "requests_sent_after_restart": 0,
            "recovery_points_deleted": 0,
            "vaults_deleted": 0,
            "recovery_points_verified": 0,
            "restic_checks": 0,
            "seconds": {},
        }

    def fail(self, what):
        log(f"FAILURE: {what}")
        self.failures.append({"round": self.stats["rounds"], "what": what})

    # ---- setup

    def setup(self):
        if os.path.exists(self.work):
            shutil.rmtree(self.work)
        os.makedirs(os.path.join(self.work, "restores"))
        res = []
        for k in range(RESOURCES):
            arn = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-crash{k}"
            path = os.path.join(self.work, "src", f"r{k}")
            make_source(path, self.rng, self.args.big_mib)
            self.sources[arn] = path
            self.expected[arn] = manifest(path)
            res.append(f'[[resources]]\narn = "{arn}"\nsource = "{path}"\nname = "crash{k}"\n')
        with open(self.server.cfg, "w") as f:
            f.write(
                f'[[credentials]]\naccess_key_id = "{AKID}"\nsecret_access_key = "{SECRET}"\n'
                f'account_id = "{ACCOUNT}"\n\n' + "\n".join(res)
            )
        self.server.start()

    # ---- requests

    def create_vault(self, c, name):
        out = c.create_backup_vault(BackupVaultName=name)
        self.vaults[name] = out["BackupVaultArn"]

    def start_job(self, c, job):
        kind, p = job["kind"], job["params"]
        if kind == "backup":
            out = c.start_backup_job(**p)
            job["id"] = out["BackupJobId"]
        elif kind == "copy":
            out = c.start_copy_job(**p)
            job["id"] = out["CopyJobId"]
        else:
            out = c.start_restore_job(**p)
            job["id"] = out["RestoreJobId"]

    def plan_round(self):
        """A random mix of operations on disjoint recovery points and vaults."""
        ops = []
        live_points = [a for a, p in self.points.items() if p["vault"] in self.vaults]
        self.rng.shuffle(live_points)
        vault_names = sorted(self.vaults)
        busy_vaults = set()
        for _ in range(self.rng.randint(1, 3)):
            arn = self.rng.choice(sorted(self.sources))
            vault = self.rng.choice(vault_names)
            busy_vaults.add(vault)
            ops.append(("backup", arn, vault))
        for _ in range(self.rng.randint(0, 2)):
            if not live_points:
                break
            rp = live_points.pop()
            src_vault = self.points[rp]["vault"]
            dests = [v for v in vault_names if v != src_vault]
            if not dests:
                continue
            dest = self.rng.choice(dests)
            busy_vaults.update([src_vault, dest])
            ops.append(("copy", rp, dest))
        for _ in range(self.rng.randint(1, 2)):
            if not live_points:
                break
            rp = live_points.pop()
            busy_vaults.add(self.points[rp]["vault"])
            ops.append(("restore", rp, self.rng.random() < 0.3))
        if live_points and self.rng.random() < 0.6:
            rp = live_points.pop()
            busy_vaults.add(self.points[rp]["vault"])
            ops.append(("delete_point", rp))
        idle = [v for v in vault_names if v not in busy_vaults]
        if idle and len(self.vaults) > 2 and self.rng.random() < 0.35:
            ops.append(("delete_vault", self.rng.choice(idle)))
        self.rng.shuffle(ops)
        return ops

    def make_job(self, op, r):
        token = str(uuid.uuid4())
        if op[0] == "backup":
            _, arn, vault = op
            return {
                "kind": "backup",
                "round": r,
                "resource": arn,
                "vault": vault,
                "expected": self.expected[arn],
                "params": dict(BackupVaultName=vault, ResourceArn=arn, IamRoleArn=ROLE, IdempotencyToken=token),
            }
        if op[0] == "copy":
            _, rp, dest = op
            return {
                "kind": "copy",
                "round": r,
                "rp": rp,
                "vault": dest,
                "expected": self.points[rp]["expected"],
                "params": dict(
                    RecoveryPointArn=rp,
                    SourceBackupVaultName=self.points[rp]["vault"],
                    DestinationBackupVaultArn=self.vaults[dest],
                    IamRoleArn=ROLE,
                    IdempotencyToken=token,
                ),
            }
        _, rp, overwrite = op
        target = os.path.join(self.work, "restores", f"r{r}-{token[:8]}")
        user_files = {}
        meta = {"targetPath": target}
        if overwrite:
            # A target the user already uses: one file of their own, and one at a path the
            # recovery point holds (it gets replaced).
            os.makedirs(target)
            with open(os.path.join(target, "user-notes.txt"), "w") as f:
                f.write(f"user file {token}\n")
            with open(os.path.join(target, "empty"), "w") as f:
                f.write("to be replaced")
            user_files = {k: v for k, v in manifest(target).items() if k == "user-notes.txt"}
            meta["overwrite"] = "true"
        return {
            "kind": "restore",
            "round": r,
            "rp": rp,
            "target": target,
            "user_files": user_files,
            "expected": self.points[rp]["expected"],
            "params": dict(RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata=meta, IdempotencyToken=token),
        }

    def run_ops(self, c, ops, r, pending):
        """Sends the round's requests; what got no answer goes to `pending` (sent again later)."""
        for op in ops:
            try:
                if op[0] in ("backup", "copy", "restore"):
                    job = self.make_job(op, r)
                    self.jobs.append(job)
                    self.stats["jobs"][job["kind"]] += 1
                    try:
                        self.start_job(c, job)
                    except Exception as e:
                        if not lost(e):
                            self.fail(f"{job['kind']} refused: {code(e)} {e}")
                            job["refused"] = True
                            continue
                        pending.append(("job", job))
                elif op[0] == "delete_point":
                    rp = op[1]
                    vault = self.points[rp]["vault"]
                    self.deleted_points[rp] = vault
                    self.stats["recovery_points_deleted"] += 1
                    try:
                        c.delete_recovery_point(BackupVaultName=vault, RecoveryPointArn=rp)
                    except Exception as e:
                        if not lost(e):
                            raise
                        pending.append(("delete_point", rp))
                elif op[0] == "delete_vault":
                    vault = op[1]
                    for rp in [a for a, p in self.points.items() if p["vault"] == vault and a not in self.deleted_points]:
                        self.deleted_points[rp] = vault
                        self.stats["recovery_points_deleted"] += 1
                        pending.append(("delete_point", rp))
                    pending.append(("delete_vault", vault))
                    self.flush_pending(c, pending)
            except Exception as e:
                if lost(e):
                    return
                self.fail(f"request {op} failed: {code(e)} {e}")

    def flush_pending(self, c, pending):
        """Sends again what got no answer. Stops (keeping the rest) if the server is gone."""
        while pending:
            kind, what = pending[0]
            try:
                if kind == "job":
                    self.start_job(c, what)
                elif kind == "delete_point":
                    try:
                        c.delete_recovery_point(BackupVaultName=self.deleted_points[what], RecoveryPointArn=what)
                    except botocore.exceptions.ClientError as e:
                        if code(e) != "ResourceNotFoundException":
                            raise
                elif kind == "delete_vault":
                    try:
                        c.delete_backup_vault(BackupVaultName=what)
                    except botocore.exceptions.ClientError as e:
                        if code(e) != "ResourceNotFoundException":
                            raise
                    self.vaults.pop(what, None)
                    self.deleted_vaults.add(what)
                    self.stats["vaults_deleted"] += 1
            except Exception as e:
                if lost(e):
                    raise
                self.fail(f"{kind} {what if isinstance(what, str) else what['kind']} failed: {code(e)} {e}")
            pending.pop(0)

    def running_jobs(self, c):
        n = 0
        try:
            n += len(c.list_backup_jobs(ByState="RUNNING").get("BackupJobs", []))
            n += len(c.list_copy_jobs(ByState="RUNNING").get("CopyJobs", []))
            n += len(c.list_restore_jobs(ByStatus="RUNNING").get("RestoreJobs", []))
        except Exception:
            return None
        return n

    def describe(self, c, job):
        if job["kind"] == "backup":
            j = c.describe_backup_job(BackupJobId=job["id"])
            return j["State"], j.get("StatusMessage"), j.get("RecoveryPointArn")
        if job["kind"] == "copy":
            j = c.describe_copy_job(CopyJobId=job["id"])["CopyJob"]
            return j["State"], j.get("StatusMessage"), j.get("DestinationRecoveryPointArn")
        j = c.describe_restore_job(RestoreJobId=job["id"])
        return j["Status"], j.get("StatusMessage"), None

    # ---- checks

    def restic_check(self, vault):
        if vault not in self.keys:
            key, err = self.server.export_key(vault)
            if key is None:
                if "holds no data yet" in err:
                    return
                self.fail(f"vault-key export {vault}: {err}")
                return
            self.keys[vault] = key
        repo, password = self.keys[vault]
        out = subprocess.run(
            ["restic", "-r", repo, "check", "--read-data", "--no-lock"],
            capture_output=True,
            text=True,
            env=dict(os.environ, RESTIC_PASSWORD=password, RESTIC_CACHE_DIR=os.path.join(self.work, "restic-cache")),
        )
        self.stats["restic_checks"] += 1
        if out.returncode != 0:
            self.fail(f"restic check --read-data {vault}: {out.stdout[-600:]} {out.stderr[-600:]}")

    def restic_snapshot_tags(self, vault):
        if vault not in self.keys:
            return None
        repo, password = self.keys[vault]
        out = subprocess.run(
            ["restic", "-r", repo, "snapshots", "--json", "--no-lock"],
            capture_output=True,
            text=True,
            env=dict(os.environ, RESTIC_PASSWORD=password, RESTIC_CACHE_DIR=os.path.join(self.work, "restic-cache")),
        )
        if out.returncode != 0:
            return None
        return {t for s in json.loads(out.stdout or "[]") for t in (s.get("tags") or [])}

    def wait_final(self, c, jobs, timeout):
        deadline = time.time() + timeout
        open_jobs = [j for j in jobs if "id" in j and not j.get("final")]
        while open_jobs and time.time() < deadline:
            for job in list(open_jobs):
                try:
                    state, msg, rp = self.describe(c, job)
                except botocore.exceptions.ClientError as e:
                    self.fail(f"{job['kind']} job {job['id']} vanished: {code(e)}")
                    job["final"] = "VANISHED"
                    open_jobs.remove(job)
                    continue
                if state in FINAL[job["kind"]]:
                    job.update(final=state, message=msg, result_rp=rp)
                    open_jobs.remove(job)
            if open_jobs:
                time.sleep(0.2)
        for job in open_jobs:
            self.fail(f"{job['kind']} job {job['id']} not final after {timeout} s")

    def verify_restore(self, job):
        target = job["target"]
        want = dict(job["expected"])
        want.update(job["user_files"])
        got = manifest(target) if os.path.isdir(target) else {}
        d = diff(want, got)
        if d:
            self.fail(f"restore {job['id']} (round {job['round']}) into {target}: {d}")
            return False
        return True

    def verify_point(self, c, rp):
        """Restores a recovery point into a new directory and compares it with its source."""
        target = os.path.join(self.work, "restores", f"verify-{uuid.uuid4().hex[:8]}")
        out = c.start_restore_job(RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={"targetPath": target})
        job = {"kind": "restore", "id": out["RestoreJobId"], "target": target, "user_files": {},
               "expected": self.points[rp]["expected"], "round": self.stats["rounds"]}
        self.wait_final(c, [job], 300)
        if job.get("final") != "COMPLETED":
            self.fail(f"verifying restore of {rp} ended {job.get('final')}: {job.get('message')}")
        elif self.verify_restore(job):
            self.points[rp]["verified"] = True
            self.stats["recovery_points_verified"] += 1
        shutil.rmtree(target, ignore_errors=True)

    def check_round(self, c, jobs):
        for job in jobs:
            if job.get("refused") or "id" not in job:
                continue
            state = job.get("final")
            self.stats["jobs_final"][f"{job['kind']}:{state}"] = self.stats["jobs_final"].get(f"{job['kind']}:{state}", 0) + 1
            interrupted = "interrupted" in (job.get("message") or "")
            if interrupted:
                self.round_interrupted += 1
            if state == "COMPLETED" and interrupted:
                self.stats["jobs_interrupted_then_completed"][job["kind"]] += 1
            if state != "COMPLETED":
                self.fail(f"{job['kind']} job {job['id']} (round {job['round']}) ended {state}: {job.get('message')}")
                continue
            if job["kind"] in ("backup", "copy"):
                rp = job.get("result_rp")
                if not rp:
                    self.fail(f"{job['kind']} job {job['id']} COMPLETED without a recovery point")
                    continue
                try:
                    d = c.describe_recovery_point(BackupVaultName=job["vault"], RecoveryPointArn=rp)
                    if d.get("Status") != "COMPLETED":
                        self.fail(f"recovery point {rp} is {d.get('Status')}")
                except botocore.exceptions.ClientError as e:
                    self.fail(f"recovery point {rp} of job {job['id']} vanished: {code(e)}")
                    continue
                self.points[rp] = {"vault": job["vault"], "expected": job["expected"], "verified": False}
            else:
                self.verify_restore(job)
                shutil.rmtree(job["target"], ignore_errors=True)
        for rp, vault in self.deleted_points.items():
            if vault in self.deleted_vaults:
                continue
            try:
                c.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=rp)
                self.fail(f"deleted recovery point {rp} is back")
            except botocore.exceptions.ClientError as e:
                if code(e) != "ResourceNotFoundException":
                    self.fail(f"describing deleted point {rp}: {code(e)}")
        for v in self.deleted_vaults:
            try:
                c.describe_backup_vault(BackupVaultName=v)
                self.fail(f"deleted vault {v} is back")
            except botocore.exceptions.ClientError as e:
                if code(e) != "ResourceNotFoundException":
                    self.fail(f"describing deleted vault {v}: {code(e)}")
        for rp, p in list(self.points.items()):
            if rp in self.deleted_points:
                del self.points[rp]
                continue
            if not p["verified"]:
                self.verify_point(c, rp)

    # ---- the loop

    def round(self, r):
        c = self.server.client()
        if r > 0 and self.rng.random() < 0.7:
            arn = self.rng.choice(sorted(self.sources))
            mutate_source(self.sources[arn], self.rng, r)
            self.expected[arn] = manifest(self.sources[arn])
        while len(self.vaults) < self.rng.choice([2, 3, 3, 4]):
            self.create_vault(c, f"v{r:04d}-{len(self.vaults)}")
        ops = self.plan_round()
        first_job = len(self.jobs)
        touched = {op[2] for op in ops if op[0] in ("backup", "copy")} | {
            self.points[op[1]]["vault"] for op in ops if op[0] in ("copy", "restore", "delete_point")
        }
        pending = []

        # The killer: a random moment while requests go out or jobs run.
        # A quarter of the kills land among the requests, the rest while the jobs run.
        if self.rng.random() < 0.25:
            delay = self.rng.uniform(0, 0.3)
        else:
            delay = self.rng.uniform(0.3, self.args.max_kill_delay)
        requests_done = threading.Event()
        state = {}
        probe = self.server.client()

        def killer():
            time.sleep(delay)
            state["during_requests"] = not requests_done.is_set()
            state["running"] = self.running_jobs(probe)
            self.server.kill()

        t = threading.Thread(target=killer)
        t.start()
        try:
            self.run_ops(c, ops, r, pending)
            self.flush_pending(c, pending)
        except Exception as e:
            if not lost(e):
                raise
        requests_done.set()
        t.join()
        self.stats["kills"] += 1
        if state.get("during_requests"):
            self.stats["kills_during_requests"] += 1
        if state.get("running"):
            self.stats["kills_with_jobs_running"] += 1
            self.stats["jobs_running_at_kill"] += state["running"]

        t_killed = time.time()
        # The server is dead: the vaults must be consistent as the crash left them (a vault
        # whose deletion may have been accepted is left out: its data may be half removed).
        deleting = {what for kind, what in pending if kind == "delete_vault"}
        for v in sorted(touched):
            if v in self.vaults and v not in deleting:
                self.restic_check(v)

        t_checked = time.time()
        self.server.start()
        c = self.server.client()
        # What got no answer is sent again (same idempotency token) or counted as never sent.
        self.stats["requests_sent_after_restart"] += len(pending)
        self.flush_pending(c, pending)
        jobs = self.jobs[first_job:]
        self.wait_final(c, jobs, self.args.job_timeout)
        t_final = time.time()
        self.round_interrupted = 0
        self.check_round(c, jobs)
        t_end = time.time()
        for k, v in (("restic", t_checked - t_killed), ("recover", t_final - t_checked), ("verify", t_end - t_final)):
            self.stats["seconds"][k] = round(self.stats["seconds"].get(k, 0) + v, 1)
        if self.round_interrupted:
            self.stats["kills_interrupting_jobs"] += 1

    def finish(self):
        time.sleep(3)  # let queued data removals run
        self.server.kill()
        for v in sorted(self.vaults):
            self.restic_check(v)
            tags = self.restic_snapshot_tags(v)
            if tags is None:
                continue
            for rp, vault in self.deleted_points.items():
                if vault == v and f"coffer-rp:{rp.rsplit(':', 1)[-1]}" in tags:
                    self.fail(f"deleted recovery point {rp} still has its snapshot in {v}")
        with open(self.server.log_path, "rb") as f:
            self.stats["restores_resumed_after_crash"] = f.read().count(b"finishing a restore that was interrupted")

    def run(self):
        self.setup()
        started = time.time()
        try:
            for r in range(self.args.rounds):
                if self.args.max_minutes and time.time() - started > self.args.max_minutes * 60:
                    log(f"time budget reached after {r} rounds")
                    break
                self.round(r)
                self.stats["rounds"] = r + 1
                if (r + 1) % 5 == 0 or r == 0:
                    log(
                        f"round {r + 1} ({time.time() - started:.0f} s): jobs {self.stats['jobs']}"
                        f" kills interrupting jobs {self.stats['kills_interrupting_jobs']}"
                        f" during requests {self.stats['kills_during_requests']} failures {len(self.failures)}"
                    )
                self.write_summary(started)
        finally:
            try:
                self.finish()
            finally:
                self.server.kill()
                self.write_summary(started)
        print(json.dumps(self.summary(started), indent=2))
        return 1 if self.failures else 0

    def summary(self, started):
        return {
            "seed": self.args.seed,
            "minutes": round((time.time() - started) / 60, 1),
            "stats": self.stats,
            "failures": self.failures,
        }

    def write_summary(self, started):
        with open(os.path.join(self.work, "summary.json"), "w") as f:
            json.dump(self.summary(started), f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--work", default="/tmp/coffer-crash-campaign", help="work directory (emptied first)")
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "coffer"))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--big-mib", type=int, default=2, help="size of each source's two big files")
    ap.add_argument("--max-kill-delay", type=float, default=3.0, help="seconds; the kill lands in [0, this]")
    ap.add_argument("--job-timeout", type=float, default=300)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop after this long (0: no limit)")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("restic is needed (apt-get install restic)")
    sys.exit(Campaign(args).run())


if __name__ == "__main__":
    main()
