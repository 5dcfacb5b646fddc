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


def loss_plot(rows, path, width=640, height=360):
    """A PNG line plot of the training loss (raw in grey, a running mean in blue), log scale."""
    from .images import write_png

    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    losses = np.array([float(r["loss"]) for r in rows if float(r["loss"]) > 0])
    if len(losses) >= 2:
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        lo, hi = np.log(losses.min()), np.log(losses.max()) + 1e-9
        pad = 40

        def pts(values, offset=0):
            xs = pad + (np.arange(len(values)) + offset) / max(len(losses) - 1, 1) * (width - 2 * pad)
            ys = height - pad - (np.log(values) - lo) / (hi - lo) * (height - 2 * pad)
            return list(zip(xs.tolist(), ys.tolist()))

        d.line(pts(losses), fill=(190, 190, 190))
        d.line(pts(smooth, (k - 1) / 2), fill=(30, 80, 200), width=2)
        d.rectangle([pad, pad, width - pad, height - pad], outline=(0, 0, 0))
        d.text((pad, 10), f"loss (log scale) {losses.max():.3g} .. {losses.min():.3g}, {len(losses)} steps", fill=(0, 0, 0))
    write_png(path, np.asarray(img), compress_level=6)
