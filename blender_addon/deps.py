"""Installing the engine's Python dependencies (torch & co.) into a folder the add-on owns.

pip runs in a child process on a worker thread; the preferences poll `STATE` from a timer.
Nothing is installed into Blender's own Python, so removing the folder undoes everything.
"""
import os
import subprocess
import threading

import bpy

PACKAGES = ("torch", "numpy", "pillow", "scipy", "safetensors")
TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu126",
}
STATE = {"running": False, "message": "", "ok": None}


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


def pip_commands(python, target, build):
    ensure = [python, "-m", "ensurepip", "--upgrade"]
    install = [python, "-m", "pip", "install", "--upgrade", "--target", target, *PACKAGES,
               "--index-url", TORCH_INDEX[build], "--extra-index-url", "https://pypi.org/simple"]
    return ensure, install


def _run(python, target, build):
    ensure, install = pip_commands(python, target, build)
    try:
        has_pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
        if not has_pip:
            subprocess.run(ensure, capture_output=True, text=True, check=True)
        r = subprocess.run(install, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        STATE.update(running=False, ok=False, message=f"pip could not run: {e}")
        return
    if r.returncode == 0:
        STATE.update(running=False, ok=True, message=f"Installed {build} torch into {target}")
    else:
        last = next((ln for ln in reversed(r.stderr.splitlines()) if ln.strip()), "unknown error")
        STATE.update(running=False, ok=False, message=f"pip failed: {last}")


def start_install(python, build):
    """Start pip on a worker thread; returns False if an install is already running."""
    if STATE["running"]:
        return False
    target = deps_folder(create=True)
    STATE.update(running=True, ok=None, message=f"Installing {build} torch into {target} (several minutes)...")
    threading.Thread(target=_run, args=(python, target, build), daemon=True).start()
    return True
