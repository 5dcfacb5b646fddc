"""The Blender side: an empty scene, a studio (backdrop, soft area lights, camera), mesh
objects for the Parts, and the two render set-ups (photo, and flat label colours).

Objects are built once per sample; between views only their vertex positions change.
"""
import math

import numpy as np

from . import patterns

# Label pass colours: every channel 0 or 1, so the 8-bit output is exact whatever the view
# transform does to mid-tones. Decoded back to class ids in labels.decode_labels.
LABEL_RGB = np.array([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1)], float)

SKIN_TONES = [  # sRGB, light to dark
    (246, 220, 200), (236, 200, 170), (224, 180, 150), (205, 160, 125), (185, 135, 100), (160, 110, 80),
    (130, 85, 60), (100, 65, 45), (75, 50, 35),
]
BACKDROPS = [(235, 235, 232), (215, 215, 215), (190, 190, 192), (160, 160, 162), (225, 215, 200), (200, 215, 230),
             (210, 225, 210), (230, 210, 210), (120, 125, 130)]


def sample_scene(rng):
    """Studio, camera and lighting parameters of one sample."""
    return {
        "skin": patterns._jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]),
        "backdrop": patterns._jitter(rng, BACKDROPS[int(rng.integers(len(BACKDROPS)))]),
        "wall_distance": float(rng.uniform(1.6, 3.0)),
        "focal_mm": float(rng.uniform(45, 85)),
        "fill_fraction": float(rng.uniform(0.8, 0.9)),
        "camera_height": float(rng.uniform(-0.08, 0.12)),  # offset from mid-height, in body heights
        "offset_x": float(rng.uniform(-0.03, 0.03)),  # fraction of the frame
        "offset_y": float(rng.uniform(-0.025, 0.025)),
        "key_azimuth": float(rng.choice([-1, 1]) * rng.uniform(25, 60)),
        "key_elevation": float(rng.uniform(20, 45)),
        "key_size": float(rng.uniform(1.5, 3.0)),
        "key_power": float(rng.uniform(120, 200)),
        "fill_ratio": float(rng.uniform(0.25, 0.55)),
        "rim_ratio": float(rng.uniform(0.3, 0.9)),
        "ambient": float(rng.uniform(0.1, 0.22)),
        "exposure": float(rng.uniform(-0.45, -0.05)),
    }


def reset(bpy):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def make_mesh_object(bpy, name, verts, faces, rest=None, face_labels=None):
    """A mesh object from numpy arrays; 'rest' becomes a point attribute for patterns and
    'psc_label' a face attribute holding the label pass colour."""
    mesh = bpy.data.meshes.new(name)
    n, f = len(verts), len(faces)
    mesh.vertices.add(n)
    mesh.vertices.foreach_set("co", np.asarray(verts, np.float32).reshape(-1))
    mesh.loops.add(3 * f)
    mesh.loops.foreach_set("vertex_index", np.asarray(faces, np.int32).reshape(-1))
    mesh.polygons.add(f)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * f, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(f, dtype=bool))
    mesh.update()
    mesh.validate()
    if rest is not None:
        a = mesh.attributes.new("rest", "FLOAT_VECTOR", "POINT")
        a.data.foreach_set("vector", np.asarray(rest, np.float32).reshape(-1))
    if face_labels is not None:
        a = mesh.attributes.new("psc_label", "FLOAT_COLOR", "FACE")
        rgba = np.concatenate([LABEL_RGB[face_labels], np.ones((f, 1))], 1)
        a.data.foreach_set("color", rgba.astype(np.float32).reshape(-1))
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def set_positions(obj, verts):
    obj.data.vertices.foreach_set("co", np.asarray(verts, np.float32).reshape(-1))
    obj.data.update()


def principled(bpy, name, colour, roughness, **extra):
    mat = bpy.data.materials.new(name)
    g = patterns.Graph(mat)
    out = g.node("ShaderNodeOutputMaterial")
    bsdf = g.node("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = tuple(colour) + (1.0,)
    bsdf.inputs["Roughness"].default_value = roughness
    for k, v in extra.items():
        bsdf.inputs[k].default_value = v
    g.link(bsdf.outputs[0], out.inputs["Surface"])
    return mat, g, bsdf


def hair_material(bpy, colour, seed):
    """Hair colour with strands: thin vertical bands along the hair's angle coordinate."""
    mat, g, bsdf = principled(bpy, "hair", colour, 0.4)
    vec, x, y, z = g.xyz()
    n = g.node("ShaderNodeTexWave", wave_type="BANDS", bands_direction="X")
    g.link(vec, n.inputs["Vector"])
    n.inputs["Scale"].default_value = 180.0
    n.inputs["Distortion"].default_value = 6.0
    n.inputs["Detail Scale"].default_value = 2.0
    lighter = tuple(min(1.0, c * 1.8 + 0.01) for c in colour)
    g.link(g.mix(g.math("MULTIPLY", n.outputs["Fac"], 0.6), colour, lighter), bsdf.inputs["Base Color"])
    bump = g.node("ShaderNodeBump")
    bump.inputs["Strength"].default_value = 0.25
    g.link(n.outputs["Fac"], bump.inputs["Height"])
    g.link(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def label_material(bpy):
    """Flat emission of the 'psc_label' face colour: the whole label pass is this one material."""
    mat = bpy.data.materials.new("psc_label")
    g = patterns.Graph(mat)
    out = g.node("ShaderNodeOutputMaterial")
    attr = g.node("ShaderNodeAttribute", attribute_name="psc_label")
    em = g.node("ShaderNodeEmission")
    em.inputs["Strength"].default_value = 1.0
    g.link(attr.outputs["Color"], em.inputs["Color"])
    g.link(em.outputs[0], out.inputs["Surface"])
    return mat


def backdrop(bpy, colour, wall_y, label):
    """A cyclorama: floor, a curved cove and a wall behind the person, one plain colour."""
    prof = [(-12.0, 0.0), (wall_y - 0.8, 0.0)]
    for a in np.linspace(0, math.pi / 2, 9)[1:]:
        prof.append((wall_y - 0.8 + 0.8 * math.sin(a), 0.8 - 0.8 * math.cos(a)))
    prof.append((wall_y, 8.0))
    xs = (-12.0, 12.0)
    verts = [(x, y, z) for (y, z) in prof for x in xs]
    faces = []
    for i in range(len(prof) - 1):
        a, b, c, d = 2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3
        faces += [(a, b, d), (a, d, c)]
    obj = make_mesh_object(bpy, "backdrop", np.array(verts), np.array(faces), face_labels=np.full(len(faces), label))
    obj.data.polygons.foreach_set("use_smooth", np.zeros(len(faces), dtype=bool))
    obj.visible_diffuse = False  # lit and shadowed, but its bounce light is left to the world
    obj.visible_glossy = False
    mat, _, _ = principled(bpy, "backdrop", colour, 1.0)
    obj.data.materials.append(mat)
    return obj


def look_at(obj, target):
    from mathutils import Vector

    d = Vector(target) - obj.location
    obj.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()


def area_light(bpy, name, location, target, size, power):
    light = bpy.data.lights.new(name, "AREA")
    light.shape = "DISK"
    light.size = size
    light.energy = power
    obj = bpy.data.objects.new(name, light)
    obj.location = location
    obj.visible_camera = False
    bpy.context.scene.collection.objects.link(obj)
    look_at(obj, target)
    return obj


def studio(bpy, scene, params, center_z, camera_distance):
    """Lights around the camera's side of the turntable (the person turns, the studio stays)."""
    world = bpy.data.worlds.new("world")
    scene.world = world
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1.0)
    bg.inputs["Strength"].default_value = params["ambient"]
    target = (0.0, 0.0, center_z)
    lights = []

    def around(az, el, dist):
        a, e = math.radians(az), math.radians(el)
        return (dist * math.cos(e) * math.sin(a), -dist * math.cos(e) * math.cos(a), center_z + dist * math.sin(e))

    k = params["key_power"]
    lights.append(area_light(bpy, "key", around(params["key_azimuth"], params["key_elevation"], 3.5), target,
                             params["key_size"], k))
    lights.append(area_light(bpy, "fill", around(-params["key_azimuth"] * 1.3, 10, 4.0), target, 3.0,
                             k * params["fill_ratio"]))
    lights.append(area_light(bpy, "rim", around(180 - params["key_azimuth"], 50, 3.0), target, 1.5,
                             k * params["rim_ratio"]))
    return world, bg, lights


def camera(bpy, scene, focal_mm):
    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = focal_mm
    cam_data.sensor_width = 36.0
    cam_data.sensor_fit = "HORIZONTAL"
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def frame_person(scene, cam, params, points):
    """Place the camera so that all views' points fill `fill_fraction` of the frame height,
    centred (with a small random offset). Two passes: aim, then correct by the measured size."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    lo, hi = points[:, 2].min(), points[:, 2].max()
    h = hi - lo
    fov = 2 * math.atan(18.0 / cam.data.lens)
    dist = h / (params["fill_fraction"] * 2 * math.tan(fov / 2))
    mid = 0.5 * (lo + hi)
    sub = points[:: max(1, len(points) // 4000)]
    for _ in range(3):
        cz = mid + params["camera_height"] * h
        cam.location = (0.0, -dist, cz)
        cam.rotation_euler = (math.pi / 2 - math.atan2(cz - mid, dist), 0.0, 0.0)
        cam.data.shift_x = 0.0
        cam.data.shift_y = 0.0
        scene.view_layers[0].update()
        uv = np.array([tuple(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in sub])
        span = uv[:, 1].max() - uv[:, 1].min()
        dist *= span / params["fill_fraction"]
    scene.view_layers[0].update()
    uv = np.array([tuple(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in sub])
    # lens shift centres the person exactly (shift is in units of the frame width)
    cam.data.shift_x = float(0.5 * (uv[:, 0].max() + uv[:, 0].min()) - 0.5 - params["offset_x"])
    cam.data.shift_y = float(0.5 * (uv[:, 1].max() + uv[:, 1].min()) - 0.5 - params["offset_y"])
    scene.view_layers[0].update()
    return dist


def photo_mode(scene, world_bg, params, samples, seed):
    """Cycles, denoised, soft: the image pass."""
    c = scene.cycles
    scene.render.engine = "CYCLES"
    c.device = "CPU"
    c.samples = samples
    c.use_adaptive_sampling = False
    c.use_denoising = True
    c.denoiser = "OPENIMAGEDENOISE"
    c.seed = seed % (1 << 31)
    c.use_animated_seed = False
    # Measured on 2 cores: short paths, no light tree for 3 lights and a backdrop that is
    # seen and shadowed but not bounced from cut the CPU time per image by ~45 %; the fast
    # denoiser prefilter saves another ~1 s with no visible change.
    c.max_bounces = 2
    c.diffuse_bounces = 1
    c.glossy_bounces = 1
    c.use_light_tree = False
    c.denoising_prefilter = "FAST"
    c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
    c.transmission_bounces = 0
    c.volume_bounces = 0
    c.transparent_max_bounces = 2
    c.caustics_reflective = False
    c.caustics_refractive = False
    c.filter_width = 1.5
    scene.render.dither_intensity = 0.0
    scene.view_layers[0].material_override = None
    world_bg.inputs["Strength"].default_value = params["ambient"]
    vs = scene.view_settings
    vs.view_transform = "Standard"
    vs.look = "None"
    vs.exposure = params["exposure"]
    vs.gamma = 1.0
    for light in (o for o in scene.objects if o.type == "LIGHT"):
        light.hide_render = False


def label_mode(scene, world_bg, override, seed):
    """One sample per pixel, no filter, flat emission, black world: every pixel is one class.
    (The first lines repeat what photo_mode set, for geometry-only samples that skip it.)"""
    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.device = "CPU"
    c.seed = seed % (1 << 31)
    c.use_animated_seed = False
    scene.render.dither_intensity = 0.0
    c.samples = 1
    c.use_denoising = False
    c.filter_width = 0.01
    c.max_bounces = 0
    scene.view_layers[0].material_override = override
    world_bg.inputs["Strength"].default_value = 0.0
    vs = scene.view_settings
    vs.view_transform = "Standard"
    vs.look = "None"
    vs.exposure = 0.0
    vs.gamma = 1.0
    for light in (o for o in scene.objects if o.type == "LIGHT"):
        light.hide_render = True


def output_settings(scene, resolution, threads):
    r = scene.render
    r.resolution_x = r.resolution_y = resolution
    r.resolution_percentage = 100
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 0
    r.use_compositing = False
    r.use_sequencer = False
    r.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        r.threads = threads
    r.use_persistent_data = False


def render_to_array(bpy, scene, path):
    from PIL import Image

    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


# ---------------------------------------------------------------- photo style and framings

# Seamless paper of product photos: white to light grey, a few warm or cool off-whites (sRGB).
PHOTO_BACKDROPS = [(246, 246, 246), (240, 240, 238), (232, 232, 232), (222, 222, 223), (210, 210, 212),
                   (242, 238, 232), (234, 230, 224), (230, 233, 238)]
PHOTO_BACKDROP_P = [0.22, 0.18, 0.16, 0.12, 0.08, 0.1, 0.07, 0.07]

# Framings of fashion photos: full body, or cut by the bottom edge between mid-calf and
# mid-thigh with the person filling the frame (sometimes the top of the head cut too).
FULL_BODY_SHARE = 0.3
HEAD_CUT_SHARE = 0.15  # of the crops


def sample_photo_scene(rng):
    """Studio, camera and lighting of a product photo: seamless white/grey paper, soft frontal light."""
    k = int(rng.choice(len(PHOTO_BACKDROPS), p=PHOTO_BACKDROP_P))
    grey = np.array(PHOTO_BACKDROPS[k], float) * rng.uniform(0.97, 1.02)
    cove = float(rng.uniform(1.2, 2.0))
    return {
        "skin": patterns._jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]),
        "backdrop": patterns.srgb_to_linear(np.clip(grey, 0, 250)),
        "backdrop_glow": float(rng.uniform(0.4, 0.8)),  # the paper's own light: keeps it white, shadows soft
        "cove_radius": cove,
        "wall_distance": cove + float(rng.uniform(0.45, 1.1)),
        "focal_mm": float(rng.uniform(50, 100)),
        "fill_fraction": float(rng.uniform(0.82, 0.92)),
        "camera_height": float(rng.uniform(-0.06, 0.1)),
        "offset_x": float(rng.uniform(-0.03, 0.03)),
        "offset_y": float(rng.uniform(-0.02, 0.02)),
        "key_azimuth": float(rng.choice([-1, 1]) * rng.uniform(0, 25)),
        "key_elevation": float(rng.uniform(8, 28)),
        "key_size": float(rng.uniform(3.0, 5.0)),
        "key_power": float(rng.uniform(130, 190)),
        "fill_ratio": float(rng.uniform(0.45, 0.85)),
        "top_ratio": float(rng.uniform(0.15, 0.45)),
        "ambient": float(rng.uniform(0.25, 0.45)),
        "exposure": float(rng.uniform(-0.45, -0.2)),
    }


def sample_framing(rng, framing):
    """One framing per sample, shared by all eight views (the camera does not move in a clip)."""
    if framing == "full" or rng.random() < FULL_BODY_SHARE:
        return {"kind": "full"}
    head_cut = rng.random() < HEAD_CUT_SHARE
    return {
        "kind": "crop",
        # where the bottom edge cuts the legs: 0 mid-calf, 0.5 the knees, 1 mid-thigh
        "cut": float(rng.uniform(0.0, 1.0)),
        # space above the head, fraction of the frame; negative: the top of the head is cut off
        "top_margin": float(-rng.uniform(0.02, 0.1) if head_cut else rng.uniform(0.015, 0.06)),
        "camera_level": float(rng.uniform(0.45, 0.75)),  # camera height within the framed span
    }


def cut_height(joints8, cut):
    """World height of the bottom edge: mid-calf (cut 0) -> knee (0.5) -> mid-thigh (1).
    joints8 (8, 18, 3) in OpenPose order, averaged over the views and both legs."""
    hip = joints8[:, [8, 11], 2].mean()
    knee = joints8[:, [9, 12], 2].mean()
    ankle = joints8[:, [10, 13], 2].mean()
    levels = [0.5 * (ankle + knee), knee, 0.5 * (knee + hip)]
    return float(np.interp(cut, [0.0, 0.5, 1.0], levels))


def frame_crop(scene, cam, params, fr, points, joints8):
    """A fashion crop: the bottom edge at the cut height on the turntable axis, the top of the
    person (over all views) `top_margin` below the top edge, centred across. Returns the cut height."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    z_cut = cut_height(joints8, fr["cut"])
    above = points[points[:, 2] >= z_cut]
    sub = above[:: max(1, len(above) // 4000)]
    top = above[:, 2].max()
    h = top - z_cut
    span = 1.0 - fr["top_margin"]
    fov = 2 * math.atan(18.0 / cam.data.lens)
    dist = h / (span * 2 * math.tan(fov / 2))
    cz = z_cut + fr["camera_level"] * h
    mid = 0.5 * (z_cut + top)
    for _ in range(4):
        cam.location = (0.0, -dist, cz)
        cam.rotation_euler = (math.pi / 2 - math.atan2(cz - mid, dist), 0.0, 0.0)
        cam.data.shift_x = cam.data.shift_y = 0.0
        scene.view_layers[0].update()
        v_top = max(world_to_camera_view(scene, cam, Vector(p))[1] for p in sub)
        v_bot = world_to_camera_view(scene, cam, Vector((0.0, 0.0, z_cut)))[1]
        dist *= (v_top - v_bot) / span
    scene.view_layers[0].update()
    uv = np.array([tuple(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in sub])
    v_bot = world_to_camera_view(scene, cam, Vector((0.0, 0.0, z_cut)))[1]
    cam.data.shift_x = float(0.5 * (uv[:, 0].max() + uv[:, 0].min()) - 0.5 - params["offset_x"])
    cam.data.shift_y = float(v_bot)
    scene.view_layers[0].update()
    return z_cut


def photo_backdrop(bpy, params):
    """Seamless paper: floor, a wide cove and wall, lit by its own soft glow so that no floor line shows."""
    wall_y, radius = params["wall_distance"], params["cove_radius"]
    prof = [(-14.0, 0.0), (wall_y - radius, 0.0)]
    for a in np.linspace(0, math.pi / 2, 17)[1:]:
        prof.append((wall_y - radius + radius * math.sin(a), radius - radius * math.cos(a)))
    prof.append((wall_y, 10.0))
    verts = [(x, y, z) for (y, z) in prof for x in (-14.0, 14.0)]
    faces = []
    for i in range(len(prof) - 1):
        a, b, c, d = 2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3
        faces += [(a, b, d), (a, d, c)]
    obj = make_mesh_object(bpy, "backdrop", np.array(verts), np.array(faces), face_labels=np.zeros(len(faces), int))
    obj.visible_diffuse = False
    obj.visible_glossy = False
    colour = tuple(params["backdrop"])
    mat, _, bsdf = principled(bpy, "backdrop", colour, 1.0)
    bsdf.inputs["Emission Color"].default_value = colour + (1.0,)
    bsdf.inputs["Emission Strength"].default_value = params["backdrop_glow"]
    obj.data.materials.append(mat)
    return obj


def photo_studio(bpy, scene, params, center_z, cam):
    """Soft frontal light: a large key near the camera, a fill on the other side, a soft top light."""
    world = bpy.data.worlds.new("world")
    scene.world = world
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.9, 0.9, 0.9, 1.0)
    bg.inputs["Strength"].default_value = params["ambient"]
    target = (0.0, 0.0, center_z)

    def around(az, el, dist):
        a, e = math.radians(az), math.radians(el)
        return (dist * math.cos(e) * math.sin(a), -dist * math.cos(e) * math.cos(a), center_z + dist * math.sin(e))

    k = params["key_power"]
    lights = [
        area_light(bpy, "key", around(params["key_azimuth"], params["key_elevation"], 3.5), target,
                   params["key_size"], k),
        area_light(bpy, "fill", around(-params["key_azimuth"] - np.sign(params["key_azimuth"] or 1) * 35, 5, 3.5),
                   target, 3.5, k * params["fill_ratio"]),
        area_light(bpy, "top", (0.0, -0.4, center_z + 2.6), target, 2.5, k * params["top_ratio"]),
    ]
    return world, bg, lights
