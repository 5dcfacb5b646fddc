"""A Part is one mesh of the person (body, a garment, hair, shoes) with its parsing label.

Topology (faces) is fixed for a sample; `place(view)` returns the vertex positions for one
posed view, so the Blender objects are built once and only moved between views.
`rest` holds unposed coordinates that patterns are drawn in, so a stripe stays on the same
piece of cloth as the person moves.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Parsing classes (psc-method.md).
BACKGROUND, HAIR, FACE, SKIN, UPPER, LOWER, SHOES = range(7)


@dataclass
class Part:
    name: str
    faces: np.ndarray  # (F, 3)
    rest: np.ndarray  # (N, 3) pattern coordinates
    place: Callable  # view dict -> (N, 3) positions
    material: dict  # see patterns.make_material
    labels: np.ndarray  # (F,) parsing class per face
