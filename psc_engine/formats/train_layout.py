"""Training data: the original train layout, read from a folder or from packed tar shards.

Train layout, per sample NNNN: `<view>_img/NNNN.jpg`, `<view>_sg/NNNN.png` for the eight views
of one person turning round, `joint/NNNN.csv` (8 poses: front, left, back, right, mid0..mid3)
and `joint_interpolation/NNNN.csv` (the 4 reference views at t = 0, then two in-between poses
per transition front->left, left->back, back->right, right->front, each with its t).

Shards (`*.tar`, from `scripts/pack_shards.py`) hold the same relative paths, whole samples per
shard, and are read into memory: a 60 MiB shard is a few hundred samples of JPEG and PNG bytes.
A sample counts only when all of its 18 files are there and, in a folder written by the data
generator (which has a `.done/` folder), when its completion marker `.done/NNNN` exists: the
generator writes the marker last, so a half-written sample is never read.
"""
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import PSCError
from .images import check_parsing
from .poses import parse_pose_csv

REFERENCE_VIEWS = ("front", "left", "back", "right")
VIEWS = REFERENCE_VIEWS + ("mid0", "mid1", "mid2", "mid3")
# The views in turning order: each mid view lies between two reference views.
RING = ("front", "mid0", "left", "mid1", "back", "mid2", "right", "mid3")


def sample_files(stem):
    files = [f"{v}_img/{stem}.jpg" for v in VIEWS] + [f"{v}_sg/{stem}.png" for v in VIEWS]
    return files + [f"joint/{stem}.csv", f"joint_interpolation/{stem}.csv"]


@dataclass
class Sample:
    """One decoded person: images (8, 256, 256, 3) uint8 and parsings (8, 256, 256) uint8 in VIEWS
    order, poses (8, 18, 2) in VIEWS order, interp_t (12,) and interp_poses (12, 18, 2)."""

    stem: str
    images: np.ndarray
    parsings: np.ndarray
    poses: np.ndarray
    interp_t: np.ndarray
    interp_poses: np.ndarray

    def view(self, name):
        return VIEWS.index(name)


def _decode_csv(data, name):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PSCError("not a text CSV file", name) from None
    return parse_pose_csv(text, name)


def _decode_image(data, name, mode):
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        raise PSCError("not a readable image", name) from None
    if mode == "parsing":
        arr = np.asarray(img.convert("RGB"))[..., 0] if img.mode not in ("L", "P") else np.asarray(img)
        return check_parsing(arr, name)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


class TrainSet:
    """All complete samples under the given folders and/or tar shards, held as encoded bytes."""

    def __init__(self, sources):
        self.files = {}  # relative path -> bytes (shards) or Path (folders)
        for source in [sources] if isinstance(sources, (str, Path)) else sources:
            self._add(Path(source))
        stems = {Path(p).stem for p in self.files if p.startswith("joint/")}
        self.stems = sorted(s for s in stems if all(f in self.files for f in sample_files(s)))
        if not self.stems:
            raise PSCError("no complete train-layout samples (front_img/, ..., joint/, joint_interpolation/)",
                           ", ".join(map(str, [sources] if isinstance(sources, (str, Path)) else sources)))

    def _add(self, source):
        if source.is_dir() and any(source.glob("*.tar")) and not (source / "joint").is_dir():
            for shard in sorted(source.glob("*.tar")):
                self._add(shard)
        elif source.is_dir():
            done = {p.name for p in (source / ".done").iterdir()} if (source / ".done").is_dir() else None
            for folder in [source / f"{v}_{k}" for v in VIEWS for k in ("img", "sg")] + [source / "joint", source / "joint_interpolation"]:
                if folder.is_dir():
                    for p in folder.iterdir():
                        if not p.name.startswith(".") and (done is None or p.stem in done):
                            self.files[f"{folder.name}/{p.name}"] = p
        elif source.suffix == ".tar" and source.is_file():
            try:
                with tarfile.open(source) as tar:
                    for member in tar:
                        if member.isfile():
                            self.files[member.name.removeprefix("./")] = tar.extractfile(member).read()
            except tarfile.TarError as e:
                raise PSCError(f"not a readable tar shard ({e})", source) from None
        else:
            raise PSCError("not a train-layout folder or a .tar shard", source)

    def __len__(self):
        return len(self.stems)

    def _bytes(self, rel):
        v = self.files[rel]
        return v.read_bytes() if isinstance(v, Path) else v

    def image(self, i, view):
        """(256, 256, 3) uint8 of one view: only the views a training pair needs are decoded."""
        rel = f"{view}_img/{self.stems[i]}.jpg"
        img = _decode_image(self._bytes(rel), rel, "rgb")
        if img.shape != (256, 256, 3):
            raise PSCError(f"image is {img.shape[1]}x{img.shape[0]}, expected 256x256", rel)
        return img

    def parsing(self, i, view):
        rel = f"{view}_sg/{self.stems[i]}.png"
        return _decode_image(self._bytes(rel), rel, "parsing")

    def poses(self, i):
        """(poses (8, 18, 2) in VIEWS order, interp_t (12,), interp_poses (12, 18, 2))."""
        stem = self.stems[i]
        _, poses = _decode_csv(self._bytes(f"joint/{stem}.csv"), f"joint/{stem}.csv")
        ts, interp = _decode_csv(self._bytes(f"joint_interpolation/{stem}.csv"), f"joint_interpolation/{stem}.csv")
        if poses.shape[0] != 8 or interp.shape[0] != 12:
            raise PSCError(f"expected 8 poses and 12 interpolation poses, got {poses.shape[0]} and {interp.shape[0]}",
                           f"joint/{stem}.csv")
        return poses, ts, interp

    def __getitem__(self, i):
        poses, ts, interp = self.poses(i)
        return Sample(self.stems[i], np.stack([self.image(i, v) for v in VIEWS]),
                      np.stack([self.parsing(i, v) for v in VIEWS]), poses, ts, interp)
