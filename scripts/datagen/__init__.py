"""Synthetic training data for PSC: people on a turntable rendered with Blender (bpy) and anny.

Modules, in the order a sample is made: seeds -> body -> garments, hair -> patterns ->
scene -> labels -> sample -> writer -> batch. See README.md.
"""
VERSION = 2  # bump when a change alters the pixels or labels a seed produces (version 1 = --style classic)
