"""From the camera frame to the photo's 256x256 frame, and the scale-and-shift fit onto P0.

The photo is shown as the camera's background image with frame method "Fit": a square
fitted inside the camera frame, centred, as tall as the frame's shorter side. A point at
normalised camera coordinates (u, v) (0..1, v up, as world_to_camera_view returns) therefore
lands at the same place on the photo. Pixel coordinates follow the engine: pixel i's centre
is at i, so the frame spans -0.5 .. 255.5.
"""
from .joints import SIZE


def frame_size(render):
    """Displayed size of the camera frame: resolution times pixel aspect (percentage cancels)."""
    return render.resolution_x * render.pixel_aspect_x, render.resolution_y * render.pixel_aspect_y


def camera_to_photo(u, v, frame_w, frame_h, size=SIZE):
    """Normalised camera coordinates -> photo pixels (x right, y down)."""
    s = size / min(frame_w, frame_h)
    x = size / 2 + (u - 0.5) * frame_w * s - 0.5
    y = size / 2 - (v - 0.5) * frame_h * s - 0.5
    return x, y


def _shared(src, dst):
    return [(a, b) for a, b in zip(src, dst) if a is not None and b is not None]


def _moments(pairs):
    """Centroids of both sides, their spreads (sum of squared distances) and their covariance."""
    n = len(pairs)
    sx = sum(a[0] for a, _ in pairs) / n
    sy = sum(a[1] for a, _ in pairs) / n
    tx = sum(b[0] for _, b in pairs) / n
    ty = sum(b[1] for _, b in pairs) / n
    var_s = sum((a[0] - sx) ** 2 + (a[1] - sy) ** 2 for a, _ in pairs)
    var_t = sum((b[0] - tx) ** 2 + (b[1] - ty) ** 2 for _, b in pairs)
    cov = sum((a[0] - sx) * (b[0] - tx) + (a[1] - sy) * (b[1] - ty) for a, b in pairs)
    return (sx, sy), (tx, ty), var_s, var_t, cov


def fit_scale_shift(src, dst):
    """s, dx, dy with s * src + (dx, dy) framed like dst, over the joints present in both poses.

    One uniform scale, no rotation: the animator's camera framing may differ from the photo's in
    size and position, but a rotation would tilt the person. The scale is the ratio of the two
    point sets' spreads and the shift matches their centroids, so it is always positive: a photo
    pose that disagrees with the rig (fit_agreement) still gets the rig framed like the person.
    For poses that agree it equals the least-squares fit. Returns None when fewer than two joints
    are shared or they sit on one spot.
    """
    pairs = _shared(src, dst)
    if len(pairs) < 2:
        return None
    (sx, sy), (tx, ty), var_s, var_t, _ = _moments(pairs)
    if var_s < 1e-9 or var_t < 1e-9:
        return None
    s = (var_t / var_s) ** 0.5
    return s, tx - s * sx, ty - s * sy


def fit_agreement(src, dst):
    """How alike the two poses are, up to scale and shift: 1 the same, 0 unrelated, < 0 mirrored."""
    pairs = _shared(src, dst)
    if len(pairs) < 2:
        return 0.0
    _, _, var_s, var_t, cov = _moments(pairs)
    return cov / (var_s * var_t) ** 0.5 if var_s > 1e-9 and var_t > 1e-9 else 0.0


def shared_joints(src, dst):
    return len(_shared(src, dst))


def apply_fit(pose, fit):
    s, dx, dy = fit
    return [None if p is None else (s * p[0] + dx, s * p[1] + dy) for p in pose]


def drop_outside(pose, size=SIZE):
    """Joints outside the frame become missing: a detector cannot see them either."""
    lo, hi = -0.5, size - 0.5
    return [None if p is None or not (lo <= p[0] <= hi and lo <= p[1] <= hi) else p for p in pose]
