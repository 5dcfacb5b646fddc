"""One sample: a person on a turntable, 8 rendered views with parsings, and 16 poses.

Views are turntable angles theta (degrees). The person turns so that at theta = 90 their
LEFT side faces the camera ("left" view: the person faces the image's left edge), at 180 their
back, at 270 their right side. In between views: mid0 = 45, mid1 = 135, mid2 = 225, mid3 = 315.
"""
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from . import body as bodymod
from . import garments, hair as hairmod, labels, patterns, scene as scn
from .geometry import vertex_normals
from .parts import FACE, SKIN, Part
from .seeds import FAMILY, rng, sample_seed

VIEW_ANGLES = {"front": 0, "mid0": 45, "left": 90, "mid1": 135, "back": 180, "mid2": 225, "right": 270, "mid3": 315}
JOINT_ORDER = ("front", "left", "back", "right", "mid0", "mid1", "mid2", "mid3")  # joint/NNNN.csv
REFERENCE = ("front", "left", "back", "right")


def interpolation_angles(r):
    """Two in-between poses per transition front->left->back->right->front: (angles, ts)."""
    angles, ts = [], []
    for k in range(4):
        t1, t2 = r.uniform(0.06, 0.46), r.uniform(0.54, 0.94)
        for t in (t1, t2):
            angles.append(90.0 * (k + t))
            ts.append(round(float(t), 2))
    return angles, ts


def design(split, index):
    """Every random choice of a sample, as plain data (no Blender, no anny)."""
    family = FAMILY[split]
    shape = bodymod.sample_shape(rng(split, index, "body"), family)
    pr = rng(split, index, "pose")
    pose = bodymod.sample_pose(pr)
    interp_angles, interp_ts = interpolation_angles(pr)
    outfit_rng = rng(split, index, "outfit")
    outfit = garments.sample_outfit(outfit_rng, family)
    hair = hairmod.sample_hair(rng(split, index, "hair"), shape)
    studio = scn.sample_scene(rng(split, index, "scene"))
    return {"split": split, "index": int(index), "seed": sample_seed(split, index), "family": family,
            "shape": shape, "pose": pose, "interp_angles": interp_angles, "interp_ts": interp_ts,
            "outfit": outfit, "hair": hair, "studio": studio}


def pose_all(body, d):
    """Forward anny for the 8 views and 8 in-between poses, lifting an arm that cuts into the body."""
    angles = [VIEW_ANGLES[v] for v in JOINT_ORDER] + d["interp_angles"]
    lift = {"L": 0.0, "R": 0.0}
    rest = bodymod.forward(body, d["shape"], [np.eye(4)[None].repeat(len(body.bone_labels), 0)])
    heads = rest["rest_bone_heads"]
    for _ in range(6):
        mats = [bodymod.pose_matrices(body, heads, bodymod.angles_at(d["pose"], a), lift) for a in angles]
        out = bodymod.forward(body, d["shape"], mats)
        worst = {s: max(bodymod.arm_penetration(body, v, s) for v in out["vertices"]) for s in "LR"}
        if max(worst.values()) == 0:
            break
        for s in "LR":
            if worst[s] > 0:
                lift[s] += 5.0
    out["angles"] = angles
    out["arm_lift"] = lift
    return out


def body_part(body, rest_verts, skin_material):
    labels_ = np.where(body.head_faces, FACE, SKIN)

    def place(view):
        return view["verts"]

    return Part("body", body.faces, rest_verts, place, skin_material, labels_)


def make(split, index, resolution=256, samples=32, threads=0, workdir=None, log=None):
    """Render one sample -> dict with images, parsings (by view name), poses and metadata."""
    import bpy

    t0 = time.time()
    body = bodymod.load_body_model()
    d = design(split, index)
    out = pose_all(body, d)
    m = garments.Measures(out["rest_vertices"], out["rest_joints"], out["rest_bone_heads"], body)
    parts = [body_part(body, out["rest_vertices"], {"kind": "skin"})]
    for spec_holder in (d["outfit"]["top"], d["outfit"].get("bottom", {}), d["outfit"].get("skirt", {})):
        mat = spec_holder.get("material")
        if mat and mat["family"] in ("logo", "star"):
            mat["front_y"] = float(m.front_y)
            mat["chest_z"] = float(m.shoulder_z - 0.13 + mat["logo_z"])
    parts += garments.build_garments(body, m, d["outfit"])
    parts.append(hairmod.build_hair(body, out["rest_vertices"], out["rest_joints"], out["rest_bone_poses"],
                                    d["hair"], {"kind": "hair"}))

    # Per pose: the posed body and where every part sits, turned on the turntable.
    pivot = out["rest_bone_heads"][body.bone("root")][:2]
    world = []
    for i, theta in enumerate(out["angles"]):
        verts = out["vertices"][i]
        view = {"verts": verts, "normals": vertex_normals(verts, body.faces), "bone_poses": out["bone_poses"][i],
                "pelvis": out["bone_poses"][i][body.bone("root")][:3, 3]}
        floor = verts[:, 2].min() - 0.011
        a = math.radians(-theta)
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])

        def turn(p, rot=rot, floor=floor):
            q = p - np.array([pivot[0], pivot[1], floor])
            return q @ rot.T

        world.append({"parts": [turn(p.place(view)) for p in parts] if i < 8 else None,
                      "body": turn(verts), "joints": turn(out["joints"][i])})

    # Blender scene
    sc = scn.reset(bpy)
    scn.output_settings(sc, resolution, threads)
    st = d["studio"]
    objs = []
    for p, pos in zip(parts, world[0]["parts"]):
        objs.append(scn.make_mesh_object(bpy, p.name, pos, p.faces, rest=p.rest, face_labels=p.labels))
    skin, _, _ = scn.principled(bpy, "skin", st["skin"], 0.5)
    eye, _, _ = scn.principled(bpy, "eye", (0.02, 0.015, 0.012), 0.2)
    objs[0].data.materials.append(skin)
    objs[0].data.materials.append(eye)
    objs[0].data.polygons.foreach_set("material_index", body.eye_faces.astype(np.int32))
    for p, o in zip(parts[1:], objs[1:]):
        if p.name == "hair":
            mat = scn.hair_material(bpy, hairmod.HAIR_COLOURS[d["hair"]["colour"]], d["hair"]["seed"])
        else:
            mat = patterns.make_material(bpy, p.name, p.material)
        o.data.materials.append(mat)
    scn.backdrop(bpy, st["backdrop"], st["wall_distance"], 0)
    cam = scn.camera(bpy, sc, st["focal_mm"])
    allpts = np.concatenate([np.concatenate(w["parts"]) for w in world[:8]])
    scn.frame_person(sc, cam, st, allpts)
    center_z = 0.5 * (allpts[:, 2].min() + allpts[:, 2].max())
    world_node, bg, _ = scn.studio(bpy, sc, st, center_z, cam.location[1])
    override = scn.label_material(bpy)
    t_setup = time.time() - t0

    tmp = Path(workdir or tempfile.gettempdir())
    images, parsings = {}, {}
    view_names = list(JOINT_ORDER)
    scn.photo_mode(sc, bg, st, samples, d["seed"])
    for i, name in enumerate(view_names):
        for o, pos in zip(objs, world[i]["parts"]):
            scn.set_positions(o, pos)
        images[name] = scn.render_to_array(bpy, sc, tmp / f"psc_{index}_img.png")
    t_img = time.time() - t0 - t_setup
    scn.label_mode(sc, bg, override)
    for i, name in enumerate(view_names):
        for o, pos in zip(objs, world[i]["parts"]):
            scn.set_positions(o, pos)
        parsings[name] = labels.decode_labels(scn.render_to_array(bpy, sc, tmp / f"psc_{index}_lab.png"))
    t_lab = time.time() - t0 - t_setup - t_img

    sc.view_layers[0].update()
    poses = []
    for w in world:
        bvh = labels.body_bvh(w["body"], body.faces)
        poses.append(labels.joints_2d(sc, cam, bvh, w["joints"]))
    poses = np.array(poses)
    for f in tmp.glob(f"psc_{index}_*.png"):
        f.unlink()
    meta = {k: d[k] for k in ("split", "index", "seed", "family", "shape", "outfit", "hair", "studio")}
    meta["pose_style"] = d["pose"]["style"]
    meta["arm_lift"] = out["arm_lift"]
    meta["timing_s"] = {"setup": round(t_setup, 2), "images": round(t_img, 2), "labels": round(t_lab, 2),
                        "total": round(time.time() - t0, 2)}
    return {"images": images, "parsings": parsings, "views": view_names, "poses8": poses[:8],
            "interp_poses": poses[8:], "interp_ts": d["interp_ts"], "meta": meta, "resolution": resolution}
