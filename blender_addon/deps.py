"""Installing the engine's Python dependencies (torch & co.) into a folder the add-on owns.

What is installed is read from the engine's own requirement files, `psc_engine/requirements.txt`
(and `requirements-photo.txt` for the photo option), the files `pyproject.toml` reads too: the
add-on installs exactly the engine's pins. torch comes from PyTorch's index for the chosen build
(CPU or CUDA), the rest from PyPI.

Nothing goes online unless `bpy.app.online_access` allows it (Blender's rule for extensions;
Preferences > System > Network): `start_install` checks it before anything else runs.
pip runs in a child process on a worker thread; the preferences poll `STATE` from a timer.
Nothing is installed into Blender's own Python, so removing the folder undoes everything.
"""
import os
import subprocess
import threading

import bpy

TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu126",
}
PYPI = "https://pypi.org/simple"
# Download sizes in MB for these pins (Linux x86_64, Python 3.11; other systems differ by tens of
# MB): CPU and photo measured with `pip download`; CUDA from PyPI's file sizes for torch 2.13.0's
# CUDA build and its nvidia-* wheels (the CUDA 12.6 build is of the same order).
SIZES_FOR = "torch==2.13.0"
DOWNLOAD_MB = {"CPU": 260, "CUDA": 2800, "photo": 215}
OFFLINE = ("Online access is off: allow it in Preferences > System > Network to download the "
           "dependencies, or set an engine interpreter that has them")
STATE = {"running": False, "message": "", "ok": None}


class DepsError(Exception):
    pass


def deps_folder(create=False):
    """extension user folder `deps/` (Blender 4.2+ extension), else a folder under user scripts."""
    pkg = __package__
    if pkg.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return bpy.utils.extension_path_user(pkg, path="deps", create=create)
    return bpy.utils.user_resource("SCRIPTS", path="psc_deps", create=create)


def installed_folder():
    """The deps folder if something was installed there, else ""."""
    folder = deps_folder()
    return folder if folder and os.path.isdir(os.path.join(folder, "torch")) else ""


def read_requirements(path):
    """The requirement lines of a requirements file: comments and blank lines dropped."""
    with open(path, encoding="utf-8") as f:
        lines = [ln.split(" #")[0].strip() for ln in f]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def plan(engine_dir, build, photo=False):
    """What *Install dependencies* fetches, read from the engine in engine_dir (the folder holding
    psc_engine/): {"packages", "build", "mb", "summary"}; DepsError when there is no such engine."""
    folder = os.path.join(engine_dir, "psc_engine") if engine_dir else ""
    files = ["requirements.txt"] + (["requirements-photo.txt"] if photo else [])
    if not folder or not all(os.path.isfile(os.path.join(folder, f)) for f in files):
        raise DepsError("No engine with its requirement files found: set the Engine folder (the folder "
                        "holding psc_engine/), or install the engine with pip into the engine interpreter")
    packages = [r for f in files for r in read_requirements(os.path.join(folder, f))]
    mb = DOWNLOAD_MB[build] + (DOWNLOAD_MB["photo"] if photo else 0) if SIZES_FOR in packages else None
    size = "size not measured" if mb is None else f"about {mb / 1000:.1f} GB" if mb >= 1000 else f"about {mb} MB"
    summary = f"{size}: {' '.join(packages)} ({build} torch from download.pytorch.org, the rest from pypi.org)"
    return {"packages": packages, "build": build, "mb": mb, "summary": summary}


def pip_commands(python, target, build, packages):
    ensure = [python, "-m", "ensurepip", "--upgrade"]
    install = [python, "-m", "pip", "install", "--upgrade", "--target", target, *packages,
               "--index-url", TORCH_INDEX[build], "--extra-index-url", PYPI]
    return ensure, install


def run_pip(cmd):
    """One pip step in a child process (the tests replace this to stay offline)."""
    return subprocess.run(cmd, capture_output=True, text=True)


def _run(python, target, build, packages):
    ensure, install = pip_commands(python, target, build, packages)
    try:
        if run_pip([python, "-m", "pip", "--version"]).returncode != 0:
            r = run_pip(ensure)  # offline: pip's wheel ships with Python
            if r.returncode != 0:
                raise OSError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "ensurepip failed")
        r = run_pip(install)
    except OSError as e:
        STATE.update(running=False, ok=False, message=f"pip could not run: {e}")
        return
    if r.returncode == 0:
        STATE.update(running=False, ok=True, message=f"Installed {' '.join(packages)} ({build}) into {target}")
    else:
        last = next((ln for ln in reversed(r.stderr.splitlines()) if ln.strip()), "unknown error")
        STATE.update(running=False, ok=False, message=f"pip failed: {last}")


def start_install(python, plan):
    """Start pip on a worker thread for a `plan()`. Raises DepsError, and starts nothing, when
    online access is off or an install is already running; returns the message shown meanwhile."""
    if not bpy.app.online_access:
        raise DepsError(OFFLINE)
    if STATE["running"]:
        raise DepsError("An install is already running")
    target = deps_folder(create=True)
    STATE.update(running=True, ok=None, message=f"Installing into {target}, downloading {plan['summary']}")
    threading.Thread(target=_run, args=(python, target, plan["build"], plan["packages"]), daemon=True).start()
    return STATE["message"]
