"""Where the engine lives and the command line that runs it. No bpy here.

The engine can come from three places, tried in this order: a folder set in the preferences,
the copy bundled in the extension zip (`engine/` next to this file), or a source checkout
holding this add-on (`<checkout>/blender_addon`). An interpreter with psc_engine installed
(pip install -e) needs none of them.
"""
import os

ADDON_DIR = os.path.dirname(os.path.abspath(__file__))


def _has_engine(folder):
    return bool(folder) and os.path.isfile(os.path.join(folder, "psc_engine", "__main__.py"))


def engine_folder(pref_folder=""):
    """The folder that holds psc_engine/, or "" to rely on the interpreter's own install."""
    for folder in (pref_folder, os.path.join(ADDON_DIR, "engine"), os.path.dirname(ADDON_DIR)):
        if _has_engine(folder):
            return os.path.abspath(folder)
    return ""


def weights_folder(pref_weights="", engine_dir=""):
    """Weights to pass with --weights: the preference, else engine/weights, else the engine's default."""
    if pref_weights:
        return pref_weights
    if engine_dir and os.path.isfile(os.path.join(engine_dir, "weights", "ct.safetensors")):
        return os.path.join(engine_dir, "weights")
    return ""


def child_env(paths=(), base=None):
    """Environment for the child: our folders first on PYTHONPATH, unbuffered output."""
    env = dict(os.environ if base is None else base)
    paths = [p for p in paths if p]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines must arrive as frames finish, not at exit
    return env


def animate_command(python, image, parsing, pose, output_dir, *, poses=None, key_poses=None,
                    key_frames=None, weights="", device="auto", batch_size=8, precision="auto"):
    """`python -m psc_engine animate ...` for per-frame poses or PM-Net key poses (parsing optional)."""
    cmd = [python, "-m", "psc_engine", "animate", "--image", image, "--pose", pose, "--output_dir", output_dir,
           "--device", device, "--batch_size", str(batch_size), "--precision", precision, "--progress", "json"]
    if parsing:  # without it the engine estimates the parsing from the photo
        cmd += ["--parsing", parsing]
    if poses:
        cmd += ["--poses", poses]
    else:
        cmd += ["--key_poses", key_poses, "--key_frames", ",".join(str(f) for f in key_frames)]
    if weights:
        cmd += ["--weights", weights]
    return cmd


def prepare_command(python, photo, out_dir, stem, *, weights="", device="auto"):
    """`python -m psc_engine prepare ...`: a photo of any size -> out_dir/{I0,S0,P0,overlay}/<stem>.*"""
    cmd = [python, "-m", "psc_engine", "prepare", "--image", photo, "--out", out_dir, "--stem", stem,
           "--device", device]
    if weights:
        cmd += ["--weights", weights]
    return cmd
