"""The extension zip: it builds, installs into Blender (bpy), registers, finds its bundled engine,
and unregisters without leftovers. Blender runs in a child process with its own user folders,
so nothing is installed into the developer's Blender."""
import os
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest_addon import REPO

pytest.importorskip("bpy")
sys.path.insert(0, str(REPO / "scripts"))
import build_extension  # noqa: E402

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
    with zipfile.ZipFile(zip_path) as z:  # the licence texts: the add-on's (and the zip's) and the engine's
        assert z.read("LICENSE").decode().split()[:6] == ["GNU", "GENERAL", "PUBLIC", "LICENSE", "Version", "3,"]
        assert z.read("engine/psc_engine/LICENSE").decode().split()[:4] == ["Apache", "License", "Version", "2.0,"]

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    r = subprocess.run([sys.executable, str(script), zip_path, str(REPO / "scripts")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "EXTENSION OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_licence_labels_agree():
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]  # the add-on, and the zip as a whole
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["psc_engine/LICENSE"]  # the engine
    assert "Version 3, 29 June 2007" in (REPO / "blender_addon" / "LICENSE").read_text()
    assert "Version 2.0, January 2004" in (REPO / "psc_engine" / "LICENSE").read_text()
    licence = (REPO / "README.md").read_text().split("## Licence", 1)[1]
    assert re.search(r"engine \(`psc_engine/`\) is Apache-2\.0", licence)
    assert re.search(r"add-on \(`blender_addon/`\).*GPL-3\.0-or-later", licence, re.S)


def test_validation_uses_blenders_tags_and_rules(tmp_path):
    """A tag outside Blender's list fails as it would on extensions.blender.org; so does a
    permission reason over Blender's 64 characters. The real manifest passes both."""
    tool, tags = build_extension.extension_tool()
    assert tool is not None and tags.endswith("tags.py")  # the bpy module's tool and Blender's own tag list
    valid = __import__("json").loads(open(build_extension.write_valid_tags(tags, tmp_path / "t.json")).read())
    assert {"Animation", "Sequencer"} <= set(valid["add-on"])
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    assert set(manifest["tags"]) <= set(valid["add-on"])
    assert all(len(v) <= 64 and v[-1].isalnum() for v in manifest["permissions"].values())

    src = build_extension.stage(tmp_path / "ok", with_engine=False)
    build_extension.validate(tool, tags, src, tmp_path)
    text = (src / "blender_manifest.toml").read_text()
    for name, bad in (("tag", text.replace('tags = ["Animation", "Sequencer"]', 'tags = ["Animation", "Video"]')),
                      ("reason", re.sub(r'files = "[^"]*"', 'files = "' + "x" * 65 + '"', text))):
        assert bad != text, name
        (src / "blender_manifest.toml").write_text(bad)
        with pytest.raises(subprocess.CalledProcessError):
            build_extension.validate(tool, tags, src, tmp_path)


def test_zip_holds_only_what_the_addon_runs(tmp_path):
    """No training or evaluation code, model card or pictures in the extension; the CLI still parses."""
    dest = build_extension.stage(tmp_path / "ext")
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert "engine/psc_engine/protocol.py" in names and "engine/weights/ct.safetensors" in names
    assert not [n for n in names if n.startswith(("engine/psc_engine/evaluation/", "engine/psc_engine/training/train"))]
    assert not [n for n in names if n.endswith((".png", ".md")) or "STATUS" in n]
    code = "from psc_engine.cli import build_parser; build_parser().parse_args(['prepare', '--image', 'x', '--out', 'y'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=dest / "engine", capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(dest / "engine")})
    assert out.returncode == 0, out.stderr
