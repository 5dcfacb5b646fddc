"""One sample: a person on a turntable, 8 rendered views with parsings, and 16 poses.

Views are turntable angles theta (degrees), named as in the original layout (layout.py):
right = 90 (the person's left side faces the camera, so they face the image's left edge),
front = 0, left = 270, back = 180, mid0 = 45, mid1 = 315, mid2 = 225, mid3 = 135.

Styles: "photo" (the default: product-photo studio and shop garments) and "classic" (the
look of generator version 1: grey studio, mannequin outfits, full body; a classic sample has
version 1's pixels and labels, written in the original order). Framings: "photo" (a mix of
full body and knee-up/thigh-up crops, see scene.sample_framing) or "full" (full body).
With images=False only the label pass runs (parsings and joints, no Cycles image).
"""
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from . import body as bodymod
from . import garments, hair as hairmod, labels, layout, patterns, scene as scn
from .geometry import vertex_normals
from .parts import FACE, SKIN, Part
from .seeds import FAMILY, rng, sample_seed

STYLES = ("photo", "classic")
FRAMINGS = ("photo", "full")


def interpolation(r, style):
    """Two in-between poses per transition: (angles, ts) in the order the poses are computed,
    and per joint_interpolation row (in the original order) the index into them and its t."""
    angles, ts = [], []
    if style == "classic":
        # version 1's draws: transitions front->left->back->right->front at theta 90 (j + s)
        for j in range(4):
            for s in (r.uniform(0.06, 0.46), r.uniform(0.54, 0.94)):
                angles.append(90.0 * (j + s))
                ts.append(round(float(s), 2))
        return angles, layout.old_interp_to_new(ts)
    for k in range(4):
        for t in (r.uniform(0.06, 0.46), r.uniform(0.54, 0.94)):
            angles.append(layout.interp_angle(k, t))
            ts.append(round(float(t), 2))
    return angles, list(enumerate(ts))


def design(split, index, style="photo", framing=None):
    """Every random choice of a sample, as plain data (no Blender, no anny)."""
    family = FAMILY[split]
    framing = framing or ("full" if style == "classic" else "photo")
    shape = bodymod.sample_shape(rng(split, index, "body"), family)
    pr = rng(split, index, "pose")
    pose = bodymod.sample_pose(pr)
    interp_angles, interp_rows = interpolation(pr, style)
    outfit_rng = rng(split, index, "outfit")
    if style == "classic":
        outfit = garments.sample_outfit(outfit_rng, family)
        studio = scn.sample_scene(rng(split, index, "scene"))
        # version 1 computed the views in its own order; keep it, so classic pixels stay bit for bit
        views = [layout.OLD_TO_NEW[v] for v in layout.OLD_VIEWS]
    else:
        outfit = garments.sample_photo_outfit(outfit_rng, family)
        studio = scn.sample_photo_scene(rng(split, index, "scene"))
        views = list(layout.VIEWS)
    hair = hairmod.sample_hair(rng(split, index, "hair"), shape)
    frame = scn.sample_framing(rng(split, index, "framing"), framing)
    return {"split": split, "index": int(index), "seed": sample_seed(split, index), "family": family,
            "style": style, "shape": shape, "pose": pose, "views": views, "interp_angles": interp_angles,
            "interp_rows": interp_rows, "outfit": outfit, "hair": hair, "studio": studio, "framing": frame}


def pose_all(body, d):
    """Forward anny for the 8 views and 8 in-between poses, lifting an arm that cuts into the body."""
    angles = [layout.VIEW_ANGLES[v] for v in d["views"]] + d["interp_angles"]
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


def make(split, index, resolution=256, samples=32, threads=0, workdir=None, style="photo", framing=None,
         images=True):
    """Render one sample -> dict with images (unless images=False), parsings (by view name),
    poses in the original order and metadata."""
    import bpy

    t0 = time.time()
    body = bodymod.load_body_model()
    d = design(split, index, style, framing)
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
    if images:  # the label pass overrides every material: geometry-only samples need none
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
    if style == "classic":
        scn.backdrop(bpy, st["backdrop"], st["wall_distance"], 0)
    else:
        scn.photo_backdrop(bpy, st)
    cam = scn.camera(bpy, sc, st["focal_mm"])
    allpts = np.concatenate([np.concatenate(w["parts"]) for w in world[:8]])
    if d["framing"]["kind"] == "full":
        scn.frame_person(sc, cam, st, allpts)
    else:
        scn.frame_crop(sc, cam, st, d["framing"], allpts, np.stack([w["joints"] for w in world[:8]]))
    center_z = 0.5 * (allpts[:, 2].min() + allpts[:, 2].max())
    if style == "classic":
        world_node, bg, _ = scn.studio(bpy, sc, st, center_z, cam.location[1])
    else:
        world_node, bg, _ = scn.photo_studio(bpy, sc, st, center_z, cam)
    override = scn.label_material(bpy)
    t_setup = time.time() - t0

    tmp = Path(workdir or tempfile.gettempdir())
    pictures, parsings = {}, {}
    view_names = d["views"]  # the order the views are rendered in
    if images:
        scn.photo_mode(sc, bg, st, samples, d["seed"])
        for i, name in enumerate(view_names):
            for o, pos in zip(objs, world[i]["parts"]):
                scn.set_positions(o, pos)
            pictures[name] = scn.render_to_array(bpy, sc, tmp / f"psc_{index}_img.png")
    t_img = time.time() - t0 - t_setup
    scn.label_mode(sc, bg, override, d["seed"])
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
    meta = {k: d[k] for k in ("split", "index", "seed", "family", "style", "shape", "outfit", "hair", "studio",
                              "framing")}
    meta["pose_style"] = d["pose"]["style"]
    meta["arm_lift"] = out["arm_lift"]
    meta["timing_s"] = {"setup": round(t_setup, 2), "images": round(t_img, 2), "labels": round(t_lab, 2),
                        "total": round(time.time() - t0, 2)}
    # rows in the original order: views by name, in-between poses per interp_rows
    poses8 = poses[[view_names.index(v) for v in layout.VIEWS]]
    interp = poses[8:][[i for i, _ in d["interp_rows"]]]
    return {"images": pictures if images else None, "parsings": parsings, "poses8": poses8,
            "interp_poses": interp, "interp_ts": [t for _, t in d["interp_rows"]], "meta": meta,
            "resolution": resolution}
