#!/usr/bin/env python3
"""Pack complete samples into uncompressed tar shards for training elsewhere.

    python scripts/pack_shards.py DIR --out SHARD_DIR [--max-mib 60]

Shards are `shard-00000.tar`, `shard-00001.tar`, ... each at most --max-mib MiB. Members are
named by their layout-relative paths (`front_img/0001.jpg`, `joint/0001.csv`, ...), a sample
is never split across shards, and only complete samples (with a `.done/NNNN` marker) are
packed. Packing is deterministic (sorted samples, fixed member metadata), so re-packing after
more samples are done rewrites only the last shard and adds new ones. Every shard also holds
the folder's `layout.json` (its view order, whether it has images), so a shard says what it
is; folders of the older layout (no layout.json) must be converted first
(scripts/convert_layout.py). `index.json` beside the shards lists the samples in each shard.
"""
import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path

LAYOUT = "layout.json"
BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads the archive to a whole record


def member_size(nbytes):
    return BLOCK + -(-nbytes // BLOCK) * BLOCK


def tar_size(sizes):
    """Exact size of a USTAR archive holding files of these sizes."""
    raw = sum(member_size(n) for n in sizes) + 2 * BLOCK
    return -(-raw // RECORD) * RECORD


def sample_members(root, stem):
    """A complete sample's files: the list its marker records (relative paths)."""
    marker = json.loads((root / ".done" / stem).read_text())
    return sorted(marker["files"])


def plan(root, max_bytes):
    """Group complete samples into shards: [[(stem, [paths])...], ...]."""
    done = root / ".done"
    stems = sorted(p.name for p in done.iterdir() if not p.name.startswith(".")) if done.is_dir() else []
    base = [(root / LAYOUT).stat().st_size]  # every shard starts with layout.json
    shards, current, sizes = [], [], list(base)
    for stem in stems:
        files = sample_members(root, stem)
        fsizes = [(root / f).stat().st_size for f in files]
        if tar_size(base + fsizes) > max_bytes:
            raise ValueError(f"sample {stem} alone is larger than --max-mib")
        if current and tar_size(sizes + fsizes) > max_bytes:
            shards.append(current)
            current, sizes = [], list(base)
        current.append((stem, files))
        sizes += fsizes
    if current:
        shards.append(current)
    return shards


def write_shard(root, path, samples):
    tmp = path.with_name(path.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for rel in [LAYOUT] + [f for _, files in samples for f in files]:
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(prog="pack_shards", description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-mib", type=float, default=60.0, help="largest shard size in MiB (default 60)")
    a = p.parse_args(argv)
    if not a.dir.is_dir():
        p.exit(2, f"pack_shards: error: {a.dir}: not a folder\n")
    if not a.max_mib > 0:
        p.exit(2, "pack_shards: error: --max-mib must be positive\n")
    if a.out.resolve() == a.dir.resolve():
        p.exit(2, "pack_shards: error: --out must differ from the data folder\n")
    if not (a.dir / LAYOUT).is_file():
        p.exit(2, f"pack_shards: error: {a.dir}: older layout (no {LAYOUT}); convert it first with "
                  f"scripts/convert_layout.py\n")
    try:
        shards = plan(a.dir, int(a.max_mib * 2 ** 20))
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
        p.exit(2, f"pack_shards: error: {a.dir}: {e}\n")
    if not shards:
        p.exit(2, f"pack_shards: error: {a.dir}: no complete samples (.done/NNNN markers)\n")
    a.out.mkdir(parents=True, exist_ok=True)
    index = {}
    for k, samples in enumerate(shards):
        name = f"shard-{k:05d}.tar"
        write_shard(a.dir, a.out / name, samples)
        index[name] = [s for s, _ in samples]
    for old in a.out.glob("shard-*.tar"):  # shards left from a larger earlier packing
        if old.name not in index:
            old.unlink()
    (a.out / "index.json").write_text(json.dumps({"source": str(a.dir), "shards": index}, indent=1))
    total = sum((a.out / n).stat().st_size for n in index)
    n = sum(len(v) for v in index.values())
    print(f"{a.out}: {n} samples in {len(index)} shards, {total / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
