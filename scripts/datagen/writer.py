"""Writing samples so that a half-written one is never taken for a good one.

Layouts (psc-method.md, layout.py):
  train: <view>_img/NNNN.jpg, <view>_sg/NNNN.png for the 8 views, joint/NNNN.csv (8 poses:
         right, front, left, back, mid0..mid3), joint_interpolation/NNNN.csv (12 poses).
         Geometry-only samples have no <view>_img files.
  test:  I0/NNNN.jpg (front), S0/NNNN.png, P0/NNNN.csv (front pose), P1/NNNN.csv (the pose
         of the `right` view, turntable angle 90).
Every folder also holds `layout.json` (layout.py) saying which layout and order it is in.

The completion rule, for every reader and packer: sample NNNN of a folder is complete if and
only if the marker file `.done/NNNN` exists. Files of a sample without its marker are
leftovers of an interrupted run and must be ignored; the generator overwrites them.
Commit order: all files are written into `.tmp/NNNN.<pid>/`, the marker (if any, from an
earlier run) is removed, each file is renamed into place (atomic, same filesystem), and the
marker is written last (written to a temp name, then renamed).
"""
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .labels import format_poses

from .layout import VIEWS as TRAIN_VIEWS
TEST_FOLDERS = ("I0", "S0", "P0", "P1")
DONE, TMP = ".done", ".tmp"


def stem_of(index):
    return f"{index:04d}"


def jpeg_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, subsampling=0, optimize=False)
    return buf.getvalue()


def png_bytes(parsing):
    """Class ids repeated in R, G and B, as the original's parsing PNGs."""
    arr = np.repeat(np.asarray(parsing, np.uint8)[..., None], 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def sample_files(result, layout, stem):
    """Rendered sample -> {relative path: bytes} in the given layout."""
    files = {}
    if layout == "train":
        for v in TRAIN_VIEWS:
            if result["images"] is not None:
                files[f"{v}_img/{stem}.jpg"] = jpeg_bytes(result["images"][v])
            files[f"{v}_sg/{stem}.png"] = png_bytes(result["parsings"][v])
        files[f"joint/{stem}.csv"] = format_poses(result["poses8"], [0.0] * 8).encode()
        interp = np.concatenate([result["poses8"][:4], result["interp_poses"]])
        files[f"joint_interpolation/{stem}.csv"] = format_poses(interp, [0.0] * 4 + list(result["interp_ts"])).encode()
    elif layout == "test":
        front, right = TRAIN_VIEWS.index("front"), TRAIN_VIEWS.index("right")
        if result["images"] is not None:
            files[f"I0/{stem}.jpg"] = jpeg_bytes(result["images"]["front"])
        files[f"S0/{stem}.png"] = png_bytes(result["parsings"]["front"])
        files[f"P0/{stem}.csv"] = format_poses(result["poses8"][front:front + 1], [0.0]).encode()
        files[f"P1/{stem}.csv"] = format_poses(result["poses8"][right:right + 1], [0.0]).encode()
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return files


def is_complete(root, stem):
    return (Path(root) / DONE / stem).is_file()


def complete_stems(root):
    d = Path(root) / DONE
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def commit(root, stem, files, meta):
    """Write a sample's files and its marker in the crash-safe order described above."""
    root = Path(root)
    tmp = root / TMP / f"{stem}.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        _write(tmp / rel, data)
    marker = root / DONE / stem
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, root / rel)
    record = dict(meta, files=sorted(files), bytes=sum(len(b) for b in files.values()))
    _write(tmp / "marker.json", json.dumps(record, indent=1, sort_keys=True, default=float).encode())
    os.replace(tmp / "marker.json", marker)
    shutil.rmtree(tmp, ignore_errors=True)


def clean_tmp(root):
    """Remove temp folders of interrupted runs (call only while holding the folder's lock)."""
    shutil.rmtree(Path(root) / TMP, ignore_errors=True)
