"""Choosing the frames' folder so no earlier run is ever lost. No bpy here.

The engine writes into `<final>.partial-<pid>`; only a finished run is renamed to its final
name, so a cancelled or failed run leaves nothing and an earlier run's folder is replaced
only when the user asked to overwrite, and only once the new frames are all there.
"""
import os
import re
import shutil
import tempfile

from .contract import protocol



def safe_name(name):
    """A scene name usable as a folder name on every platform."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name).strip(" .")
    return cleaned or "scene"


def blend_folder(blend_path):
    """The folder `//` stands for: the .blend's, or <temp>/psc_unsaved while it was never saved.

    Blender's own abspath would make `//x` of an unsaved file relative to the working directory,
    wherever that is; the add-on uses this stand-in folder instead, and says so.
    """
    return os.path.dirname(blend_path) if blend_path else os.path.join(tempfile.gettempdir(), "psc_unsaved")


def resolve_folder(setting, blend_path, what="frames"):
    """(absolute folder, note) for a folder setting that may be relative to the .blend (`//...`)."""
    if not setting.startswith("//"):
        return os.path.abspath(os.path.expanduser(setting)), ""
    rest = setting[2:].replace("\\", "/").strip("/")
    folder = os.path.normpath(os.path.join(blend_folder(blend_path), rest))
    if blend_path:
        return folder, ""
    return folder, f"The .blend is not saved: {what} go to {folder} (save the file first to keep them next to it)"


def default_folder(blend_path, scene_name, what="frames"):
    """(folder, note): `//psc/<scene>`, i.e. next to the .blend (see blend_folder for an unsaved one)."""
    return resolve_folder(f"//psc/{safe_name(scene_name)}", blend_path, what)


def _is_used(path):
    return os.path.exists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))


def choose_final(base, overwrite):
    """The folder this run will end up in: `base`, or `base_001`, `base_002`... if base holds files."""
    base = os.path.normpath(base)
    if overwrite or not _is_used(base):
        return base
    for i in range(1, 10000):
        cand = f"{base}_{i:03d}"
        if not _is_used(cand):
            return cand
    raise OSError(f"no free folder name next to {base}")


def partial_folder(final):
    return f"{final}.partial-{os.getpid()}"


def frame_files(folder):
    """The engine's frames in a folder, in frame order."""
    names = sorted(n for n in os.listdir(folder) if protocol.FRAME_RE.match(n))
    return [os.path.join(folder, n) for n in names]


def promote(partial, final):
    """Move a finished run to its final name, replacing an older run only now (overwrite)."""
    if os.path.isdir(final):
        shutil.rmtree(final)
    elif os.path.exists(final):
        os.remove(final)
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    os.replace(partial, final)


def discard(path):
    """Remove a cancelled or failed run's folder (or work folder)."""
    if path and os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
