#!/usr/bin/env python3
"""Writes crates/coffer-api/src/sigv4/botocore_vectors.json: requests signed by botocore's own
SigV4 signer (the one boto3 and the AWS CLI use) on paths and queries where SDKs normalise
(`//`, `..`, `.`, spaces, unicode, reserved characters, bad percent escapes). Coffer's unit
tests verify every one, so Coffer's canonical request stays what botocore signs.

Run after changing the cases: `pip install botocore && python3 scripts/sigv4-vectors.py`.
"""
import json
import pathlib

import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HOST = "127.0.0.1:9191"

CASES = [
    ("DELETE", "/backup-vaults//access-policy", "", b""),
    ("GET", "/a/../backup-vaults/v1", "", b""),
    ("GET", "/backup-vaults/v1/.", "", b""),
    ("GET", "/backup-vaults/./v1/", "", b""),
    ("GET", "/tags/arn%3Aaws%3Abackup%3Aus-east-1%3A111122223333%3Abackup-vault%3Av%20%E2%82%AC", "", b""),
    ("GET", "/tags/arn%3Aaws%3Abackup%3Aus-east-1%3A1%3Abackup-vault%3A%21%2A%27%28%29%3B%40%26%3D%2B%24%2C", "", b""),
    ("GET", "/backup-vaults/", "nextToken=%zz&maxResults=1", b""),
    ("GET", "/backup-vaults/", "maxResults=1&nextToken=a%2Bb", b""),
    ("GET", "/backup-jobs/", "state=COMPLETED&createdAfter=2024-01-01T00%3A00%3A00Z", b""),
    ("PUT", "/backup-vaults/v1", "", b'{"BackupVaultTags":{"k":"v \\u00e9"}}'),
]


def main():
    creds = Credentials(AKID, SECRET)
    out = []
    for method, path, query, body in CASES:
        url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/json"} if body else {}
        req = AWSRequest(method=method, url=url, data=body, headers=headers)
        req.context = {}
        SigV4Auth(creds, "backup", "us-east-1").add_auth(req)
        out.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "body": body.decode(),
                "headers": {k.lower(): v for k, v in req.headers.items()},
                # Verified as if it arrived at the moment it was signed.
                "now": req.headers["X-Amz-Date"],
            }
        )
    target = pathlib.Path(__file__).resolve().parent.parent / "crates/coffer-api/src/sigv4/botocore_vectors.json"
    doc = {"botocore": botocore.__version__, "secret": SECRET, "requests": out}
    target.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(out)} requests to {target}")


if __name__ == "__main__":
    main()
