#!/usr/bin/env python3
"""Refresh the vendored AWS Backup service model from the botocore package on PyPI.

The model is the source of truth for Coffer's protocol layer (see docs/architecture.md). This
script downloads the pinned botocore wheel, takes `backup/2018-11-15/service-2.json` and
`paginators-1.json`, strips every `documentation` string (they are long, change often and carry
no wire behaviour), and writes them to model/backup/ with stable formatting.

  scripts/refresh-model.py [--version X.Y.Z]

After a refresh run `cargo run -p coffer-codegen` to regenerate crates/coffer-api/src/generated.
"""
import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

PINNED = "1.44.8"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "model", "backup")
PREFIX = "botocore/data/backup/2018-11-15/"


def strip_docs(value):
    if isinstance(value, dict):
        return {k: strip_docs(v) for k, v in value.items()
                if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [strip_docs(v) for v in value]
    return value


def read_member(zf, name):
    names = zf.namelist()
    if PREFIX + name in names:
        return json.loads(zf.read(PREFIX + name))
    if PREFIX + name + ".gz" in names:
        return json.loads(gzip.decompress(zf.read(PREFIX + name + ".gz")))
    sys.exit(f"{name} not found in the botocore wheel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default=PINNED)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "-d", tmp, f"botocore=={args.version}"], check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as zf:
            service = strip_docs(read_member(zf, "service-2.json"))
            paginators = read_member(zf, "paginators-1.json")
    os.makedirs(OUT, exist_ok=True)
    for name, doc in (("service-2.json", service), ("paginators-1.json", paginators)):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(os.path.join(OUT, "VERSION"), "w") as f:
        f.write(f"botocore {args.version}\n")
    print(f"model/backup refreshed from botocore {args.version}: "
          f"{len(service['operations'])} operations, {len(service['shapes'])} shapes")


if __name__ == "__main__":
    main()
