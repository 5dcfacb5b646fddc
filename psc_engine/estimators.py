"""Finding the person in a photo: where they are (a person mask), their 18 joints, and how sure
the finder is. Every finder is one call, `finder(photo) -> Person`, on the photo at its own
resolution, answering in its pixels.

- MediaPipe Pose (`pip install -e ".[photo]"`: mediapipe 0.10.21, whose wheel bundles the person
  detector, the full landmark model and the person segmentation, so it runs offline; later
  versions ship no models). Trained on real photos. Its 33 landmarks map to the engine's 18
  joints (`MEDIAPIPE_JOINTS`); a landmark it rates below `MIN_VISIBILITY`, one outside the
  photo, and the nose and eyes of a face turned away (`hidden`) are missing.
- The project's own keypoint net and parser (prepare.py's `NetFinder`): the fallback where
  mediapipe is not installed. Trained on renders only.

Left and right are the person's own (MediaPipe's are too). `untangle` then checks that the
face, the shoulders and the hips agree on which way the person faces, and relabels a limb pair
that disagrees (a back view read with front-view labels would otherwise cross the limbs).

Not caught: a back view MediaPipe reads wholly as a front view, every pair mirrored alike (5 of
the 24 held-out renders' back views; nothing crosses, but the person faces the wrong way). Two
arbiters were tried and left out: the parser (hair where the face should be) called 5 of the
37 ../shared/realdev photos that face the camera back views, and MediaPipe's face detector (no
face on a head in view) called 7 of 48 front three-quarter renders so.
"""
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import PSCError
from .formats.poses import FLIP_PERM, NUM_JOINTS

MIN_VISIBILITY = 0.5
MASK_THRESHOLD = 0.5
MAX_SIDE = 1600  # longer photos are read at this size (MediaPipe reads 256x256 crops anyway)
# MediaPipe landmark per engine joint (None: the neck, the mid-point of the shoulders).
MEDIAPIPE_JOINTS = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
# Left/right pairs checked by `untangle`: (right joints, left joints) of the face, arms and legs.
GROUPS = {"face": ((14, 16), (15, 17)), "arms": ((2, 3, 4), (5, 6, 7)), "legs": ((8, 9, 10), (11, 12, 13))}
APART = {"face": 1 / 12, "arms": 1 / 6, "legs": 1 / 6}  # of the torso length, for `untangle` to count a vote
SECOND_PERSON = 0.25  # a second person counts when their mask is at least this share of the first's
FACING_AWAY = 0.1  # see `hidden`


@dataclass
class Person:
    pose: np.ndarray  # (18, 2) photo pixels, NaN for a joint not seen
    visibility: np.ndarray  # (18,) in [0, 1]: how sure the finder is that each joint is seen
    mask: np.ndarray  # (H, W) bool: the person's pixels
    finder: str  # what found them, for the printed line
    notes: list = field(default_factory=list)  # what `untangle` changed
    landmarks: np.ndarray = None  # MediaPipe's (33, 4) landmarks in photo pixels as it gave them (x, y, z, visibility)

    @property
    def seen(self):
        return int((~np.isnan(self.pose).any(-1)).sum())


def largest_part(mask):
    """(H, W) bool -> the largest connected region (specks and a far-off blob dropped)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


def _facing(pose, right, left):
    """Sign of x(right) - x(left) over the pairs both seen: -1 the person faces the camera (their
    right on the image's left), +1 away; with its size (mean |dx|), or (0, 0) if no pair is seen."""
    dx = [pose[r, 0] - pose[l, 0] for r, l in zip(right, left) if not np.isnan(pose[[r, l]]).any()]
    if not dx:
        return 0, 0.0
    return int(np.sign(np.mean(dx))), float(abs(np.mean(dx)))


def untangle(pose, visibility):
    """Make the face, arms and legs agree on which way the person faces; returns (pose,
    visibility, notes). Each group votes with its left/right order: the face by its eyes and
    ears, the arms by the shoulders, the legs by the hips (the joints that show the facing best),
    counting only where the pair is clearly apart (`APART` of the torso: not a side view). A
    group that disagrees with the majority is relabelled, its right and left joints swapped; two
    that disagree are settled by the face, then the shoulders."""
    pose, visibility = pose.copy(), visibility.copy()
    if np.isnan(pose[[2, 5, 8, 11]]).any():
        return pose, visibility, []
    torso = np.linalg.norm(pose[[2, 5]].mean(0) - pose[[8, 11]].mean(0))
    votes = {"face": _facing(pose, (14, 16), (15, 17)), "arms": _facing(pose, (2,), (5,)),
             "legs": _facing(pose, (8,), (11,))}
    votes = {g: sign for g, (sign, size) in votes.items() if sign and size > APART[g] * torso}
    signs = list(votes.values())
    if len(set(signs)) < 2:
        return pose, visibility, []
    majority = max(set(signs), key=lambda s: (signs.count(s), s == signs[0]))
    notes = []
    for group, sign in votes.items():
        if sign != majority:
            right, left = GROUPS[group]
            a, b = list(right + left), list(left + right)
            pose[a], visibility[a] = pose[b], visibility[b]
            agree = " and ".join(g for g, s in votes.items() if s == majority)
            notes.append(f"{group} relabelled left/right to agree with the {agree}")
    return pose, visibility, notes


def mirror_person(person, width):
    """The same person read off the mirrored photo: x mirrored, left and right joints swapped."""
    pose = person.pose[list(FLIP_PERM)].copy()
    pose[:, 0] = width - 1 - pose[:, 0]
    return Person(pose, person.visibility[list(FLIP_PERM)], person.mask[:, ::-1], person.finder, person.notes)


def square_window(image, cx, cy, side, size=256, resample=Image.LANCZOS):
    """Crop a side x side window centred at (cx, cy), padding outside the photo with its edge pixels,
    and resize it to size x size. Returns the crop and (x0, y0, side) to map coordinates back."""
    h, w = image.shape[:2]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = int(round(side))
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    widths = ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, widths, mode="edge") if pad else image
    crop = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), resample)), (x0, y0, side)


def person_box(found, bounds=None):
    """MediaPipe's reading (landmarks (33, 4) in pixels, (H, W) person probability) -> the
    (top, bottom, left, right) box around the mask's largest region and every landmark within
    `bounds` (top, bottom, left, right; default: the reading's own view), or None. The landmarks
    reach where the mask does not: a patterned skirt it misses, legs beyond a window's edge."""
    marks, prob = found
    mask = largest_part(prob > MASK_THRESHOLD)
    if mask.sum() < 50:
        return None
    top, bottom, left, right = bounds or (0, prob.shape[0], 0, prob.shape[1])
    ys, xs = np.nonzero(mask)
    inside = marks[(marks[:, 0] >= left) & (marks[:, 0] < right) & (marks[:, 1] >= top) & (marks[:, 1] < bottom)]
    xs, ys = np.concatenate([xs, inside[:, 0]]), np.concatenate([ys, inside[:, 1]])
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def back_to_photo(mask, x0, y0, scale, h, w):
    """A (h', w') mask of a view whose pixel (i, j) is photo pixel (x0 + j * scale, y0 + i * scale)
    -> the (h, w) photo's mask (nearest neighbour; outside the view False)."""
    us = np.floor((np.arange(w) + 0.5 - x0) / scale).astype(int)
    vs = np.floor((np.arange(h) + 0.5 - y0) / scale).astype(int)
    inside = ((vs >= 0) & (vs < mask.shape[0]))[:, None] & ((us >= 0) & (us < mask.shape[1]))[None]
    return mask[vs.clip(0, mask.shape[0] - 1)][:, us.clip(0, mask.shape[1] - 1)] & inside


class MediaPipePose:
    """MediaPipe Pose's full landmark model with its person segmentation, on still photos.

    Its person detector reads the whole photo at 224x224 and misses anyone under about a third
    of the photo's longer side, so a person found small (under SMALL of it), or not found at
    all, is looked for again in half-overlapping windows (`_scan`), and then read in a window
    framed around them, where they fill WINDOW_FILL of its height. A second person is looked for
    in the view it read (the whole photo, or that window)."""

    name = "MediaPipe Pose"
    SMALL = 0.4
    WINDOW_FILL = 0.75
    VIEW = 512  # pixels across the window it then reads

    def __init__(self):
        import mediapipe as mp  # ImportError where the [photo] extra is not installed

        self.name = f"MediaPipe Pose {mp.__version__}"
        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                           min_detection_confidence=0.5)

    def _read(self, photo):
        """(H, W, 3) uint8 -> (33, 4) landmarks (x, y pixels, z depth in the same pixels, larger
        farther; visibility) and the (H, W) person probability, or None where it finds no one."""
        r = self.pose.process(np.ascontiguousarray(photo))
        if r.pose_landmarks is None or r.segmentation_mask is None:
            return None
        h, w = photo.shape[:2]
        marks = np.array([(m.x * w, m.y * h, m.z * w, m.visibility) for m in r.pose_landmarks.landmark], np.float32)
        return marks, r.segmentation_mask

    def _scan(self, view):
        """The person's box in the view from half-overlapping windows of 0.6, then 0.36, of its
        longer side, or None. A person up to half a window tall lies wholly inside one window:
        a box that touches a window's inner edge (a person cut by it) is taken only if no window
        holds an uncut one; the largest box wins."""
        h, w = view.shape[:2]
        for frac in (0.6, 0.36):
            side = int(frac * max(h, w))
            starts = lambda n: [0] if n <= side else sorted(set(range(0, n - side, side // 2)) | {n - side})
            hits = []
            for y0 in starts(h):
                for x0 in starts(w):
                    found = self._read(view[y0:y0 + side, x0:x0 + side])
                    box = person_box(found) if found else None
                    if box:
                        t, b, l, r = box
                        cut = (t <= 1 < y0) or (l <= 1 < x0) or (b >= side - 1 and y0 + side < h) or \
                            (r >= side - 1 and x0 + side < w)
                        hits.append((not cut, (b - t) * (r - l), (t + y0, b + y0, l + x0, r + x0)))
            if hits:
                return max(hits)[2]
        return None

    def __call__(self, photo):
        h, w = photo.shape[:2]
        scale = max(1.0, max(h, w) / MAX_SIDE)  # photo pixels per view pixel
        view = photo if scale == 1 else np.asarray(Image.fromarray(photo).resize(
            (round(w / scale), round(h / scale)), Image.BILINEAR))
        x0 = y0 = 0.0
        found = self._read(view)
        box = person_box(found) if found else None
        if box is None or max(box[1] - box[0], box[3] - box[2]) < self.SMALL * max(view.shape[:2]):
            box = box or self._scan(view)
            if box is None:
                raise PSCError("no person found in the photo (one under about a tenth of the photo's size is "
                               "not found: crop the photo closer)")
            box = [v * scale for v in box]
            top, bottom, left, right = box
            side = max(bottom - top, right - left) / self.WINDOW_FILL
            view, (x0, y0, side) = square_window(photo, (left + right) / 2, (top + bottom) / 2, side, self.VIEW,
                                                 Image.BILINEAR)
            scale = side / self.VIEW
            found = self._read(view)
            if found is None:
                raise PSCError("no person found in the photo")
        marks, prob = found
        mask = largest_part(prob > MASK_THRESHOLD)
        if mask.sum() < 50:
            raise PSCError("no person found in the photo (the person mask is empty)")
        if self._second_person(view, prob, mask):
            raise PSCError("several people in the photo; crop it to the one person to animate")
        marks[:, :3] = marks[:, :3] * scale + np.array([x0, y0, 0], np.float32)
        pose, vis = to_joints(marks, h, w)
        pose, vis, notes = untangle(pose, vis)
        return Person(pose, vis, back_to_photo(mask, x0, y0, scale, h, w), self.name, notes, marks)

    def _second_person(self, photo, prob, mask):
        """Paint the person found over with the backdrop's colour and look again: someone of a
        comparable size (their mask SECOND_PERSON of the first's or more) is a second person."""
        cover = ndimage.binary_dilation(prob > 0.2, iterations=max(3, max(photo.shape[:2]) // 40))
        backdrop = np.median(photo[~cover], 0).astype(np.uint8) if (~cover).any() else np.uint8(128)
        found = self._read(np.where(cover[..., None], backdrop, photo))
        if found is None:
            return False
        marks, prob2 = found
        core = marks[[0, 11, 12, 23, 24], 3]  # nose, shoulders, hips
        return bool(core.mean() > 0.8 and (largest_part(prob2 > MASK_THRESHOLD) & ~cover).sum() >= SECOND_PERSON * mask.sum())


def to_joints(marks, h, w):
    """(33, 4) MediaPipe landmarks in pixels -> the engine's (18, 2) pose and (18,) visibility; a
    landmark below MIN_VISIBILITY, outside the photo or behind the body (`hidden`) is missing."""
    pose = np.full((NUM_JOINTS, 2), np.nan, np.float32)
    vis = np.zeros(NUM_JOINTS, np.float32)
    for j, m in enumerate(MEDIAPIPE_JOINTS):
        if m is None:  # the neck: both shoulders' mid-point, as sure as the less sure shoulder
            xy, v = marks[[11, 12], :2].mean(0), marks[[11, 12], 3].min()
        else:
            xy, v = marks[m, :2], marks[m, 3]
        vis[j] = v
        if v >= MIN_VISIBILITY and 0 <= xy[0] < w and 0 <= xy[1] < h:
            pose[j] = xy
    pose[hidden(marks)] = np.nan
    return pose, vis


def hidden(marks):
    """The joints the body hides from the camera, judged from MediaPipe's depths (its visibility
    says whether a joint is in the picture, not whether it is in sight): with the face turned
    away (the nose FACING_AWAY of the torso behind the ears), the nose and eyes, as the renders
    the chain learned from and the photos' labels leave them out. The limit is set on the train
    split's renders, where it separates hidden from seen noses (held-out renders: visibility
    accuracy 0.733 -> 0.789).

    Not used: the far shoulder, hip and ear of a turned person, which the renders also leave
    out. On the renders MediaPipe's depths find them (visibility 0.789 -> 0.906), but on real
    photos its depths exaggerate a slight turn: it hid joints the labels have in 15 of the 28
    Dress Code photos, PCK@0.1 0.970 -> 0.890."""
    z = marks[:, 2]
    torso = np.linalg.norm(marks[[11, 12], :2].mean(0) - marks[[23, 24], :2].mean(0))
    return [0, 14, 15] if z[0] - z[[7, 8]].mean() > FACING_AWAY * torso else []


def load_mediapipe():
    """MediaPipePose, or (None, why not) where mediapipe is not installed or does not start."""
    try:
        return MediaPipePose(), ""
    except ImportError:
        return None, "mediapipe is not installed"
    except Exception as e:  # a broken install (wrong numpy, missing model files): still fall back
        return None, f"mediapipe did not start ({type(e).__name__}: {str(e)[:80]})"
