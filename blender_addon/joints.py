"""The 18 joints of the engine's pose format (OpenPose COCO-18), as the add-on names them.

The order and names come from the engine's contract (protocol.py); "right" is the person's
right. The labels and groups here are the add-on's own.
"""
from .contract import protocol

JOINTS = protocol.JOINTS
LABELS = (
    "Nose", "Neck", "Right shoulder", "Right elbow", "Right wrist", "Left shoulder", "Left elbow",
    "Left wrist", "Right hip", "Right knee", "Right ankle", "Left hip", "Left knee", "Left ankle",
    "Right eye", "Left eye", "Right ear", "Left ear",
)
NUM_JOINTS = protocol.NUM_JOINTS
INDEX = {name: i for i, name in enumerate(JOINTS)}
# Joints a face rig may provide; without face bones they come from the head bone.
FACE = ("nose", "r_eye", "l_eye", "r_ear", "l_ear")
BODY = tuple(j for j in JOINTS if j not in FACE)
# Side of each lateral face joint: +1 the person's right, -1 their left.
FACE_SIDE = {"nose": 0, "r_eye": 1, "l_eye": -1, "r_ear": 1, "l_ear": -1}
SIZE = protocol.SIZE  # the engine's frame is SIZE x SIZE pixels
