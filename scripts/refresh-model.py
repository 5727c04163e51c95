#!/usr/bin/env python3
"""Refresh the vendored AWS service models from the botocore package on PyPI.

The models are the source of truth for Coffer's protocol layer (see docs/architecture.md). This
script downloads the pinned botocore wheel and, for each service Coffer answers on its endpoint
(AWS Backup, AWS Backup Search, and STS for the GetCallerIdentity call clients make first), takes
`service-2.json` and `paginators-1.json`, strips every `documentation` string (they are long,
change often and carry no wire behaviour), and writes them to model/<service>/ with stable
formatting.

  scripts/refresh-model.py [--version X.Y.Z]

After a refresh run `python3 scripts/codegen.py` to regenerate crates/coffer-api/src/generated.
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
MODELS = os.path.join(HERE, "..", "model")
# (directory under model/, botocore service name, API version)
SERVICES = [
    ("backup", "backup", "2018-11-15"),
    ("backupsearch", "backupsearch", "2018-05-10"),
    ("sts", "sts", "2011-06-15"),
]


def strip_docs(value):
    if isinstance(value, dict):
        return {k: strip_docs(v) for k, v in value.items()
                if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [strip_docs(v) for v in value]
    return value


def read_member(zf, prefix, name):
    names = zf.namelist()
    if prefix + name in names:
        return json.loads(zf.read(prefix + name))
    if prefix + name + ".gz" in names:
        return json.loads(gzip.decompress(zf.read(prefix + name + ".gz")))
    sys.exit(f"{prefix}{name} not found in the botocore wheel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default=PINNED)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "-d", tmp, f"botocore=={args.version}"], check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as zf:
            for directory, name, version in SERVICES:
                prefix = f"botocore/data/{name}/{version}/"
                service = strip_docs(read_member(zf, prefix, "service-2.json"))
                paginators = read_member(zf, prefix, "paginators-1.json")
                out = os.path.join(MODELS, directory)
                os.makedirs(out, exist_ok=True)
                for file, doc in (("service-2.json", service),
                                  ("paginators-1.json", paginators)):
                    with open(os.path.join(out, file), "w") as f:
                        json.dump(doc, f, indent=1, sort_keys=True)
                        f.write("\n")
                with open(os.path.join(out, "VERSION"), "w") as f:
                    f.write(f"botocore {args.version}\n")
                print(f"model/{directory} refreshed from botocore {args.version}: "
                      f"{len(service['operations'])} operations, "
                      f"{len(service['shapes'])} shapes")


if __name__ == "__main__":
    main()
