#!/usr/bin/env python3
"""Fill a bucket of an S3-compatible file server with many small objects, straight on disk.

s3s-fs (what .ci/s3 runs) serves the files under DATA/BUCKET as the objects of BUCKET (key =
path below it; LastModified = the file's mtime; no side files needed), so writing the files
directly is the fast way to make a 100,000-object bucket: no upload is timed or needed.

The mix resembles a real bucket: 97% of the objects are 1-16 KiB, 3% 16-128 KiB (log-uniform
sizes, about 690 MiB for 100,000 objects); half are text-like (JSON log lines, which compress
about 3x) and half incompressible (images, archives), under five top-level prefixes of 20 x 50
folders each. Deterministic for a given --seed.

  make-bucket.py DIR [--objects 100000] [--seed 1] [--jobs 2]
  make-bucket.py DIR --mutate [--percent 1] [--seed 2]   # rewrite ~1% of the objects
  make-bucket.py DIR --mutate [--percent 1] [--seed 2] --revert   # and back

The second form is the bucket's "next day": a given share of the objects gets new content (and
so a new size and LastModified), for measuring incremental backups. With --revert the same
objects get their first content back (with a new LastModified), so a benchmark can start each
run from the same bucket without copying it.
"""
import argparse
import multiprocessing
import os
import random

CATEGORIES = (("logs", "json", True), ("events", "json", True), ("images", "jpg", False),
              ("thumbs", "png", False), ("exports", "bin", False))
WORDS = ("backup vault plan rule schedule lifecycle recovery point copy restore job window cold "
         "storage retention selection resource tag account region snapshot chunk pack index "
         "encrypt compress verify lock audit report").split()


def key_of(i):
    cat, ext, _ = CATEGORIES[i % len(CATEGORIES)]
    j = i // len(CATEGORIES)
    return "%s/%02d/%02d/obj-%06d.%s" % (cat, j % 20, (j // 20) % 50, i, ext), CATEGORIES[i % 5][2]


def size_of(rng):
    if rng.random() < 0.97:
        return int(2 ** rng.uniform(10, 14))  # 1-16 KiB
    return int(2 ** rng.uniform(14, 17))  # 16-128 KiB


def text(rng, size, i, version):
    out = []
    n = 0
    while n < size:
        line = '{"object": %d, "v": %d, "seq": %d, "msg": "%s", "id": "%08x"}\n' % (
            i, version, len(out), " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))),
            rng.getrandbits(32))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def write(args):
    root, start, stop, seed, version, only = args
    for i in range(start, stop):
        if only is not None and i not in only:
            continue
        rng = random.Random(seed * 1_000_003 + i)
        key, is_text = key_of(i)
        size = size_of(rng)
        body = text(rng, size, i, version) if is_text else rng.randbytes(size)
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--objects", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--mutate", action="store_true")
    p.add_argument("--percent", type=float, default=1.0)
    p.add_argument("--revert", action="store_true")
    p.add_argument("--base-seed", type=int, default=1, help="the seed the bucket was made with")
    a = p.parse_args()
    only = None
    n = a.objects
    if a.mutate:
        n = sum(1 for _, _, fs in os.walk(a.dir) for _ in fs)
        rng = random.Random(a.seed)
        only = frozenset(rng.sample(range(n), max(1, int(n * a.percent / 100))))
    step = 2000
    seed, version = a.seed, (a.seed if a.mutate else 0)
    if a.revert:
        seed, version = a.base_seed, 0
    work = [(a.dir, s, min(s + step, n), seed, version, only)
            for s in range(0, n, step)]
    with multiprocessing.Pool(a.jobs) as pool:
        for _ in pool.imap_unordered(write, work):
            pass
    what = "reverted" if a.revert else "rewrote" if a.mutate else "wrote"
    print("%s %d objects" % (what, len(only) if only else n))


if __name__ == "__main__":
    main()
