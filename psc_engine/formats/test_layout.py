"""The original release's folder layouts.

Test layout (inference): test/I0/NNNN.jpg, test/S0/NNNN.png, test/P0/NNNN.csv, test/P1/NNNN.csv,
files matched by stem. The train layout is read by `data.py`.
"""
from dataclasses import dataclass
from pathlib import Path

from ..errors import PSCError
from .images import read_image, read_parsing, require_person
from .poses import read_pose_csv, require_joints

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class TestSample:
    stem: str
    image: object  # (256, 256, 3) uint8
    parsing: object  # (256, 256) uint8
    pose0: object  # (18, 2)
    pose1: object  # (18, 2)
    image_path: object = None  # I0's file, for messages


def _by_stem(folder, suffixes):
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes and not p.name.startswith(".")}


def find_test_samples(data_dir):
    """Stem -> {I0, S0, P0, P1} paths. Every stem in I0 needs its P1; a missing S0 or P0 is None
    (the photo nets estimate it, see prepare.py)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PSCError("data folder not found", data_dir)
    folders = {name: data_dir / name for name in ("I0", "S0", "P0", "P1")}
    for name in ("I0", "P1"):
        if not folders[name].is_dir():
            raise PSCError(f"missing sub-folder {name}/ (test layout: I0/, S0/, P0/, P1/)", data_dir)
    images = _by_stem(folders["I0"], IMAGE_SUFFIXES)
    if not images:
        raise PSCError("no images (.jpg/.png) in I0/", folders["I0"])
    found = lambda name, ext: _by_stem(folders[name], (ext,)) if folders[name].is_dir() else {}
    parsings, p0s, p1s = found("S0", ".png"), found("P0", ".csv"), found("P1", ".csv")
    samples = {}
    for stem, image in images.items():
        if stem not in p1s:
            raise PSCError(f"sample {stem!r} has no P1/{stem}.csv (the target pose)", folders["P1"])
        samples[stem] = {"I0": image, "S0": parsings.get(stem), "P0": p0s.get(stem), "P1": p1s[stem]}
    return samples


def load_test_sample(stem, paths):
    """Read one sample; a missing S0 or P0 stays None."""
    parsing = require_person(read_parsing(paths["S0"]), paths["S0"]) if paths["S0"] else None
    pose0 = require_joints(read_pose_csv(paths["P0"])[1][0], paths["P0"]) if paths["P0"] else None
    return TestSample(stem, read_image(paths["I0"]), parsing, pose0, read_pose_csv(paths["P1"])[1][0], paths["I0"])


def load_test_layout(data_dir):
    """Read and check every sample before any output is written."""
    return [load_test_sample(stem, paths) for stem, paths in find_test_samples(data_dir).items()]
