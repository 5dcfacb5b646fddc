"""Build the installable Blender extension zip: `python scripts/build_extension.py [--out dist] [--no-engine]`.

Stages blender_addon/ with the repository's blender_manifest.toml (and, unless --no-engine,
the engine's source and weights under engine/, so the extension runs without a checkout),
then builds and validates with Blender's own extension tool: `blender --command extension`
when a Blender binary is on PATH, else the same tool shipped inside the `bpy` module, else
a plain zip with the same layout. Tags are checked against Blender's own list (the binary does
that by itself; for the module's tool the list is read from the module's scripts and passed with
--valid-tags), as extensions.blender.org does. The zip carries the licence texts: LICENSE at its
root (GPL-3.0-or-later, the add-on and the zip as a whole) and engine/psc_engine/LICENSE
(Apache-2.0, the engine). Prints the zip's path.
"""
import argparse
import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORE_NAMES = ("__pycache__", "*.pyc", ".*", "*.partial*")
IGNORE = shutil.ignore_patterns(*IGNORE_NAMES)


# What the add-on runs of the engine: `python -m psc_engine animate | prepare`. Training and
# evaluation stay out, as does the bundled example (the train options' table, training/config.py, stays: the CLI reads it),
# and of weights/ only the checkpoints and their cards go in, not the model card or pictures.
ENGINE_LEFT_OUT = {"evaluation", "example", "README.md", "requirements-blender.txt", "requirements-data.txt",
                   "requirements-test.txt"}
TRAINING_KEPT = {"__init__.py", "config.py"}
WEIGHT_FILES = [f"{net}.{ext}" for net in ("pm", "aa", "ct", "pose", "parsing") for ext in ("safetensors", "json")]


def _engine_ignore(folder, names):
    left_out = set(IGNORE(folder, names))
    if Path(folder).name == "psc_engine":
        left_out |= ENGINE_LEFT_OUT & set(names)
    if Path(folder).name == "training":
        left_out |= set(names) - TRAINING_KEPT
    return left_out


def stage(dest, with_engine=True):
    """Copy what the zip holds into dest: the add-on at its root, the engine under engine/."""
    shutil.copytree(REPO / "blender_addon", dest, ignore=shutil.ignore_patterns("README.md", *IGNORE_NAMES))
    shutil.copy(REPO / "blender_manifest.toml", dest / "blender_manifest.toml")
    if with_engine:
        shutil.copytree(REPO / "psc_engine", dest / "engine" / "psc_engine", ignore=_engine_ignore)
        (dest / "engine" / "weights").mkdir(parents=True)
        for name in WEIGHT_FILES:
            if (REPO / "weights" / name).is_file():
                shutil.copy(REPO / "weights" / name, dest / "engine" / "weights" / name)
    return dest


def extension_tool():
    """A command prefix that runs Blender's extension CLI and the file of Blender's valid tags to
    pass with it ("" for a Blender binary, which applies its own list), or (None, "")."""
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"], ""
    spec = importlib.util.find_spec("bpy")
    if spec and spec.origin:
        for cli in Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"):
            scripts = cli.parents[3]  # <bpy>/<version>/scripts
            return [sys.executable, str(cli)], str(scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py")
    return None, ""


def write_valid_tags(blender_tags, out_file):
    """Blender's tag list (a Python file of sets: `addons = {...}`, `themes = {...}`) as the JSON
    that --valid-tags documents: {"add-on": [...], "theme": [...]}. Read, never executed."""
    if not Path(blender_tags).is_file():
        raise ValueError(f"Blender's list of valid tags not found: {blender_tags}")
    sets = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(Path(blender_tags).read_text()).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    if not {"addons", "themes"} <= sets.keys():
        raise ValueError(f"{blender_tags}: no `addons` and `themes` tag sets")
    Path(out_file).write_text(json.dumps({"add-on": sorted(sets["addons"]), "theme": sorted(sets["themes"])}))
    return str(out_file)


def validate(tool, tags, src, tmp):
    """Blender's `extension validate` on a staged folder; --valid-tags from `tags` unless it is ""."""
    extra = ["--valid-tags", write_valid_tags(tags, Path(tmp) / "valid_tags.json")] if tags else []
    subprocess.run(tool + ["validate", *extra, str(src)], check=True)
    return extra


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
        tool, tags = extension_tool()
        if tool is None:
            print("no Blender or bpy found: writing a plain zip without validation", file=sys.stderr)
            plain_zip(src, out_file)
            return out_file
        tmp_out = out_file.with_name(out_file.name + ".partial")
        valid_tags = validate(tool, tags, src, tmp)
        subprocess.run(tool + ["build", "--source-dir", str(src), "--output-filepath", str(tmp_out), *valid_tags],
                       check=True)
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
    except (ValueError, SyntaxError) as e:  # Blender's tag list missing or not as expected
        print(f"build_extension: error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
