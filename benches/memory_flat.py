#!/usr/bin/env python3
"""Peak memory of `facegpu align`, `embed` and `eval` over 1,000 and 10,000 images: flat means the
10,000-image figure is within noise of the 1,000-image one. Not part of CI (minutes of work).

The inputs are the fixture johns photos (5 people x 11) linked many times under other names, so any
count costs no disk. Standard library only:

    python3 benches/memory_flat.py [--counts 1000,10000] [--fixtures ../shared/fixtures]

Prints one line per run and a JSON summary: the peak resident set size (ru_maxrss of the child, which on
a CPU driver such as llvmpipe includes the GPU's buffers), the seconds, and the images per second.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_run(cmd):
    """Runs cmd in a fresh process; returns (seconds, peak RSS in MB of that process alone)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    )
    t = time.time()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    kb, rc = out.stdout.split()
    if rc != "0":
        sys.exit(f"{' '.join(cmd[:3])}... exited with {rc}")
    return time.time() - t, int(kb) / 1024


def link_photos(src, dst, count, layout):
    """count links to the johns photos: identity folders of 10 (align) or LFW's NAME/NAME_000i layout."""
    photos = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.lower().endswith((".jpg", ".png")))
    names = []
    for i in range(count):
        person = f"person_{i // 10:05d}"
        os.makedirs(os.path.join(dst, person), exist_ok=True)
        ext = os.path.splitext(photos[i % len(photos)])[1]
        name = f"{person}_{i % 10 + 1:04d}{ext}" if layout == "lfw" else f"img_{i % 10:02d}{ext}"
        os.symlink(photos[i % len(photos)], os.path.join(dst, person, name))
        names.append((person, i % 10 + 1))
    return names


def write_pairs(path, people, count):
    """An LFW-format pairs file of 10 folds over `people` identities of 10 images each, 6,000 pairs at
    most (LFW's size), the same people and different people alternating fold by fold."""
    per_fold = min(300, count // 40)
    lines = [f"10 {per_fold}"]
    for fold in range(10):
        for k in range(per_fold):
            p = (fold * per_fold + k) % people
            lines.append(f"person_{p:05d} {k % 5 + 1} {k % 5 + 6}")
        for k in range(per_fold):
            p = (fold * per_fold + k) % people
            q = (p + 1 + k % (people - 1)) % people
            lines.append(f"person_{p:05d} {k % 10 + 1} person_{q:05d} {(k + 3) % 10 + 1}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 20 * per_fold


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "..", "shared", "fixtures"))
    ap.add_argument("--model", default=None, help="default: FIXTURES/facenet-20170512-110547")
    args = ap.parse_args()
    exe = os.path.join(ROOT, "target", "release", "facegpu")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    model = args.model or os.path.join(args.fixtures, "facenet-20170512-110547")
    johns = os.path.join(args.fixtures, "faces", "johns")
    host = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            host = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    adapter = subprocess.run([exe, "info", "--json"], capture_output=True, text=True).stdout.strip()
    results = {"host": host, "cores": os.cpu_count(), "adapter": json.loads(adapter)["name"] if adapter else None, "runs": []}
    for count in [int(c) for c in args.counts.split(",")]:
        work = tempfile.mkdtemp(prefix=f"facegpu-mem-{count}-")
        try:
            raw, aligned, lfw = (os.path.join(work, d) for d in ("raw", "aligned", "lfw"))
            link_photos(johns, raw, count, "folders")
            runs = [("align", [exe, "align", raw, aligned, "--image-size", "160", "--margin", "32"])]
            for name, cmd in runs:
                secs, mb = peak_run(cmd)
                results["runs"].append({"command": name, "images": count, "peak_rss_mb": round(mb, 1), "seconds": round(secs, 1)})
                print(f"{name:6} {count:6} images: peak RSS {mb:7.1f} MB, {secs:7.1f} s, {count / secs:6.1f} images/s", flush=True)
            faces = sorted(os.path.join(d, f) for d, _, fs in os.walk(aligned) for f in fs if f.endswith(".png"))
            link_photos(aligned, lfw, count, "lfw")
            pairs = os.path.join(work, "pairs.txt")
            n_pairs = write_pairs(pairs, count // 10, count)
            runs = [
                ("embed", [exe, "embed", "--model", model, "--out", os.path.join(work, "e.npy"), *faces]),
                ("eval", [exe, "eval", "--model", model, "--lfw-dir", lfw, "--lfw-pairs", pairs, "--json"]),
            ]
            for name, cmd in runs:
                secs, mb = peak_run(cmd)
                n = len(faces) if name == "embed" else count
                results["runs"].append(
                    {"command": name, "images": n, "pairs": n_pairs if name == "eval" else None, "peak_rss_mb": round(mb, 1), "seconds": round(secs, 1)}
                )
                print(f"{name:6} {n:6} images: peak RSS {mb:7.1f} MB, {secs:7.1f} s, {n / secs:6.1f} images/s", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
