"""The train layout's view order and naming, and the older layout it replaces.

The original order (the original code's AA data set, and this generator's output):

    joint/NNNN.csv rows:  right, front, left, back, mid0, mid1, mid2, mid3

Reference view k is paired with view (k + 1) % 4 and with mid k, so mid0 lies between right
and front, mid1 front->left, mid2 left->back, mid3 back->right. `joint_interpolation/NNNN.csv`
lists the four references (t = 0) in that order, then two poses per transition in that order,
t being the fraction of the way from the transition's first view to its second.

Views are turntable angles theta (degrees): the camera is fixed, the person turns. At theta = 0
the person faces the camera; the person is rotated by -theta about +Z (anny: +Z up, the body
faces -Y, +X is the person's left), so at theta = 90 their LEFT side faces the camera and they
face the image's LEFT edge: they have turned to their right, which is the original's `right`
view. Walking right -> front -> left -> back -> right is theta 90 -> 0 -> 270 -> 180 -> 90:
every transition turns by -90 degrees, so transition k at t lies at theta_k - 90 t.

The older layout (generator versions 1 and earlier; folders without `layout.json`) named the
views the other way round and in another order: front, left, back, right, mid0..mid3 with
`left` = theta 90, `right` = theta 270, mid k = 45 + 90 k, and transitions front->left,
left->back, back->right, right->front walked by +90 degrees.
"""
import json
from pathlib import Path

VIEWS = ("right", "front", "left", "back", "mid0", "mid1", "mid2", "mid3")
REFERENCE = VIEWS[:4]
VIEW_ANGLES = {"right": 90, "front": 0, "left": 270, "back": 180, "mid0": 45, "mid1": 315, "mid2": 225, "mid3": 135}
TRANSITIONS = tuple(f"{REFERENCE[k]}->{REFERENCE[(k + 1) % 4]}" for k in range(4))

ORDER_NAME = "original"  # layout.json "view_order" of this layout
LAYOUT_FILE = "layout.json"

# The older layout.
OLD_VIEWS = ("front", "left", "back", "right", "mid0", "mid1", "mid2", "mid3")
OLD_ANGLES = {"front": 0, "left": 90, "back": 180, "right": 270, "mid0": 45, "mid1": 135, "mid2": 225, "mid3": 315}
# The same physical view (turntable angle) under its older name.
NEW_TO_OLD = {new: next(o for o, a in OLD_ANGLES.items() if a == VIEW_ANGLES[new]) for new in VIEWS}
OLD_TO_NEW = {old: new for new, old in NEW_TO_OLD.items()}
# New transition k is older transition OLD_TRANSITION[k] walked backwards: t -> 1 - t.
# (new k at t: theta_k - 90 t; older j at s: 90 (j + s); equal for j = OLD_TRANSITION[k], s = 1 - t.)
OLD_TRANSITION = tuple(int(round((VIEW_ANGLES[REFERENCE[k]] - 90) % 360 / 90)) for k in range(4))


def interp_angle(k, t):
    """Turntable angle of the pose a fraction t along transition k (original order)."""
    return (VIEW_ANGLES[REFERENCE[k]] - 90.0 * t) % 360.0


def old_interp_to_new(ts):
    """Older joint_interpolation in-between rows (8 t's, two per older transition) -> for each
    new row, (older row index, new t). Within a transition the two rows stay in rising t."""
    out = []
    for k in range(4):
        j = OLD_TRANSITION[k]
        pair = [(2 * j + i, round(1.0 - ts[2 * j + i], 2)) for i in (0, 1)]
        out += sorted(pair, key=lambda p: p[1])
    return out


# layout.json keys that say what the folder's samples are; a batch may add samples to a folder
# only when all of them agree (generator_version, the code that first wrote it, may differ).
CONTENT_KEYS = ("layout", "view_order", "views", "images", "style", "framing", "split", "resolution",
                "content_version")


def layout_record(version, layout, split, style, framing, images, resolution):
    """What `layout.json` says. content_version: the generator version whose output a seed
    gives (the classic style still draws version 1's pixels and labels)."""
    return {"generator_version": version, "content_version": 1 if style == "classic" else version,
            "layout": layout, "view_order": ORDER_NAME, "views": list(VIEWS) if layout == "train" else None,
            "images": bool(images), "style": style, "framing": framing, "split": split,
            "resolution": int(resolution)}


def write_layout(root, record):
    """Write `layout.json` (temp name, then rename) if it is missing; a folder holds one layout:
    a batch with other settings than the folder's is an error."""
    root = Path(root)
    path = root / LAYOUT_FILE
    if path.exists():
        old = read_layout(root)
        diff = sorted(k for k in CONTENT_KEYS if k in record and old.get(k) != record[k])
        if diff:
            raise RuntimeError(f"{path}: this folder was written with other settings ({', '.join(diff)}: "
                               f"{', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another --out folder")
        return
    tmp = root / (LAYOUT_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def read_layout(root):
    """A folder's layout record, or None for an older folder without `layout.json`."""
    path = Path(root) / LAYOUT_FILE
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(rec, dict):
        raise RuntimeError(f"{path}: not a JSON object")
    return rec
