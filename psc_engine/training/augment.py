"""Augmentation that keeps labels right, applied to whole batches in torch.

- Horizontal flip: mirror images and parsings, mirror x and swap each left joint with its right
  twin (a mirrored right wrist is a left wrist); parsing classes stay as they are.
- Small scale and shift: one affine per image; images resampled bilinearly, parsings by nearest
  neighbour, joints by the same affine, so all three stay aligned.
- Garment colour: a hue rotation of the clothing pixels, the same for source and target (it is
  the same garment).
- Fashion-photo framing (`Augment.framing` of the clips): product photos are mostly knee-up or
  thigh-up, the person filling the frame and cut by its bottom edge. One zoom and shift per
  clip, shared by all its views (the camera does not move within a clip): from just above the
  head to a bottom edge drawn anywhere from below the feet to mid-thigh. It replaces the small
  affine; joints pushed out of the frame become missing (NaN; -1 in a CSV), as in photos, so
  their pose maps have no bump. A share of the framed clips (`Augment.head_cut`) has its top edge
  through the head instead, anywhere from the eyes to the chin, as shop photos often cut it
  (they show the garment, not the face).
- Plain backdrop (`Augment.backdrop`, the parser's photos only): what `prepare` gives the parser
  on a photo, plain grey outside the person mask, where the mask is the true one grown or shrunk
  by up to BACKDROP_SLACK pixels, the way MediaPipe's mask overshoots or misses an edge.
- Camera look (`Augment.photometric` of the clips, photos only): exposure, white balance and a
  slight blur, then sensor noise and JPEG compression. For CT the look of the light and the
  lens (exposure, white balance, blur) is the same on source and target, so CT learns to carry
  the photo's look into its frames; noise and JPEG go on the source only, so CT learns to
  read through them and still renders clean frames.
"""
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from PIL import Image

from ..formats.images import CLOTHING_CLASSES
from ..formats.poses import FLIP_PERM, JOINTS, SIZE
from ..prepare import BACKDROP


@dataclass(frozen=True)
class Augment:
    """What a batch gets beyond flips, small affines and garment colours: the shares of its
    clips reframed as fashion photos and given a camera look (0: none)."""

    framing: float = 0.0
    photometric: float = 0.0
    head_cut: float = 0.0  # of the framed clips
    backdrop: float = 0.0


def as_augment(augment):
    """A batch builder's `augment`: True (flips, affines, garment colours), False/None, or an Augment."""
    if augment is True:
        return Augment()
    return augment or None


def flip_poses(poses):
    """(B, 18, 2) -> mirrored: x -> 255 - x, each right joint swapped with its left twin."""
    poses = poses[:, list(FLIP_PERM)].clone()
    poses[..., 0] = SIZE - 1 - poses[..., 0]
    return poses


def flip_batch(images, parsings, poses):
    """images (B, 3, H, W), parsings (B, H, W) long, poses (B, 18, 2) -> the mirrored three."""
    return images.flip(-1), parsings.flip(-1), flip_poses(poses)


def flip_some(flip, images, parsings, poses):
    """Mirror the items where the (B,) bool mask `flip` is set; the others stay as they are.
    images may be None (a batch of parsings and poses only)."""
    if images is not None:
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return (images, torch.where(flip[:, None, None], parsings.flip(-1), parsings),
            torch.where(flip[:, None, None], flip_poses(poses), poses))


def random_affines(rng, n, scale=0.08, shift=12.0):
    """n (scale, dx, dy): scale in [1 - scale, 1 + scale] about the centre, shift in pixels."""
    return np.stack([1 + rng.uniform(-scale, scale, n), rng.uniform(-shift, shift, n), rng.uniform(-shift, shift, n)], 1)


def apply_affine(images, parsings, poses, affines):
    """Zoom by s about the frame's centre and shift by (dx, dy) pixels; affines (B, 3) float.
    images may be None (a batch of parsings and poses only)."""
    a = torch.as_tensor(affines, dtype=torch.float32, device=parsings.device)
    s, dx, dy = a[:, 0], a[:, 1], a[:, 2]
    b, h, w = parsings.shape
    # grid_sample maps output coords to input coords: in = (out - shift) / s, in normalised units.
    theta = torch.zeros(b, 2, 3, dtype=a.dtype, device=a.device)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = -dx * 2 / w / s
    theta[:, 1, 2] = -dy * 2 / h / s
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    if images is not None:
        images = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    parsings = F.grid_sample(parsings[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                             align_corners=False)[:, 0].long()
    return images, parsings, affine_poses(poses, a)


def affine_poses(poses, affines):
    """The joints' side of apply_affine: (B, 18, 2) poses, (B, 3) (scale, dx, dy)."""
    a = torch.as_tensor(affines, dtype=poses.dtype)
    c = (SIZE - 1) / 2  # pixel-index coordinates: the centre of the frame is at 127.5
    return (poses - c) * a[:, 0, None, None] + c + a[:, None, 1:3]


def hue_rotation(angle):
    """3x3 matrix rotating RGB about the grey axis (keeps luminance roughly, changes hue)."""
    c, s = math.cos(angle), math.sin(angle)
    k = 1 / 3
    r = math.sqrt(k)
    return torch.tensor([
        [c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
        [k * (1 - c) + r * s, c + k * (1 - c), k * (1 - c) - r * s],
        [k * (1 - c) - r * s, k * (1 - c) + r * s, c + k * (1 - c)],
    ])


def jitter_garments(images, parsings, angles):
    """Rotate the hue of clothing pixels by a per-item angle; images in [-1, 1]."""
    mats = torch.stack([hue_rotation(a) for a in angles]).to(images)  # (B, 3, 3)
    rgb01 = (images + 1) / 2
    rotated = torch.einsum("bij,bjhw->bihw", mats, rgb01).clamp(0, 1) * 2 - 1
    cloth = sum(parsings == c for c in CLOTHING_CLASSES)[:, None].to(images.dtype)
    return cloth * rotated + (1 - cloth) * images


def drop_outside(poses):
    """(..., 18, 2) -> the same with joints outside the 256 frame missing (NaN), as in a photo."""
    inside = ((poses >= 0) & (poses <= SIZE - 1)).all(-1, keepdim=True)
    return torch.where(inside, poses, torch.full_like(poses, float("nan")))


HIPS, KNEES, ANKLES = ([JOINTS.index(f"{side}_{part}") for side in "rl"] for part in ("hip", "knee", "ankle"))
HEAD = [JOINTS.index(j) for j in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")]


def person_extent(parsings):
    """(N, H, W) labels -> (top row, bottom row, centre column) of the person (N,) float, NaN
    where a parsing shows nobody."""
    person = parsings > 0
    rows, cols = person.any(2), person.any(1)  # (N, H), (N, W)
    idx = torch.arange(parsings.shape[-1], dtype=torch.float32)
    nan = torch.tensor(float("nan"))
    top = torch.where(rows.any(1), torch.where(rows, idx, torch.inf).amin(1), nan)
    bottom = torch.where(rows.any(1), torch.where(rows, idx, -torch.inf).amax(1), nan)
    left = torch.where(cols, idx, torch.inf).amin(1)
    right = torch.where(cols, idx, -torch.inf).amax(1)
    return top, bottom, torch.where(cols.any(1), (left + right) / 2, nan)


def fashion_framings(rng, poses, parsings=None, share=0.5, head_cut=0.0):
    """One (scale, dx, dy) per clip that frames it as a fashion photo, and which clips got one.

    poses (N, K, 18, 2): the K views of each of N clips; parsings (N, K, H, W) or None (the
    person's top, bottom and centre then come from the joints). Each clip, with probability
    `share`, gets a bottom edge drawn uniformly along the body from just below the feet (full
    body, filling the frame) through just below the knees (knee-up) to mid-thigh (thigh-up),
    legs averaged over both sides and all K views; the top of the head sits 2-8 % of the frame
    below the top edge; the person is centred across, give or take 6 % of the frame. With
    probability `head_cut` a framed clip's top edge cuts the head instead, at a height drawn
    from the eyes (a little above the nose) to the chin (60 % of the way from the nose down to
    the neck), the highest such line over the K views; a clip already cut above the knees keeps
    its bottom edge. Other clips whose legs or head cannot be seen keep no framing. Returns
    (affines (N, 3) float64, framed (N,) bool)."""
    n, k = poses.shape[:2]
    picked = rng.random(n) < share
    u, margin, jitter = rng.uniform(0, 1, n), rng.uniform(0.02, 0.08, n) * SIZE, rng.uniform(-0.06, 0.06, n) * SIZE
    p = poses.numpy().reshape(n, k * 18, 2)[:, :, 1].reshape(n, k, 18)  # y of every joint, (N, K, 18)
    with warnings.catch_warnings():  # nanmean / nanmin of all-missing joints: NaN, and that clip keeps no framing
        warnings.simplefilter("ignore", RuntimeWarning)
        hip, knee, ankle = (np.nanmean(p[:, :, j].reshape(n, -1), 1) for j in (HIPS, KNEES, ANKLES))
        if parsings is not None:
            top, bottom, centre = (v.reshape(n, k).numpy() for v in person_extent(parsings.reshape(n * k, *parsings.shape[2:])))
            top, bottom, centre = np.nanmin(top, 1), np.nanmax(bottom, 1), np.nanmean(centre, 1)
        else:
            head = np.nanmin(p[:, :, HEAD].reshape(n, -1), 1)
            neck = np.nanmean(p[:, :, JOINTS.index("neck")], 1)
            top = head - 0.8 * np.abs(neck - head)
            bottom = ankle + 0.3 * (ankle - knee)
            centre = np.nanmean(poses.numpy()[..., 0].reshape(n, -1), 1)
    feet = bottom + 0.02 * SIZE  # a little floor below the feet
    below_knee = knee + 0.25 * (ankle - knee)
    mid_thigh = (hip + knee) / 2
    edge = np.where(u < 0.5, feet + 2 * u * (below_knee - feet), below_knee + (2 * u - 1) * (mid_thigh - below_knee))
    if head_cut > 0:  # drawn after the others, so that head_cut=0 keeps their draws
        cut, v = rng.random(n) < head_cut, rng.uniform(-0.25, 0.6, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            nose, neck = np.nanmin(p[:, :, JOINTS.index("nose")], 1), np.nanmin(p[:, :, JOINTS.index("neck")], 1)
        line = nose + v * (neck - nose)
        cut &= np.isfinite(line) & (neck - nose > 4)
        top, margin = np.where(cut, line, top), np.where(cut, 0.0, margin)
        edge = np.where(cut & ~np.isfinite(edge), SIZE, edge)  # legs cut off already: the bottom edge stays
    scale = (SIZE - margin) / (edge - top)
    c = (SIZE - 1) / 2
    with np.errstate(invalid="ignore"):
        framed = picked & np.isfinite(scale) & np.isfinite(centre) & (scale > 0.7) & (scale < 3.5)
    scale = np.where(framed, scale, 1.0)
    dy = margin - ((top - c) * scale + c)  # the top of the head -> `margin` px below the edge
    dx = jitter - (centre - c) * scale
    affines = np.stack([scale, np.where(framed, dx, 0.0), np.where(framed, dy, 0.0)], 1)
    return affines, framed


BACKDROP_GREY = BACKDROP / 127.5 - 1  # prepare's backdrop grey in [-1, 1]
BACKDROP_SLACK = 6  # pixels the painted mask is grown or shrunk by, at most


def paint_backdrops(images, labels, rng, share):
    """images (B, 3, H, W) in [-1, 1], labels (B, H, W) -> the images with a `share` of them plain
    grey outside their person mask (labels > 0), grown or shrunk by a random 0..BACKDROP_SLACK
    pixels each: the parser's input in `prepare`, where MediaPipe's mask draws the line."""
    picked = np.flatnonzero(rng.random(len(images)) < share)
    slack = rng.integers(-BACKDROP_SLACK, BACKDROP_SLACK + 1, len(images))
    images = images.clone()
    for i in picked:
        mask = (labels[i] > 0).float()[None, None]  # (1, 1, H, W)
        r = int(abs(slack[i]))
        if r:  # a max-pool grows the mask by r px; a max-pool of its complement shrinks it
            grow = lambda m: F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)
            mask = grow(mask) if slack[i] > 0 else 1 - grow(1 - mask)
        images[i] = torch.where(mask[0] > 0, images[i], torch.full_like(images[i], BACKDROP_GREY))
    return images


def random_looks(rng, n):
    """n camera looks: per-channel gain (exposure x white balance), blur sigma (px, 0: none),
    noise sigma (of the [0, 1] range, 0: none), JPEG quality (0: none)."""
    exposure = np.exp(rng.uniform(-0.25, 0.25, (n, 1)))  # about -0.36 to +0.36 stop
    balance = np.exp(rng.uniform(-0.08, 0.08, (n, 3)))  # warm / cool / tint
    blur = np.where(rng.random(n) < 0.5, rng.uniform(0.3, 1.2, n), 0.0)
    noise = np.where(rng.random(n) < 0.5, rng.uniform(0.004, 0.03, n), 0.0)
    quality = np.where(rng.random(n) < 0.5, rng.integers(30, 91, n), 0)
    return {"gain": exposure * balance, "blur": blur, "noise": noise, "quality": quality}


def gaussian_blur(image, sigma):
    """(3, H, W) image blurred by a separable Gaussian of `sigma` px (reflecting at the edges)."""
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=image.dtype)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    out = F.pad(image[:, None], (r, r, r, r), mode="reflect")  # (3, 1, H + 2r, W + 2r)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1))[:, 0]


def jpeg(image, quality):
    """(3, H, W) image in [-1, 1] through a JPEG encode and decode at `quality`."""
    arr = ((image.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    back = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).to(image.dtype) / 127.5 - 1


def camera_look(images, looks, rng, which, artifacts=True):
    """Give images[i] (B, 3, H, W in [-1, 1]) the look looks[j] for each (i, j) in `which`:
    exposure and white balance, blur, and with `artifacts` noise (drawn from rng) and JPEG."""
    images = images.clone()
    for i, j in which:
        img = ((images[i] + 1) / 2 * torch.from_numpy(looks["gain"][j]).to(images)[:, None, None]).clamp(0, 1) * 2 - 1
        if looks["blur"][j] > 0:
            img = gaussian_blur(img, float(looks["blur"][j]))
        if artifacts and looks["noise"][j] > 0:
            noise = torch.from_numpy(rng.standard_normal(img.shape, dtype=np.float32)).to(img)
            img = (img + 2 * looks["noise"][j] * noise).clamp(-1, 1)
        if artifacts and looks["quality"][j] > 0:
            img = jpeg(img, looks["quality"][j])
        images[i] = img
    return images
