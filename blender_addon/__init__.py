"""PSC for Blender: turn an animated armature into a clip of the person in a reference photo.

The add-on never imports torch or the engine: it projects the rig's poses, runs
`python -m psc_engine animate` in a child process and places the frames in the Video Sequencer.
"""
from . import operators, panel, prefs, props, vse

_MODULES = (props, prefs, operators, panel)


def register():
    for m in _MODULES:
        m.register()


def unregister():
    for m in reversed(_MODULES):
        m.unregister()
    vse.clear_handlers()
