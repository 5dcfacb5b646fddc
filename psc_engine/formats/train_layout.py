"""Training data: the original train layout, read from folders or from packed tar shards.

Train layout, per sample NNNN, in the order of the original code: eight views of one person
turning round, VIEWS = right, front, left, back, mid0..mid3, where reference view k turns into
view (k + 1) % 4 through mid k (mid0: right->front, mid1: front->left, mid2: left->back,
mid3: back->right). Files: `<view>_img/NNNN.jpg` and `<view>_sg/NNNN.png` per view,
`joint/NNNN.csv` (the 8 poses in VIEWS order) and `joint_interpolation/NNNN.csv` (the 4
reference views at t = 0 in that order, then two in-between poses per transition right->front,
front->left, left->back, back->right, each with its t: rows 4 + 2k and 5 + 2k belong to
transition k).

What a folder holds:
- the original release's folders have neither `layout.json` nor `.done/`; they are read as the
  original layout;
- the data generator's folders have `layout.json` (view order, whether images are present) and
  a completion marker `.done/NNNN` per sample, written last, so a half-written sample is never
  read. A generator folder without `layout.json`, or one whose `layout.json` records another
  view order, holds the older order of an earlier generator: it is refused, with the command
  that converts it (`scripts/convert_layout.py`);
- geometry-only folders (`layout.json` "images": false) have parsings and poses but no
  `<view>_img/`: they feed the nets that need no photos (PM and AA).

Shards (`*.tar`, from `scripts/pack_shards.py`) hold the same relative paths, whole samples and
the folder's `layout.json` per shard, and are read into memory: a 60 MiB shard is a few
hundred samples of JPEG and PNG bytes.
"""
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import PSCError
from .images import check_parsing
from .poses import parse_pose_csv

VIEWS = ("right", "front", "left", "back", "mid0", "mid1", "mid2", "mid3")
REFERENCE_VIEWS = VIEWS[:4]
# The views in turning order: mid k lies between reference view k and reference view k + 1.
RING = ("right", "mid0", "front", "mid1", "left", "mid2", "back", "mid3")
# Transition k: (from, to, rows of joint_interpolation holding its two in-between poses).
TRANSITIONS = tuple((REFERENCE_VIEWS[k], REFERENCE_VIEWS[(k + 1) % 4], slice(4 + 2 * k, 6 + 2 * k)) for k in range(4))
LAYOUT_FILE = "layout.json"
CONVERT = "convert it first: python scripts/convert_layout.py OLD_DIR NEW_DIR (or --in-place DIR)"


def sample_files(stem, images=True):
    files = [f"{v}_img/{stem}.jpg" for v in VIEWS] if images else []
    return files + [f"{v}_sg/{stem}.png" for v in VIEWS] + [f"joint/{stem}.csv", f"joint_interpolation/{stem}.csv"]


def layout_images(record, generator, where):
    """Check a folder's or shard's layout record (the parsed layout.json, or None); returns
    whether its samples have images. `generator`: the folder has the generator's `.done/`."""
    if record is None:
        if generator:
            raise PSCError(f"a data-generator folder without {LAYOUT_FILE} holds the older view order "
                           f"(front, left, back, right); {CONVERT}", where)
        return True  # the original release's own layout
    if not isinstance(record, dict):
        raise PSCError(f"{LAYOUT_FILE} is not a JSON object", where)
    if record.get("layout", "train") != "train":
        raise PSCError(f"{LAYOUT_FILE} says this is a {record.get('layout')}-layout folder, not the train layout", where)
    views = record.get("views")
    if record.get("view_order") != "original" or (views is not None and tuple(views) != VIEWS):
        raise PSCError(f"{LAYOUT_FILE} records the view order {record.get('view_order')!r} "
                       f"({', '.join(views or [])}), not the original ({', '.join(VIEWS)}); {CONVERT}", where)
    return bool(record.get("images", True))


def _parse_layout(data, where):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PSCError(f"{LAYOUT_FILE} is not readable JSON ({e})", where) from None


@dataclass
class Sample:
    """One decoded person: images (8, 256, 256, 3) uint8 (None for a geometry-only sample) and
    parsings (8, 256, 256) uint8 in VIEWS order, poses (8, 18, 2) in VIEWS order, interp_t (12,)
    and interp_poses (12, 18, 2)."""

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
    """All complete samples under the given folders and/or tar shards, held as encoded bytes (shards)
    or paths (folders). Sample i: `stems[i]`, from `sources[source[i]]`, with images if `has_images[i]`."""

    def __init__(self, sources):
        given = [sources] if isinstance(sources, (str, Path)) else list(sources)
        self.sources, self._files, self.stems, self.source, self.has_images = [], [], [], [], []
        for source in given:
            self._add(Path(source))
        if not self.stems:
            raise PSCError("no complete train-layout samples (right_img/, ..., right_sg/, ..., joint/, "
                           "joint_interpolation/)", ", ".join(map(str, given)))
        self.geometry_only = [i for i, has in enumerate(self.has_images) if not has]  # indices
        self.with_images = [i for i, has in enumerate(self.has_images) if has]

    def _add(self, source):
        if source.is_dir() and any(source.glob("*.tar")) and not (source / "joint").is_dir():
            for shard in sorted(source.glob("*.tar")):
                self._add(shard)
            return
        if source.is_dir():
            done_dir = source / ".done"
            record = _parse_layout((source / LAYOUT_FILE).read_bytes(), source) if (source / LAYOUT_FILE).is_file() else None
            images = layout_images(record, done_dir.is_dir(), source)
            done = {p.name for p in done_dir.iterdir()} if done_dir.is_dir() else None
            files = {}
            for folder in [source / f"{v}_{k}" for v in VIEWS for k in ("img", "sg")] + [source / "joint", source / "joint_interpolation"]:
                if folder.is_dir():
                    for p in folder.iterdir():
                        if not p.name.startswith(".") and (done is None or p.stem in done):
                            files[f"{folder.name}/{p.name}"] = p
        elif source.suffix == ".tar" and source.is_file():
            try:
                with tarfile.open(source) as tar:
                    files = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}
            except tarfile.TarError as e:
                raise PSCError(f"not a readable tar shard ({e})", source) from None
            if LAYOUT_FILE not in files:
                raise PSCError(f"a shard without {LAYOUT_FILE} was packed from a folder in the older view order; "
                               f"{CONVERT}, then pack it again", source)
            images = layout_images(_parse_layout(files.pop(LAYOUT_FILE), source), True, source)
        else:
            raise PSCError("not a train-layout folder or a .tar shard", source)
        stems = sorted({Path(p).stem for p in files if p.startswith("joint/")})
        complete = [s for s in stems if all(f in files for f in sample_files(s, images))]
        self.sources.append(source)
        self._files.append(files)
        self.stems += complete
        self.source += [len(self.sources) - 1] * len(complete)
        self.has_images += [images] * len(complete)

    def __len__(self):
        return len(self.stems)

    def require_images(self, what):
        """Refuse geometry-only samples where `what` needs photos."""
        if self.geometry_only:
            where = self.sources[self.source[self.geometry_only[0]]]
            raise PSCError(f"geometry-only data ({LAYOUT_FILE} images: false) cannot feed {what}, which needs "
                           "photos; give it to PM or AA only", where)

    def _bytes(self, i, rel):
        v = self._files[self.source[i]][rel]
        return v.read_bytes() if isinstance(v, Path) else v

    def image(self, i, view):
        """(256, 256, 3) uint8 of one view: only the views a training pair needs are decoded."""
        rel = f"{view}_img/{self.stems[i]}.jpg"
        if not self.has_images[i]:
            raise PSCError(f"sample {self.stems[i]} is geometry-only: it has no {rel}", self.sources[self.source[i]])
        img = _decode_image(self._bytes(i, rel), rel, "rgb")
        if img.shape != (256, 256, 3):
            raise PSCError(f"image is {img.shape[1]}x{img.shape[0]}, expected 256x256", rel)
        return img

    def parsing(self, i, view):
        rel = f"{view}_sg/{self.stems[i]}.png"
        return _decode_image(self._bytes(i, rel), rel, "parsing")

    def poses(self, i):
        """(poses (8, 18, 2) in VIEWS order, interp_t (12,), interp_poses (12, 18, 2))."""
        stem = self.stems[i]
        _, poses = _decode_csv(self._bytes(i, f"joint/{stem}.csv"), f"joint/{stem}.csv")
        ts, interp = _decode_csv(self._bytes(i, f"joint_interpolation/{stem}.csv"), f"joint_interpolation/{stem}.csv")
        if poses.shape[0] != 8 or interp.shape[0] != 12:
            raise PSCError(f"expected 8 poses and 12 interpolation poses, got {poses.shape[0]} and {interp.shape[0]}",
                           f"joint/{stem}.csv")
        return poses, ts, interp

    def __getitem__(self, i):
        poses, ts, interp = self.poses(i)
        images = np.stack([self.image(i, v) for v in VIEWS]) if self.has_images[i] else None
        return Sample(self.stems[i], images, np.stack([self.parsing(i, v) for v in VIEWS]), poses, ts, interp)
