#!/usr/bin/env python3
"""Draw a PNG grid of generated samples so a person can look at the data.

    python scripts/contact_sheet.py DIR [--out sheet.png] [--count K] [--tile 128] [--start S]

Train layout: per sample three rows (image, coloured parsing, skeleton over the image), one
column per view in the order the person turns (right, mid0, front, mid1, left, mid2, back,
mid3); geometry-only folders (no images) get two rows (parsing, skeleton over the parsing).
Test layout: one row per sample (I0, S0, P0 over I0, P1). Only complete samples (those with
a `.done/NNNN` marker) are drawn. Older folders (no layout.json) must be converted first
(scripts/convert_layout.py).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen.layout import VIEWS as CSV_ORDER, read_layout  # noqa: E402

TURN = ("right", "mid0", "front", "mid1", "left", "mid2", "back", "mid3")


def _load(path, size):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.NEAREST))


def _parsing(path, size):
    from psc_engine.formats.images import colorize_parsing

    with Image.open(path) as im:
        ids = np.asarray(im.convert("RGB"))[..., 0]
    return np.asarray(Image.fromarray(colorize_parsing(ids)).resize((size, size), Image.NEAREST))


def _skeleton(pose, background, size):
    from psc_engine.formats.draw import draw_skeleton

    bg = np.asarray(Image.fromarray(background).resize((256, 256), Image.BILINEAR))
    return np.asarray(Image.fromarray(draw_skeleton(pose, background=bg)).resize((size, size), Image.BILINEAR))


def _label(tile, text):
    img = Image.fromarray(tile)
    ImageDraw.Draw(img).text((3, 2), text, fill=(255, 255, 0))
    return np.asarray(img)


def train_rows(root, stem, size, images=True):
    from psc_engine.formats.poses import read_pose_csv

    _, poses = read_pose_csv(root / "joint" / f"{stem}.csv")
    imgs, parts, skels = [], [], []
    for v in TURN:
        sg = _parsing(root / f"{v}_sg" / f"{stem}.png", size)
        img = _load(root / f"{v}_img" / f"{stem}.jpg", size) if images else sg
        imgs.append(_label(img, f"{stem} {v}"))
        parts.append(sg if images else _label(sg, f"{stem} {v}"))
        skels.append(_skeleton(poses[CSV_ORDER.index(v)], img, size))
    return [np.concatenate(r, 1) for r in ((imgs, parts, skels) if images else (parts, skels))]


def test_rows(root, stem, size):
    from psc_engine.formats.poses import read_pose_csv

    img = _load(root / "I0" / f"{stem}.jpg", size)
    p0 = read_pose_csv(root / "P0" / f"{stem}.csv")[1][0]
    p1 = read_pose_csv(root / "P1" / f"{stem}.csv")[1][0]
    black = np.zeros_like(img)
    return [np.concatenate([_label(img, stem), _parsing(root / "S0" / f"{stem}.png", size),
                            _skeleton(p0, img, size), _skeleton(p1, black, size)], 1)]


def main(argv=None):
    p = argparse.ArgumentParser(prog="contact_sheet", description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("sheet.png"))
    p.add_argument("--count", type=int, default=6, help="samples to draw (default 6)")
    p.add_argument("--start", type=int, default=0, help="skip this many complete samples first")
    p.add_argument("--tile", type=int, default=128, help="tile size in pixels (default 128)")
    a = p.parse_args(argv)
    if not a.dir.is_dir():
        p.exit(2, f"contact_sheet: error: {a.dir}: not a folder\n")
    if a.count < 1 or a.tile < 32 or a.start < 0:
        p.exit(2, "contact_sheet: error: --count must be >= 1, --tile >= 32, --start >= 0\n")
    done = a.dir / ".done"
    stems = sorted(x.name for x in done.iterdir() if not x.name.startswith(".")) if done.is_dir() else []
    stems = stems[a.start:a.start + a.count]
    if not stems:
        p.exit(2, f"contact_sheet: error: {a.dir}: no complete samples (.done/NNNN markers)\n")
    try:
        rec = read_layout(a.dir)
    except RuntimeError as e:
        p.exit(2, f"contact_sheet: error: {e}\n")
    test = (a.dir / "I0").is_dir() or (a.dir / "S0").is_dir()
    if rec is None and not test:
        p.exit(2, f"contact_sheet: error: {a.dir}: older layout (no layout.json); convert it with "
                  f"scripts/convert_layout.py\n")
    if test and rec is not None and not rec.get("images", True):
        p.exit(2, f"contact_sheet: error: {a.dir}: a geometry-only test-layout folder has no I0 images to draw\n")
    images = rec is None or rec.get("images", True)
    rows = []
    for stem in stems:
        rows += test_rows(a.dir, stem, a.tile) if test else train_rows(a.dir, stem, a.tile, images)
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.concatenate(rows[:-1], 0)
    Image.fromarray(sheet).save(a.out, optimize=True)
    print(f"{a.out}: {len(stems)} samples, {sheet.shape[1]}x{sheet.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
