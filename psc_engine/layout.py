"""The original release's folder layouts.

Test layout (inference): test/I0/NNNN.jpg, test/S0/NNNN.png, test/P0/NNNN.csv, test/P1/NNNN.csv,
files matched by stem. The train layout is read by `data.py`.
"""
from dataclasses import dataclass
from pathlib import Path

from .errors import PSCError
from .images import read_image, read_parsing
from .poses import read_pose_csv

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class TestSample:
    stem: str
    image: object  # (256, 256, 3) uint8
    parsing: object  # (256, 256) uint8
    pose0: object  # (18, 2)
    pose1: object  # (18, 2)


def _by_stem(folder, suffixes):
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes and not p.name.startswith(".")}


def find_test_samples(data_dir):
    """Stem -> {I0, S0, P0, P1} paths; every stem in I0 must have the other three."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PSCError("data folder not found", data_dir)
    folders = {name: data_dir / name for name in ("I0", "S0", "P0", "P1")}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise PSCError(f"missing sub-folder {name}/ (test layout: I0/, S0/, P0/, P1/)", data_dir)
    images = _by_stem(folders["I0"], IMAGE_SUFFIXES)
    if not images:
        raise PSCError("no images (.jpg/.png) in I0/", folders["I0"])
    parsings = _by_stem(folders["S0"], (".png",))
    p0s = _by_stem(folders["P0"], (".csv",))
    p1s = _by_stem(folders["P1"], (".csv",))
    samples = {}
    for stem, image in images.items():
        for name, found, ext in (("S0", parsings, ".png"), ("P0", p0s, ".csv"), ("P1", p1s, ".csv")):
            if stem not in found:
                raise PSCError(f"sample {stem!r} has no {name}/{stem}{ext}", folders[name])
        samples[stem] = {"I0": image, "S0": parsings[stem], "P0": p0s[stem], "P1": p1s[stem]}
    return samples


def load_test_sample(stem, paths):
    return TestSample(stem, read_image(paths["I0"]), read_parsing(paths["S0"]),
                      read_pose_csv(paths["P0"])[1][0], read_pose_csv(paths["P1"])[1][0])


def load_test_layout(data_dir):
    """Read and check every sample before any output is written."""
    return [load_test_sample(stem, paths) for stem, paths in find_test_samples(data_dir).items()]
