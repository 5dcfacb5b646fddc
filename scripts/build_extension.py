"""Build the installable Blender extension zip: `python scripts/build_extension.py [--out dist] [--no-engine]`.

Stages blender_addon/ with the repository's blender_manifest.toml (and, unless --no-engine,
the engine's source and weights under engine/, so the extension runs without a checkout),
then builds and validates with Blender's own extension tool: `blender --command extension`
when a Blender binary is on PATH, else the same tool shipped inside the `bpy` module, else
a plain zip with the same layout. Prints the zip's path.
"""
import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "STATUS.md", "*.partial*")


def stage(dest, with_engine=True):
    """Copy what the zip holds into dest: the add-on at its root, the engine under engine/."""
    shutil.copytree(REPO / "blender_addon", dest, ignore=IGNORE)
    shutil.copy(REPO / "blender_manifest.toml", dest / "blender_manifest.toml")
    if with_engine:
        shutil.copytree(REPO / "psc_engine", dest / "engine" / "psc_engine", ignore=IGNORE)
        weights = REPO / "weights"
        if weights.is_dir():
            shutil.copytree(weights, dest / "engine" / "weights", ignore=IGNORE)
    return dest


def extension_tool():
    """A command prefix that runs Blender's extension CLI, or None."""
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    spec = importlib.util.find_spec("bpy")
    if spec and spec.origin:
        for cli in Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"):
            return [sys.executable, str(cli)]
    return None


def plain_zip(src, out_file):
    """Same layout as Blender's builder: the manifest and __init__.py at the zip's root."""
    with zipfile.ZipFile(out_file, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(src).as_posix())


def manifest_fields(path=REPO / "blender_manifest.toml"):
    """id and version from the manifest (top-level `key = "value"` lines; no TOML library needed)."""
    fields = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', path.read_text(), re.M))
    return {"id": fields["id"], "version": fields["version"]}


def build(out_dir, with_engine=True):
    manifest = manifest_fields()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(prefix="psc-ext-") as tmp:
        src = stage(Path(tmp) / manifest["id"], with_engine)
        tool = extension_tool()
        if tool is None:
            print("no Blender or bpy found: writing a plain zip without validation", file=sys.stderr)
            plain_zip(src, out_file)
            return out_file
        tmp_out = out_file.with_name(out_file.name + ".partial")
        subprocess.run(tool + ["validate", str(src)], check=True)
        subprocess.run(tool + ["build", "--source-dir", str(src), "--output-filepath", str(tmp_out)], check=True)
        os.replace(tmp_out, out_file)
    return out_file


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "dist"), help="output folder (default: dist/)")
    ap.add_argument("--no-engine", action="store_true", help="leave the engine out (it must then be installed "
                    "where the engine interpreter finds it, or set in the add-on preferences)")
    args = ap.parse_args(argv)
    try:
        path = build(args.out, with_engine=not args.no_engine)
    except subprocess.CalledProcessError as e:
        print(f"build_extension: error: Blender's extension tool failed ({e.returncode})", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
