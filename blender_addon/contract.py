"""The engine's contract module (`psc_engine/protocol.py`), loaded without the rest of the engine.

protocol.py is standard library only: joint order, frame size, the pose CSV, frame names,
progress events, message prefixes and the engine's command lines. The add-on loads the copy
that ships with the engine it runs (the extension's bundled `engine/`, or the checkout holding
this add-on), straight from its file, so neither torch nor psc_engine's package is imported
into Blender; an interpreter with psc_engine installed is the last resort.
"""
import importlib
import importlib.util
import os

from .engine_command import ADDON_DIR


def _load():
    for folder in (os.path.join(ADDON_DIR, "engine"), os.path.dirname(ADDON_DIR)):
        path = os.path.join(folder, "psc_engine", "protocol.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(f"{__package__}.psc_protocol", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return importlib.import_module("psc_engine.protocol")


protocol = _load()
