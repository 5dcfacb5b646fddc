"""From a plain photo to the engine's inputs: find the person, frame them the way the chain is
trained, and estimate the parsing S0 and the pose P0.

    python -m psc_engine prepare --image photo.jpg --out DIR

writes DIR/I0/<stem>.png, DIR/S0/<stem>.png, DIR/P0/<stem>.csv (the test layout) and
DIR/overlay/<stem>.png (the parsing and skeleton over the photo, for a person to check).

1. Find the person on the whole photo (estimators.py): MediaPipe Pose and its person mask where
   mediapipe is installed, else the project's own nets (`NetFinder`). No person, or several,
   is an error.
2. Frame them (`framing`): a full-body photo becomes a full-body frame with the person
   FULL_BODY of its height, centred; a photo cut by its bottom edge (knee-up, thigh-up) stays
   cut there, the person filling the frame with CROP_MARGIN above the head; a head cut by the
   top edge stays cut. Joints outside the frame are missing.
3. Parse the frame with the project's parser, the person mask as a constraint: background
   outside the mask, one of the six person classes inside it (the backdrop outside the mask is
   also painted plain grey, the renders' kind of backdrop, before the parser reads the frame);
   with MediaPipe, the class scores snap to the photo's edges (`snap_to_edges`) and its face
   landmarks place the face (`face_from`).

`test` and `animate` call `complete_reference` when S0 or P0 is missing: it estimates them on
the given 256x256 frame as it is (no re-framing).
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from . import estimators
from .estimators import square_window
from .errors import PSCError
from .formats.draw import draw_skeleton
from .formats.images import CLASS_NAMES, colorize_parsing, open_image, to_rgb
from .pipeline import default_weights_dir, full_size_labels, net_size, pick_device, to_tensor_image
from .weights import load_weights

SIZE = 256
FULL_BODY = 0.85  # the person's height in a full-body training frame
CROP_MARGIN = 0.04  # space above the head in a frame cut by its bottom edge (the renders': 0.015-0.06)
EDGE = 0.01  # a mask this close to a photo edge (of its height) is cut by that edge
BACKDROP = 200  # the grey painted outside the person mask before parsing
FOREHEAD, CHIN = 1.05, 0.6  # face_region: the face's extent above the eyes and below the mouth, of eyes-to-mouth
HAIR, FACE, SKIN = (CLASS_NAMES.index(n) for n in ("hair", "face", "skin"))
SNAP_RADIUS, SNAP_EPS = 8, 0.01  # snap_to_edges: the guided filter's window radius (px of the 256 frame) and eps


def open_photo(path):
    """Any-size photo (any mode, EXIF orientation applied) -> (H, W, 3) uint8."""
    return to_rgb(ImageOps.exif_transpose(open_image(path, size=None)))


def framing(mask):
    """(H, W) bool person mask -> the square window (cx, cy, side) in photo pixels that frames the
    person like the chain's training frames, and what kind of framing it is."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    cut_top, cut_bottom = top <= EDGE * h, bottom >= (1 - EDGE) * h
    wide = (right - left) / 0.95  # a wide pose still fits across
    if cut_top and cut_bottom:  # cut at both ends: the photo's height as it is
        kind, side = "cut by the top and bottom edges", max(h, wide)
        cy = h / 2
    elif cut_bottom:  # knee-up, thigh-up: the bottom edge stays where it cuts
        kind, side = "cut by the bottom edge", max((h - top) / (1 - CROP_MARGIN), wide)
        cy = h - side / 2
    elif cut_top:  # a head cut off: the top edge stays, the feet FULL_BODY's margin above the bottom
        kind, side = "cut by the top edge", max(bottom / (1 - (1 - FULL_BODY) / 2), wide)
        cy = side / 2
    else:
        kind, side = "full body", max((bottom - top) / FULL_BODY, wide, 16.0)
        cy = (top + bottom) / 2
    return ((left + right) / 2, cy, side), kind


def into_window(points, window):
    """(N, 2) photo pixels -> 256-frame pixels of the window (x0, y0, side), wherever they fall."""
    x0, y0, side = window
    return ((points - np.array([x0, y0], np.float32)) * (SIZE / side)).astype(np.float32)


def to_frame(pose, window):
    """(18, 2) photo pixels -> 256-frame pixels of the window (x0, y0, side); outside it NaN."""
    out = into_window(pose, window)
    out[((out < 0) | (out >= SIZE)).any(-1)] = np.nan
    return out


def from_frame(pose, window):
    """(18, 2) 256-frame pixels of the window -> photo pixels."""
    x0, y0, side = window
    return (pose * (side / SIZE) + np.array([x0, y0], np.float32)).astype(np.float32)


@dataclass
class Prepared:
    image: np.ndarray  # (256, 256, 3) uint8: the framed photo, I0
    parsing: np.ndarray  # (256, 256) uint8: S0
    pose: np.ndarray  # (18, 2) 256-frame pixels, NaN for a joint not seen: P0
    window: tuple  # (x0, y0, side) of the frame in photo pixels
    framing: str
    finder: str
    visibility: float  # the finder's mean visibility over the 18 joints
    notes: list = field(default_factory=list)

    @property
    def seen(self):
        return int((~np.isnan(self.pose).any(-1)).sum())

    def summary(self):
        """One line: what found the person, how sure it is, how they are framed."""
        notes = "".join(f"; {n}" for n in self.notes)
        return (f"{self.finder}: {self.seen}/18 joints seen (mean visibility {self.visibility:.2f}), "
                f"framing: {self.framing}{notes}")


class PhotoPreparer:
    """The keypoint net, the parser and the person finder, loaded once.

    finder: "auto" (MediaPipe where installed, else the project's nets), "mediapipe" (an error
    without it), "nets" (the project's nets), or any callable photo -> estimators.Person.
    mask_constraint, backdrop, face, refine: the parsing's uses of MediaPipe's mask and face
    landmarks, and the edge snapping of its class scores (each can be turned off, for measuring
    what it buys)."""

    def __init__(self, keypoints, parser, device="cpu", cards=None, finder="nets", mask_constraint=True,
                 backdrop=True, face=True, refine=True):
        self.device = pick_device(device)
        self.keypoints, self.parser = keypoints.to(self.device).eval(), parser.to(self.device).eval()
        self.cards = cards or {}
        self.fallback_reason = ""
        if finder in ("auto", "mediapipe"):
            found, self.fallback_reason = estimators.load_mediapipe()
            if found is None and finder == "mediapipe":
                raise PSCError(f"{self.fallback_reason}; install the photo extra: pip install -e \".[photo]\"")
            finder = found or "nets"
        self.finder = NetFinder(self) if finder == "nets" else finder
        self.mask_constraint, self.backdrop, self.face = mask_constraint, backdrop, face
        self.refine = refine and has_guided_filter()  # OpenCV's contrib modules come with mediapipe

    @classmethod
    def from_pretrained(cls, path=None, device="auto", finder="auto", **options):
        path = Path(path) if path is not None else default_weights_dir()
        dev = pick_device(device)
        kp, kp_card = load_weights(path, "pose", dev)
        par, par_card = load_weights(path, "parsing", dev)
        return cls(kp, par, dev, {"pose": kp_card, "parsing": par_card}, finder=finder, **options)

    @property
    def placeholder(self):
        return any(c.get("placeholder") for c in self.cards.values())

    @property
    def uses_nets(self):
        return isinstance(self.finder, NetFinder)

    def _batch(self, images, net):
        """(B, 256, 256, 3) uint8 -> (B, 3, S, S) in [-1, 1] on the device, S the size the net was
        trained at (its card's "size"; a first-stage 128 net reads the photo area-averaged)."""
        x = torch.cat([to_tensor_image(im, self.device) for im in images])
        size = net_size(self.cards, (net,))
        return F.interpolate(x, size=(size, size), mode="area") if size != x.shape[-1] else x

    def parse_scores(self, images, flip=True):
        """(B, 256, 256, 3) uint8 -> (B, 7, 256, 256) float class scores; flip: see ParserNet.predict."""
        scores = self.parser.predict(self._batch(images, "parsing"), flip=flip).float()  # (B, 7, S, S)
        return F.interpolate(scores, size=(SIZE, SIZE), mode="bilinear", align_corners=False) \
            if scores.shape[-1] != SIZE else scores

    def parse_batch(self, images, flip=True):
        """(B, 256, 256, 3) uint8 -> (B, 256, 256) uint8 class labels; flip: see ParserNet.predict."""
        scores = self.parser.predict(self._batch(images, "parsing"), flip=flip)  # (B, 7, S, S)
        return full_size_labels(scores).to(torch.uint8).cpu().numpy()

    def pose_batch(self, images, flip=True, with_visibility=False):
        """(B, 256, 256, 3) uint8 -> (B, 18, 2) poses (256-frame pixels), NaN for joints the net does
        not see; flip: see KeypointNet.predict (held-out PCK@0.1 0.913 -> 0.936, PCK@0.05 0.897 -> 0.922).
        with_visibility: also the (B, 18) visibility probabilities."""
        return self.keypoints.predict(self._batch(images, "pose"), flip=flip, with_visibility=with_visibility)

    def parse(self, image256):
        return self.parse_batch(image256[None])[0]

    def pose(self, image256):
        return self.pose_batch(image256[None])[0]

    def parse_within(self, image, mask, landmarks=None):
        """(256, 256, 3) frame and its (256, 256) bool person mask -> (256, 256) uint8 parsing:
        background outside the mask, the best of the six person classes inside it, the class
        scores snapped to the frame's edges first (`snap_to_edges`). With MediaPipe's landmarks
        (33, 4) in frame pixels, the face is placed by them (`face_from`)."""
        scores = self.parse_scores((paint_backdrop(image, mask) if self.backdrop else image)[None])[0]  # (7, 256, 256)
        if self.refine:
            scores = snap_to_edges(scores.softmax(0), image)
        if not self.mask_constraint:
            parsing = scores.argmax(0).to(torch.uint8).cpu().numpy()
        else:
            person = scores[1:].argmax(0) + 1
            parsing = torch.where(torch.from_numpy(mask).to(person.device), person, 0).to(torch.uint8).cpu().numpy()
        return face_from(parsing, landmarks) if self.face and landmarks is not None else parsing

    def estimate(self, image):
        """(256, 256, 3) frame as it is (no re-framing) -> (parsing (256, 256), pose (18, 2)): with
        MediaPipe, its pose, and the parsing kept within its person mask."""
        if self.uses_nets:
            return self.parse(image), self.pose(image)
        person = self.finder(image)
        return self.parse_within(image, person.mask, person.landmarks), person.pose

    def estimate_batch(self, images):
        """(B, 256, 256, 3) frames -> (B, 256, 256) parsings, (B, 18, 2) poses, as `estimate` gives
        them (the nets run batched); a frame where no one is found: all background, no joints."""
        if self.uses_nets:
            return self.parse_batch(images), self.pose_batch(images)
        parsings, poses = np.zeros(images.shape[:3], np.uint8), np.full((len(images), 18, 2), np.nan, np.float32)
        for i, image in enumerate(images):
            try:
                parsings[i], poses[i] = self.estimate(image)
            except PSCError:
                pass
        return parsings, poses

    def prepare(self, photo):
        """Photo of any size (H, W, 3) uint8 -> Prepared (the frame, its parsing and pose)."""
        person = self.finder(photo)
        window, kind = framing(person.mask)
        image, window = square_window(photo, *window)
        pose = to_frame(person.pose, window)
        if self.uses_nets:  # the nets' own parsing found the person: no constraint to add
            parsing = self.parse(image)
        else:
            mask = square_window(person.mask.astype(np.uint8), *window_centre(window), resample=Image.NEAREST)[0] > 0
            marks = None
            if person.landmarks is not None:  # photo pixels -> frame pixels, those outside it too
                marks = person.landmarks.copy()
                marks[:, :2] = into_window(marks[:, :2], window)
            parsing = self.parse_within(image, mask, marks)
        return Prepared(image, parsing, pose, window, kind, person.finder, float(person.visibility.mean()),
                        person.notes)


def paint_backdrop(image, mask, grey=BACKDROP):
    """(H, W, 3) frame, (H, W) bool person mask -> the parser's input: outside the mask plain grey.

    The hook for retraining the parser for photos (training/batches.photo_batch): feed it the
    same, the renders' true person mask grown or shrunk by a few pixels the way MediaPipe's
    misses or overshoots, so that it learns to read what `prepare` gives it (the shipped parser
    never saw it and still gains 0.014 mIoU on Dress Code photos)."""
    return np.where(mask[..., None], image, np.uint8(grey))


def has_guided_filter():
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "ximgproc")


def snap_to_edges(probs, image, radius=SNAP_RADIUS, eps=SNAP_EPS):
    """(7, H, W) class probabilities and the (H, W, 3) uint8 frame -> the probabilities smoothed
    by a guided filter with the frame as its guide (OpenCV's ximgproc, which MediaPipe's wheel
    brings in opencv-contrib), so class borders follow the photo's own edges: a hem, a sleeve's
    end, a shoe against the floor. The parser reads the frame at its training size and its
    borders are soft; on ../shared/realdev's Dress Code photos every class gained, mIoU
    0.582 -> 0.602 (radius 4-16 px and eps 0.003-0.03 all gave 0.593-0.602)."""
    import cv2

    guide = image.astype(np.float32) / 255
    planes = probs.float().cpu().numpy()
    out = np.stack([cv2.ximgproc.guidedFilter(guide, plane, radius, eps) for plane in planes])
    return torch.from_numpy(out).to(probs.device)


def face_region(landmarks, shape):
    """MediaPipe's (33, 4) landmarks in frame pixels -> (H, W) bool: the face, an ellipse from
    FOREHEAD above the eyes to CHIN below the mouth (of the eyes-to-mouth distance d: the face's
    usual proportions), as wide as the ears are apart (at least 0.9 d either side); and, for a
    face seen from the front (the ears at least d apart), the eye line's (H, W) side towards
    the chin (a profile's hair beside the face stays hair). None where the face is turned away
    or the landmarks are unsure (nose or mouth below estimators.MIN_VISIBILITY)."""
    if estimators.hidden(landmarks) or landmarks[[0, 9, 10], 3].min() < estimators.MIN_VISIBILITY:
        return None
    eyes, mouth = landmarks[[2, 5], :2].mean(0), landmarks[[9, 10], :2].mean(0)
    d = float(np.linalg.norm(mouth - eyes))
    if d < 1:
        return None
    u = (mouth - eyes) / d  # down the face
    v = np.array([-u[1], u[0]])  # across it
    top, bottom = eyes - FOREHEAD * d * u, mouth + CHIN * d * u
    centre, along = (top + bottom) / 2, float(np.linalg.norm(bottom - top)) / 2
    across = max(0.5 * float(np.linalg.norm(landmarks[7, :2] - landmarks[8, :2])), 0.9 * d)
    ys, xs = np.mgrid[:shape[0], :shape[1]]
    rel = np.stack([xs - centre[0], ys - centre[1]], -1)  # (H, W, 2)
    inside = ((rel @ u) / along) ** 2 + ((rel @ v) / across) ** 2 <= 1
    frontal = np.linalg.norm(landmarks[7, :2] - landmarks[8, :2]) >= d  # a profile's ears nearly meet
    below_eyes = (np.stack([xs - eyes[0], ys - eyes[1]], -1) @ u) > 0 if frontal else np.zeros(shape, bool)
    return inside, below_eyes


def face_from(parsing, landmarks):
    """The parser's face made to agree with MediaPipe's face landmarks (trained on real faces;
    the parser learned faces from renders, whose faces have no features): within `face_region`,
    skin is face, and so is hair below the eye line. On ../shared/realdev's Dress Code photos
    face IoU 0.334 -> 0.428, mIoU 0.564 -> 0.582 with the shipped parser (their labels count the
    neck, even bare shoulders, as face; the engine's, like the renders', do not: the neck stays
    skin)."""
    region = face_region(landmarks, parsing.shape)
    if region is None:
        return parsing
    inside, below_eyes = region
    relabel = inside & ((parsing == SKIN) | ((parsing == HAIR) & below_eyes))
    return np.where(relabel, np.uint8(FACE), parsing)


def window_centre(window):
    """(x0, y0, side) -> (cx, cy, side), what square_window takes."""
    x0, y0, side = window
    return x0 + side / 2, y0 + side / 2, side


class NetFinder:
    """The project's own nets as a person finder: the parser's foreground on the whole photo
    (letterboxed to 256x256) is the mask; the keypoint net reads the person centred at FULL_BODY
    of a frame's height, as it was trained, or, for a photo cut by its bottom edge, the frame
    `prepare` cuts (padding below the cut would only smear the edge; on ../shared/realdev it
    read DeepFashion's knee-up photos better, PCK@0.1 0.36 -> 0.44)."""

    name = "the project's keypoint net"

    def __init__(self, prep):
        self.prep = prep

    def __call__(self, photo):
        h, w = photo.shape[:2]
        view, (x0, y0, side) = square_window(photo, w / 2, h / 2, max(h, w))
        small = self.prep.parse(view) > 0  # (256, 256) over the letterboxed photo
        if small.sum() < 50:
            raise PSCError("no person found in the photo (the parser sees only background)")
        mask = estimators.largest_part(estimators.back_to_photo(small, x0, y0, side / SIZE, h, w))
        window, kind = framing(mask)
        if "bottom" not in kind:  # the person centred at FULL_BODY of the frame, as the net was trained
            ys, xs = np.nonzero(mask)
            window = ((xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2,
                      max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min(), 16) / FULL_BODY)
        crop, window = square_window(photo, *window)
        pose, vis = self.prep.pose_batch(crop[None], with_visibility=True)
        pose, vis, notes = estimators.untangle(from_frame(pose[0], window), vis[0])
        return estimators.Person(pose, vis, mask, self.name, notes)


def overlay(image, parsing, pose):
    """The photo with its parsing tinted over it and the skeleton on top, beside the plain parsing."""
    mixed = (0.55 * image + 0.45 * colorize_parsing(parsing)).astype(np.uint8)
    return np.concatenate([image, draw_skeleton(pose, background=mixed)], 1)


def complete_reference(image, parsing, pose, weights=None, device="auto"):
    """Fill in a missing parsing and/or pose (None) on the 256x256 frame as it is; returns all three."""
    if parsing is not None and pose is not None:
        return image, parsing, pose
    est_parsing, est_pose = PhotoPreparer.from_pretrained(weights, device).estimate(image)
    return image, est_parsing if parsing is None else parsing, est_pose if pose is None else pose
