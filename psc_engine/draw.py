"""Pictures for people: skeletons, coloured parsings and the per-sample "process" strip."""
import numpy as np
from PIL import Image, ImageDraw

from .images import colorize_parsing
from .poses import LIMBS

LIMB_COLOURS = [tuple(int(c) for c in np.array(
    [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
     (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
     (170, 0, 255), (255, 0, 255), (255, 0, 170)])[i]) for i in range(len(LIMBS))]


def draw_skeleton(pose, size=256, background=None):
    """(18, 2) pose (NaN = missing) -> (size, size, 3) uint8 picture of its limbs and joints."""
    img = Image.fromarray(background) if background is not None else Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    pose = np.asarray(pose, dtype=np.float32) * (size / 256)
    ok = ~np.isnan(pose).any(-1)
    for (a, b), colour in zip(LIMBS, LIMB_COLOURS):
        if ok[a] and ok[b]:
            d.line([tuple(pose[a]), tuple(pose[b])], fill=colour, width=max(2, size // 64))
    r = max(2, size // 85)
    for j in np.flatnonzero(ok):
        x, y = pose[j]
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
    return np.asarray(img)


def process_strip(p0, p1, s0, i0, steps, tile=128):
    """One row of tiles: P0, P1, S0, I0, then P_t, S_t, I_t for each step (a list of (pose, parsing, image))."""
    tiles = [draw_skeleton(p0), draw_skeleton(p1), colorize_parsing(s0), i0]
    for pose, parsing, image in steps:
        tiles += [draw_skeleton(pose), colorize_parsing(parsing), image]
    small = [np.asarray(Image.fromarray(t).resize((tile, tile), Image.BILINEAR)) for t in tiles]
    return np.concatenate(small, axis=1)
