"""From a plain photo to the engine's inputs: find the person, frame them like the training data,
and estimate the parsing S0 and the pose P0 with the project's own photo nets.

    python -m psc_engine prepare --image photo.jpg --out DIR

writes DIR/I0/<stem>.png, DIR/S0/<stem>.png, DIR/P0/<stem>.csv (the test layout) and
DIR/overlay/<stem>.png (the parsing and skeleton over the photo, for a person to check).
`test` and `animate` call `complete_reference` when S0 or P0 is missing.
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .formats.draw import draw_skeleton
from .errors import PSCError
from .formats.images import colorize_parsing, open_image, to_rgb
from .pipeline import default_weights_dir, full_size_labels, net_size, pick_device, to_tensor_image
from .weights import load_weights

PERSON_HEIGHT = 0.85  # of the frame, as in the training data


def open_photo(path):
    """Any-size photo (any mode, EXIF orientation applied) -> (H, W, 3) uint8."""
    return to_rgb(ImageOps.exif_transpose(open_image(path, size=None)))


def square_window(image, cx, cy, side):
    """Crop a side x side window centred at (cx, cy), padding outside the photo with its edge pixels,
    and resize it to 256x256. Returns the crop and (x0, y0, side) to map coordinates back."""
    h, w = image.shape[:2]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = int(round(side))
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else image
    crop = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return np.asarray(Image.fromarray(crop).resize((256, 256), Image.LANCZOS)), (x0, y0, side)


class PhotoPreparer:
    """The keypoint net and the parser, loaded once."""

    def __init__(self, keypoints, parser, device="cpu", cards=None):
        self.device = pick_device(device)
        self.keypoints, self.parser = keypoints.to(self.device).eval(), parser.to(self.device).eval()
        self.cards = cards or {}

    @classmethod
    def from_pretrained(cls, path=None, device="auto"):
        path = Path(path) if path is not None else default_weights_dir()
        dev = pick_device(device)
        kp, kp_card = load_weights(path, "pose", dev)
        par, par_card = load_weights(path, "parsing", dev)
        return cls(kp, par, dev, {"pose": kp_card, "parsing": par_card})

    @property
    def placeholder(self):
        return any(c.get("placeholder") for c in self.cards.values())

    def _batch(self, images, net):
        """(B, 256, 256, 3) uint8 -> (B, 3, S, S) in [-1, 1] on the device, S the size the net was
        trained at (its card's "size"; a first-stage 128 net reads the photo area-averaged)."""
        x = torch.cat([to_tensor_image(im, self.device) for im in images])
        size = net_size(self.cards, (net,))
        return F.interpolate(x, size=(size, size), mode="area") if size != x.shape[-1] else x

    def parse_batch(self, images, flip=True):
        """(B, 256, 256, 3) uint8 -> (B, 256, 256) uint8 class labels; flip: see ParserNet.predict."""
        scores = self.parser.predict(self._batch(images, "parsing"), flip=flip)  # (B, 7, S, S)
        return full_size_labels(scores).to(torch.uint8).cpu().numpy()

    def pose_batch(self, images, flip=True):
        """(B, 256, 256, 3) uint8 -> (B, 18, 2) poses (256-frame pixels), NaN for joints the net does
        not see; flip: see KeypointNet.predict (held-out PCK@0.1 0.913 -> 0.936, PCK@0.05 0.897 -> 0.922)."""
        return self.keypoints.predict(self._batch(images, "pose"), flip=flip)

    def parse(self, image256):
        return self.parse_batch(image256[None])[0]

    def pose(self, image256):
        return self.pose_batch(image256[None])[0]

    def frame(self, photo):
        """Find the person (the parser's foreground on the whole photo, letterboxed) and return the
        256x256 crop framed like the training data: centred, the person PERSON_HEIGHT of the frame."""
        h, w = photo.shape[:2]
        side = max(h, w)
        view, (x0, y0, _) = square_window(photo, w / 2, h / 2, side)
        mask = self.parse(view) > 0
        if mask.sum() < 50:
            raise PSCError("no person found in the photo (the parser sees only background)")
        ys, xs = np.nonzero(mask)
        scale = side / 256
        top, bottom = y0 + ys.min() * scale, y0 + (ys.max() + 1) * scale
        left, right = x0 + xs.min() * scale, x0 + (xs.max() + 1) * scale
        window = max((bottom - top) / PERSON_HEIGHT, (right - left) / PERSON_HEIGHT, 16)
        crop, _ = square_window(photo, (left + right) / 2, (top + bottom) / 2, window)
        return crop

    def prepare(self, photo):
        """Photo of any size -> (image (256,256,3), parsing (256,256), pose (18,2))."""
        image = photo if photo.shape[:2] == (256, 256) else self.frame(photo)
        return image, self.parse(image), self.pose(image)


def overlay(image, parsing, pose):
    """The photo with its parsing tinted over it and the skeleton on top, beside the plain parsing."""
    mixed = (0.55 * image + 0.45 * colorize_parsing(parsing)).astype(np.uint8)
    return np.concatenate([image, draw_skeleton(pose, background=mixed)], 1)


def complete_reference(image, parsing, pose, weights=None, device="auto"):
    """Fill in a missing parsing and/or pose (None) from the photo nets; returns all three."""
    if parsing is not None and pose is not None:
        return image, parsing, pose
    prep = PhotoPreparer.from_pretrained(weights, device)
    if parsing is None:
        parsing = prep.parse(image)
    if pose is None:
        pose = prep.pose(image)
    return image, parsing, pose
