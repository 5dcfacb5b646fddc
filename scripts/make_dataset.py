#!/usr/bin/env python3
"""Render synthetic PSC training data: people on a turntable, with exact parsing and joints.

    python scripts/make_dataset.py --out DIR --split train|test|heldout --count N
        [--start K] [--resolution 256] [--samples 32] [--workers 2] [--layout train|test] [--log FILE]
        [--style photo|classic] [--framing photo|full] [--geometry-only]

Needs the optional `data` dependencies (bpy==5.0.1, anny). Resumable: complete samples
(`DIR/.done/NNNN`) are skipped. See scripts/datagen/README.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse(argv):
    p = argparse.ArgumentParser(prog="make_dataset", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--split", required=True, choices=["train", "test", "heldout"])
    p.add_argument("--count", required=True, type=int, help="number of samples")
    p.add_argument("--start", type=int, default=0, help="first sample index (default 0)")
    p.add_argument("--resolution", type=int, default=256, help="image size in pixels (64..1024, default 256)")
    p.add_argument("--samples", type=int, default=32, help="Cycles samples per pixel (default 32)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--layout", choices=["train", "test"], default=None,
                   help="folder layout (default: test for --split test, else train)")
    p.add_argument("--log", type=Path, default=None, help="also append progress lines to this file")
    p.add_argument("--style", choices=["photo", "classic"], default="photo",
                   help="photo: product-photo studio and shop garments (default); classic: generator version 1's "
                        "look (its seeds give version 1's pixels and labels, in the original order)")
    p.add_argument("--framing", choices=["photo", "full"], default=None,
                   help="photo: full body and knee-up/thigh-up crops (default for --style photo); full: full body "
                        "(default for --style classic)")
    p.add_argument("--geometry-only", action="store_true",
                   help="parsings and joints only: no Cycles image pass, no <view>_img folders")
    a = p.parse_args(argv)
    checks = [
        (a.count >= 1, "--count: must be at least 1"),
        (0 <= a.start <= 9999 and a.start + a.count <= 10000, "--start/--count: indices must stay within 0..9999"),
        (64 <= a.resolution <= 1024, "--resolution: must be between 64 and 1024"),
        (1 <= a.samples <= 4096, "--samples: must be between 1 and 4096"),
        (1 <= a.workers <= 64, "--workers: must be between 1 and 64"),
        (not a.out.exists() or a.out.is_dir(), f"--out: {a.out} exists and is not a folder"),
        (not (a.out / ".done").is_dir() or (a.out / "layout.json").exists(),
         f"--out: {a.out} holds samples of the older layout (no layout.json); convert it with "
         f"scripts/convert_layout.py or use another folder"),
    ]
    for ok, msg in checks:
        if not ok:
            p.exit(2, f"make_dataset: error: {msg}\n")
    a.layout = a.layout or ("test" if a.split == "test" else "train")
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    import importlib.util

    # Only look the packages up: importing bpy here would put Blender's internal module paths
    # on sys.path, which the spawned workers inherit and then import the wrong "bpy" from.
    for name in ("bpy", "anny"):
        if importlib.util.find_spec(name) is None:
            sys.exit(f"make_dataset: error: {name} is not installed (pip install -e .[data])")
    from datagen import batch

    log = batch.log_to(a.log)
    try:
        return batch.run(a.out, a.split, a.layout, a.start, a.count, a.workers, a.resolution, a.samples, log,
                         style=a.style, framing=a.framing, images=not a.geometry_only)
    except (RuntimeError, OSError) as e:
        sys.exit(f"make_dataset: error: {e}")


if __name__ == "__main__":
    sys.exit(main())
