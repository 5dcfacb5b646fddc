"""The contract between the engine and its callers (the Blender add-on, batch scripts).

Standard library only, with no imports from the rest of the engine: the add-on loads this one
file inside Blender, where torch and numpy may be missing, and the engine builds its own
command line, pose files, frame names and progress events from the same definitions.

- Joints: OpenPose COCO-18, in file order; "right" is the person's right.
- Frame: SIZE x SIZE pixels.
- Pose CSV (the original release's format): each pose is two rows, x then y, each row
  `t, v0, ..., v17` in pixels of the frame, -1 for a missing joint; files stack the pairs.
  `t` is how far an in-between pose lies along its transition (0 for any other pose).
- Frames: `frame_00001.png`, `frame_00002.png`, ... in the output folder.
- Progress (`animate --progress json`): one JSON object per stdout line, see EVENTS.
- Messages on stderr: `psc: error: <file>: <what is wrong>` (exit status 2) and `psc: warning: ...`.
- Command lines: `animate_command` and `prepare_command` build exactly what `psc_engine.cli` parses,
  from the option tables ANIMATE_OPTIONS and PREPARE_OPTIONS that the CLI also reads.
"""
import json
import math
import os
import re

JOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_JOINTS = len(JOINTS)
# Index permutation that swaps each right joint with its left twin (a left-right mirror).
FLIP_PERM = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
SIZE = 256

ERROR_PREFIX = "psc: error: "
WARNING_PREFIX = "psc: warning: "
EXIT_USER_ERROR = 2

FRAME_NAME = "frame_{:05d}.png"  # numbered from 1
FRAME_RE = re.compile(r"^frame_(\d{5})\.png$")

# Progress events of `animate --progress json`: name -> its fields (besides "event").
EVENTS = {
    "start": ("total", "device", "precision", "reason"),  # reason: why this precision (see precision.py)
    "frame": ("done", "total", "path"),
    "done": ("total", "output_dir", "seconds"),
}


class PSCError(Exception):
    """A problem with the user's input (a file, a setting): the message says what and where.

    The command line prints `psc: error: <message>` and exits with status 2, no traceback.
    """

    def __init__(self, message, path=None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


def frame_name(index):
    """The file name of frame `index` (1-based)."""
    return FRAME_NAME.format(index)


# ---------------------------------------------------------------------------------------------
# Pose CSV. A pose here is a list of 18 (x, y) tuples, None for a missing joint.

def parse_pose_csv(text, path="pose CSV"):
    """Pose CSV text -> (ts, poses): a list of t values and a list of poses. Blank lines, a BOM and
    CRLF line ends are fine; anything the engine would refuse raises PSCError naming the line."""
    rows = []
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip(" \t,"):
            continue
        cells = line.split(",")
        if len(cells) != NUM_JOINTS + 1:
            raise PSCError(f"line {lineno}: expected 19 values (t and 18 joints), got {len(cells)}", path)
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise PSCError(f"line {lineno}: not a number in {line.strip()!r}", path) from None
        if not all(math.isfinite(v) for v in values):
            raise PSCError(f"line {lineno}: NaN or infinite value (use -1 for a missing joint)", path)
        rows.append(values)
    if not rows:
        raise PSCError("no poses in file (empty CSV)", path)
    if len(rows) % 2:
        raise PSCError(f"{len(rows)} rows: rows come in x/y pairs, so the count must be even", path)
    ts, poses = [], []
    for xs, ys in zip(rows[0::2], rows[1::2]):
        if not 0 <= xs[0] <= 1:
            raise PSCError(f"t = {xs[0]:g} is outside [0, 1]", path)
        ts.append(xs[0])
        poses.append([None if (x == -1 or y == -1) else (x, y) for x, y in zip(xs[1:], ys[1:])])
    return ts, poses


def read_pose_csv(path):
    """Read a pose CSV file -> (ts, poses), as parse_pose_csv."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise PSCError("file not found", path) from None
    except OSError as e:
        raise PSCError(f"cannot read ({e.strerror})", path) from None
    try:
        return parse_pose_csv(data.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise PSCError("not a text CSV file", path) from None


def pose_lines(t, pose):
    """One pose (18 (x, y) or None) -> its two CSV lines (x row, y row), each ending in a newline."""
    return "".join(",".join([f"{t:.4f}"] + ["-1" if p is None else f"{p[axis]:.3f}" for p in pose]) + "\n"
                   for axis in (0, 1))


def format_pose_csv(poses, ts=None):
    """Poses (and their t, default 0) -> CSV text."""
    ts = [0.0] * len(poses) if ts is None else list(ts)
    return "".join(pose_lines(t, pose) for t, pose in zip(ts, poses))


def write_pose_csv(path, poses, ts=None):
    """Write atomically (a temporary name, then a rename): a reader never sees half a file."""
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(format_pose_csv(poses, ts))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Progress events.

def event_line(name, **fields):
    """One progress event as the JSON line `animate --progress json` prints."""
    if set(fields) != set(EVENTS[name]):
        raise ValueError(f"event {name!r} takes {EVENTS[name]}, got {tuple(fields)}")
    return json.dumps({"event": name, **fields})


def parse_event(line):
    """A stdout line -> the event dict, or None for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("event") in EVENTS else None


# ---------------------------------------------------------------------------------------------
# Command lines. Each option: (flag, argparse keyword arguments). The CLI adds exactly these.

ANIMATE_OPTIONS = (
    ("--image", dict(required=True, help="reference photo I0 (256x256)")),
    ("--parsing", dict(help="its parsing S0 (PNG, class id in red); estimated from the photo if not given")),
    ("--pose", dict(help="its pose P0 (CSV); estimated from the photo if not given")),
    ("--poses", dict(help="target poses CSV, one pose per frame")),
    ("--key_poses", dict(help="key poses CSV; the frames between keys come from PM-Net")),
    ("--key_frames", dict(help="frame number of each key pose, e.g. 1,10,25 (the key poses' t is not read)")),
    ("--output_dir", dict(required=True, help="folder for frame_00001.png, ...")),
    ("--overwrite", dict(action="store_true", help="write into a folder that already holds files")),
    ("--progress", dict(choices=["text", "json"], default="text", help="json: one event per line on stdout")),
)
PREPARE_OPTIONS = (
    ("--image", dict(required=True, help="a photo of a person, any size")),
    ("--out", dict(required=True, help="folder for I0/, S0/, P0/, overlay/")),
    ("--stem", dict(help="file stem (default: the photo's)")),
    ("--overwrite", dict(action="store_true", help="replace earlier files of the same stem")),
)
# Options both commands share with the others (see cli.common).
ENGINE_OPTIONS = ("--weights", "--device", "--batch_size", "--precision")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # auto: the fastest within tolerance of float32


def _engine_args(weights, device, batch_size=None, precision=None):
    args = ["--device", device] + (["--weights", weights] if weights else [])
    args += ["--precision", precision] if precision else []
    return args + (["--batch_size", str(batch_size)] if batch_size is not None else [])


def animate_command(python, image, parsing, pose, output_dir, *, poses=None, key_poses=None,
                    key_frames=None, weights="", device="auto", batch_size=8, precision="auto"):
    """`python -m psc_engine animate ...` for per-frame poses, or PM-Net between key poses at
    `key_frames` (1-based frame numbers); parsing and pose may be None (the engine estimates them)."""
    if (poses is None) == (key_poses is None):
        raise ValueError("give poses or key_poses")
    cmd = [python, "-m", "psc_engine", "animate", "--image", image, "--output_dir", output_dir, "--progress", "json"]
    cmd += ["--parsing", parsing] if parsing else []
    cmd += ["--pose", pose] if pose else []
    if poses:
        cmd += ["--poses", poses]
    else:
        cmd += ["--key_poses", key_poses, "--key_frames", ",".join(str(int(f)) for f in key_frames)]
    return cmd + _engine_args(weights, device, batch_size, precision)


def prepare_command(python, photo, out_dir, stem, *, weights="", device="auto"):
    """`python -m psc_engine prepare ...`: a photo of any size -> out_dir/{I0,S0,P0,overlay}/<stem>.*"""
    cmd = [python, "-m", "psc_engine", "prepare", "--image", photo, "--out", out_dir, "--stem", stem]
    return cmd + _engine_args(weights, device)
