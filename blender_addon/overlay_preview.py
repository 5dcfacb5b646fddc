"""The prepared photo's overlay PNG, shown in the PSC panel through a preview collection.

Previews live in memory only (nothing is added to the .blend); the panel keeps the overlay's
path in the scene settings, so the preview comes back when the file is opened again. A new
version of the file (another Prepare) gets a new key, so the panel never shows a stale one.
"""
import os

import bpy
import bpy.utils.previews

_pcoll = None


def preview(path):
    """The ImagePreview of the PNG at `path` (loaded once per file version), or None if there is no file."""
    global _pcoll
    if not path or not os.path.isfile(path):
        return None
    if _pcoll is None:
        _pcoll = bpy.utils.previews.new()
    key = f"{os.path.abspath(path)}:{os.path.getmtime(path)}"
    if key not in _pcoll:
        _pcoll.load(key, path, "IMAGE")
    return _pcoll[key]


def icon_id(path):
    p = preview(path)
    return p.icon_id if p is not None else 0


def clear():
    global _pcoll
    if _pcoll is not None:
        bpy.utils.previews.remove(_pcoll)
        _pcoll = None
