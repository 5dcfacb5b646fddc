"""The extension zip: it builds, installs into Blender (bpy), registers, finds its bundled engine,
and unregisters without leftovers. Blender runs in a child process with its own user folders,
so nothing is installed into the developer's Blender."""
import os
import subprocess
import sys
import zipfile

import pytest

from conftest_addon import REPO

pytest.importorskip("bpy")

CHILD = r'''
import os, subprocess, sys
import bpy
import addon_utils

zip_path = sys.argv[1]
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
name = "bl_ext.user_default.psc_blender"
assert name in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]
assert bpy.context.preferences.addons[name].preferences is not None
assert hasattr(bpy.types, "PSC_OT_generate_clip") and hasattr(bpy.types.Scene, "psc")
mod = sys.modules[name]
ext_dir = os.path.dirname(mod.__file__)
assert ext_dir.startswith(os.environ["BLENDER_USER_RESOURCES"]), ext_dir
engine = mod.engine_command.engine_folder()
assert engine == os.path.join(ext_dir, "engine"), engine
assert mod.engine_command.weights_folder("", engine) == os.path.join(engine, "weights")
env = mod.engine_command.child_env(mod.prefs.engine_paths(mod.prefs.get()))
where = subprocess.run([sys.executable, "-c", "import psc_engine; print(psc_engine.__file__)"],
                       env=env, capture_output=True, text=True, check=True, cwd=ext_dir).stdout.strip()
assert where.startswith(engine), where  # the bundled engine, not a checkout
ok, msg = mod.engine_process.check_interpreter(sys.executable, env)
assert ok, msg
sys.path.insert(0, sys.argv[2])
import batch_clip
assert batch_clip.ensure_addon() is mod  # batch_clip.py uses the installed extension
addon_utils.disable(name, default_set=True)
left = [n for n in dir(bpy.types) if n.startswith("PSC_")]
assert not left and not hasattr(bpy.types.Scene, "psc"), left
print("EXTENSION OK")
'''


def test_extension_zip_builds_installs_and_registers(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(tmp_path / "dist")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    zip_path = r.stdout.strip().splitlines()[-1]
    assert zip_path.endswith("psc_blender-0.1.0.zip") and os.path.isfile(zip_path)
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "engine/psc_engine/__main__.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith("STATUS.md")]

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    r = subprocess.run([sys.executable, str(script), zip_path, str(REPO / "scripts")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "EXTENSION OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
