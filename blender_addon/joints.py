"""The 18 joints of the engine's pose format (OpenPose COCO-18), in file order.

"Right" is the person's right. Kept here, not imported from the engine: the add-on must load
inside Blender without torch or psc_engine.
"""

JOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
LABELS = (
    "Nose", "Neck", "Right shoulder", "Right elbow", "Right wrist", "Left shoulder", "Left elbow",
    "Left wrist", "Right hip", "Right knee", "Right ankle", "Left hip", "Left knee", "Left ankle",
    "Right eye", "Left eye", "Right ear", "Left ear",
)
NUM_JOINTS = len(JOINTS)
INDEX = {name: i for i, name in enumerate(JOINTS)}
# Joints a face rig may provide; without face bones they come from the head bone.
FACE = ("nose", "r_eye", "l_eye", "r_ear", "l_ear")
BODY = tuple(j for j in JOINTS if j not in FACE)
# Side of each lateral face joint: +1 the person's right, -1 their left.
FACE_SIDE = {"nose": 0, "r_eye": 1, "l_eye": -1, "r_ear": 1, "l_ear": -1}
SIZE = 256  # the engine's frame is SIZE x SIZE pixels
