"""Garment materials: colours and procedural patterns drawn in the garment's rest coordinates.

A material is first a plain dict (the "spec": family, colours, scale), drawn from a sample's
random stream, then turned into Blender shader nodes. Patterns are evaluated on the mesh
attribute "rest" (rest-pose position), so they stick to the cloth as the body moves and have
no UV seams. Train and held-out use disjoint pattern families (see FAMILIES); colours are
shared.
"""
import colorsys

import numpy as np

FAMILIES = {
    "train": {
        "top": {"solid": 0.2, "hstripes": 0.17, "vstripes": 0.1, "checks": 0.13, "dots": 0.13, "print": 0.12,
                "logo": 0.15},
        "bottom": {"solid": 0.45, "denim": 0.3, "checks": 0.1, "hstripes": 0.05, "dots": 0.1},
    },
    "heldout": {
        "top": {"solid": 0.15, "plaid": 0.2, "chevron": 0.15, "diagonal": 0.15, "camo": 0.15, "star": 0.2},
        "bottom": {"solid": 0.4, "denim": 0.2, "plaid": 0.2, "diagonal": 0.2},
    },
}
# Garment colours (sRGB 0-255): wide enough that colour alone does not identify a garment.
GARMENT_COLOURS = [
    (20, 20, 22), (240, 240, 236), (128, 128, 130), (60, 62, 66), (25, 35, 80), (45, 70, 140), (110, 160, 210),
    (150, 25, 35), (200, 45, 45), (230, 120, 140), (240, 190, 200), (110, 30, 70), (90, 40, 120), (160, 130, 200),
    (30, 90, 60), (90, 120, 60), (150, 170, 90), (20, 120, 120), (100, 200, 190), (200, 160, 40), (240, 210, 90),
    (220, 110, 40), (120, 80, 50), (190, 160, 120), (230, 215, 185), (170, 60, 30),
]
DENIM = [(40, 60, 100), (60, 90, 140), (90, 120, 165), (30, 35, 50), (50, 50, 55)]
SHOE_COLOURS = [(15, 15, 15), (235, 235, 235), (90, 55, 30), (140, 100, 60), (40, 40, 60), (160, 30, 30),
                (200, 180, 150)]


def srgb_to_linear(c):
    c = np.asarray(c, float) / 255.0
    return tuple(np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).tolist())


def _jitter(rng, rgb):
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255))
    h = (h + rng.uniform(-0.02, 0.02)) % 1.0
    s = float(np.clip(s * rng.uniform(0.85, 1.15), 0, 1))
    v = float(np.clip(v * rng.uniform(0.85, 1.1), 0, 1))
    return srgb_to_linear(np.array(colorsys.hsv_to_rgb(h, s, v)) * 255)


def _pick(rng, table):
    return table[int(rng.integers(len(table)))]


def sample_material(rng, family, slot):
    """A material spec for a garment slot: 'top', 'bottom' or 'shoes'."""
    if slot == "shoes":
        return {"family": "solid", "colours": [_jitter(rng, _pick(rng, SHOE_COLOURS))],
                "roughness": float(rng.uniform(0.3, 0.7)), "scale": 1.0}
    table = FAMILIES[family][slot]
    names = list(table)
    fam = str(rng.choice(names, p=np.array(list(table.values())) / sum(table.values())))
    base = _pick(rng, DENIM) if fam == "denim" else _pick(rng, GARMENT_COLOURS)
    colours = [_jitter(rng, base)]
    for _ in range(2):
        # contrasting colours: at least a quarter of the value range away from the base
        while True:
            c = _pick(rng, GARMENT_COLOURS)
            if abs(np.mean(c) - np.mean(base)) > 60 or rng.random() < 0.15:
                break
        colours.append(_jitter(rng, c))
    return {
        "family": fam,
        "colours": colours,
        "scale": float(rng.uniform(0.6, 1.6)),
        "duty": float(rng.uniform(0.3, 0.6)),
        "roughness": float(rng.uniform(0.55, 0.9)),
        "logo": int(rng.integers(4)),
        "logo_size": float(rng.uniform(0.06, 0.12)),
        "logo_z": float(rng.uniform(-0.04, 0.06)),
    }


# Shop-photo garments (style "photo"): solid colours first, then florals, stripes and prints.
# Held-out patterns stay apart from train ones (a daisy print is not a blossom print).
PHOTO_FAMILIES = {
    "train": {
        "top": {"solid": 0.5, "floral": 0.16, "hstripes": 0.09, "vstripes": 0.06, "dots": 0.07, "print": 0.07,
                "checks": 0.05},
        "bottom": {"solid": 0.6, "denim": 0.18, "floral": 0.06, "vstripes": 0.05, "checks": 0.06, "print": 0.05},
    },
    "heldout": {
        "top": {"solid": 0.5, "daisy": 0.16, "diagonal": 0.1, "plaid": 0.08, "chevron": 0.08, "camo": 0.08},
        "bottom": {"solid": 0.6, "denim": 0.16, "daisy": 0.08, "plaid": 0.08, "diagonal": 0.08},
    },
}
# Fashion colours (sRGB): neutrals, pastels and a few strong ones.
PHOTO_COLOURS = [
    (18, 18, 20), (245, 244, 240), (236, 228, 212), (210, 190, 160), (175, 140, 105), (120, 90, 70),
    (130, 130, 134), (60, 62, 70), (28, 36, 70), (70, 100, 160), (165, 195, 225), (200, 30, 45), (150, 25, 45),
    (225, 130, 150), (245, 200, 205), (200, 180, 220), (110, 60, 120), (40, 100, 70), (110, 125, 70),
    (180, 200, 170), (215, 170, 50), (245, 225, 150), (200, 100, 60), (60, 150, 150), (250, 250, 250),
]
# Cloth: (roughness range, sheen weight range, fold bump strength range), by fabric.
FABRICS = {"cotton": ((0.7, 0.9), (0.2, 0.5), (0.05, 0.15)), "jersey": ((0.6, 0.85), (0.3, 0.6), (0.03, 0.1)),
           "satin": ((0.25, 0.42), (0.1, 0.3), (0.08, 0.2)), "chiffon": ((0.5, 0.75), (0.5, 0.9), (0.1, 0.25)),
           "wool": ((0.8, 0.95), (0.4, 0.8), (0.05, 0.12))}


def sample_photo_material(rng, family, slot):
    """A shop garment's material spec: a photo pattern family, colours and a fabric's shading."""
    table = PHOTO_FAMILIES[family][slot]
    fam = str(rng.choice(list(table), p=np.array(list(table.values())) / sum(table.values())))
    base = _pick(rng, DENIM) if fam == "denim" else _pick(rng, PHOTO_COLOURS)
    colours = [_jitter(rng, base)]
    for _ in range(2):
        while True:
            c = _pick(rng, PHOTO_COLOURS)
            if abs(np.mean(c) - np.mean(base)) > 50 or rng.random() < 0.2:
                break
        colours.append(_jitter(rng, c))
    fabric = "cotton" if fam == "denim" else str(rng.choice(list(FABRICS), p=[0.3, 0.25, 0.15, 0.15, 0.15]))
    rough, sheen, fold = FABRICS[fabric]
    return {
        "family": fam,
        "colours": colours,
        "scale": float(rng.uniform(0.7, 1.5)),
        "duty": float(rng.uniform(0.3, 0.6)),
        "roughness": float(rng.uniform(*rough)),
        "fabric": fabric,
        "sheen": float(rng.uniform(*sheen)),
        "fold_bump": float(rng.uniform(*fold)),
        "fold_scale": float(rng.uniform(5.0, 11.0)),
        "seed": float(rng.uniform(0, 100)),
    }


# ---------------------------------------------------------------- Blender nodes

class Graph:
    """A tiny helper to write shader node graphs as expressions."""

    def __init__(self, material):
        material.use_nodes = True
        self.tree = material.node_tree
        self.tree.nodes.clear()

    def node(self, kind, **props):
        n = self.tree.nodes.new(kind)
        for k, v in props.items():
            setattr(n, k, v)
        return n

    def link(self, out, sock):
        self.tree.links.new(out, sock)

    def set(self, sock, value):
        if hasattr(value, "links"):  # a socket
            self.link(value, sock)
        else:
            sock.default_value = value

    def math(self, op, a, b=0.0):
        n = self.node("ShaderNodeMath", operation=op)
        self.set(n.inputs[0], a)
        self.set(n.inputs[1], b)
        return n.outputs[0]

    def mix(self, fac, a, b):
        n = self.node("ShaderNodeMix", data_type="RGBA")
        ins = {s.identifier: s for s in n.inputs}
        self.set(ins["Factor_Float"], fac)
        self.set(ins["A_Color"], tuple(a) + (1.0,) if isinstance(a, tuple) else a)
        self.set(ins["B_Color"], tuple(b) + (1.0,) if isinstance(b, tuple) else b)
        return {s.identifier: s for s in n.outputs}["Result_Color"]

    def xyz(self, name="rest"):
        attr = self.node("ShaderNodeAttribute", attribute_name=name)
        sep = self.node("ShaderNodeSeparateXYZ")
        self.link(attr.outputs["Vector"], sep.inputs[0])
        return attr.outputs["Vector"], sep.outputs[0], sep.outputs[1], sep.outputs[2]


def _wave(g, vec, direction, scale, profile="SIN"):
    n = g.node("ShaderNodeTexWave", wave_type="BANDS", bands_direction=direction, wave_profile=profile)
    g.link(vec, n.inputs["Vector"])
    n.inputs["Scale"].default_value = scale
    n.inputs["Distortion"].default_value = 0.0
    n.inputs["Detail"].default_value = 0.0
    return n.outputs["Fac"]


def pattern_colour(g, spec, logo_image=None):
    """Build the base-colour output socket of a pattern spec."""
    fam, c, s = spec["family"], spec["colours"], spec["scale"]
    vec, x, y, z = g.xyz()
    if fam == "solid":
        return g.mix(0.0, c[0], c[0])
    if fam in ("hstripes", "vstripes", "diagonal"):
        d = {"hstripes": "Z", "vstripes": "X", "diagonal": "DIAGONAL"}[fam]
        w = _wave(g, vec, d, 8.0 * s)
        return g.mix(g.math("GREATER_THAN", w, spec["duty"]), c[0], c[1])
    if fam == "checks":
        n = g.node("ShaderNodeTexChecker")
        g.link(vec, n.inputs["Vector"])
        n.inputs["Scale"].default_value = 12.0 * s
        return g.mix(n.outputs["Fac"], c[0], c[1])
    if fam == "plaid":
        a = _wave(g, vec, "X", 5.0 * s)
        b = _wave(g, vec, "Z", 5.0 * s)
        t = g.mix(g.math("GREATER_THAN", a, 0.6), c[0], c[1])
        return g.mix(g.math("MULTIPLY", g.math("GREATER_THAN", b, 0.6), 0.7), t, c[2])
    if fam == "dots":
        comb = g.node("ShaderNodeCombineXYZ")
        g.link(x, comb.inputs[0])
        g.link(z, comb.inputs[1])
        v = g.node("ShaderNodeTexVoronoi", voronoi_dimensions="2D")
        g.link(comb.outputs[0], v.inputs["Vector"])
        v.inputs["Scale"].default_value = 14.0 * s
        v.inputs["Randomness"].default_value = 0.0
        return g.mix(g.math("LESS_THAN", v.outputs["Distance"], 0.18 + 0.2 * spec["duty"]), c[0], c[1])
    if fam in ("print", "camo"):
        if fam == "print":
            n = g.node("ShaderNodeTexNoise")
            g.link(vec, n.inputs["Vector"])
            n.inputs["Scale"].default_value = 6.0 * s
            n.inputs["Detail"].default_value = 1.0
            f = n.outputs["Fac"]
            return g.mix(g.math("GREATER_THAN", f, 0.56), g.mix(g.math("LESS_THAN", f, 0.42), c[0], c[2]), c[1])
        v = g.node("ShaderNodeTexVoronoi")
        g.link(vec, v.inputs["Vector"])
        v.inputs["Scale"].default_value = 7.0 * s
        sep = g.node("ShaderNodeSeparateColor")
        g.link(v.outputs["Color"], sep.inputs[0])
        r = sep.outputs[0]
        return g.mix(g.math("GREATER_THAN", r, 0.66), g.mix(g.math("GREATER_THAN", r, 0.33), c[0], c[1]), c[2])
    if fam in ("floral", "daisy"):
        return _flowers(g, spec, vec)
    if fam == "chevron":
        fx = g.math("ABSOLUTE", g.math("SUBTRACT", g.math("FRACT", g.math("MULTIPLY", x, 6.0 * s)), 0.5))
        v = g.math("ADD", g.math("MULTIPLY", z, 6.0 * s), g.math("MULTIPLY", fx, 0.8))
        return g.mix(g.math("GREATER_THAN", g.math("FRACT", v), spec["duty"]), c[0], c[1])
    if fam == "denim":
        n = g.node("ShaderNodeTexNoise")
        g.link(vec, n.inputs["Vector"])
        n.inputs["Scale"].default_value = 60.0
        w = _wave(g, vec, "DIAGONAL", 120.0)
        f = g.math("ADD", g.math("MULTIPLY", n.outputs["Fac"], 0.5), g.math("MULTIPLY", w, 0.3))
        lighter = tuple(min(1.0, v * 1.6) for v in c[0])
        return g.mix(f, c[0], lighter)
    if fam in ("logo", "star"):
        # a print on the chest: an image drawn with PIL, projected from the front onto (x, z)
        front = g.math("LESS_THAN", y, spec["front_y"])
        mp = g.node("ShaderNodeMapping")
        g.link(vec, mp.inputs["Vector"])
        size = spec["logo_size"]
        # (x, z) -> image uv in [0, 1]: u = x / (2 size) + 0.5, v = (z - zc) / (2 size) + 0.5
        comb = g.node("ShaderNodeCombineXYZ")
        g.link(g.math("ADD", g.math("DIVIDE", x, 2 * size), 0.5), comb.inputs[0])
        g.link(g.math("ADD", g.math("DIVIDE", g.math("SUBTRACT", z, spec["chest_z"]), 2 * size), 0.5), comb.inputs[1])
        tex = g.node("ShaderNodeTexImage", extension="CLIP", interpolation="Linear")
        tex.image = logo_image
        g.link(comb.outputs[0], tex.inputs["Vector"])
        alpha = g.math("MULTIPLY", tex.outputs["Alpha"], front)
        return g.mix(alpha, c[0], tex.outputs["Color"])
    raise ValueError(f"unknown pattern family {fam!r}")


def _flowers(g, spec, vec):
    """A flower print: one flower per jittered 3D cell, petals from the angle about the cell's
    centre (floral: 5-6 round petals and leaves; daisy: 9-12 thin petals, no leaves)."""
    c, s = spec["colours"], spec["scale"]
    daisy = spec["family"] == "daisy"
    sv = g.node("ShaderNodeVectorMath", operation="SCALE")
    g.link(vec, sv.inputs[0])
    sv.inputs["Scale"].default_value = (16.0 if daisy else 11.0) * s
    p = sv.outputs["Vector"]

    def layer(offset, n_petals, sharp, size, seed):
        q = g.node("ShaderNodeVectorMath", operation="ADD")
        g.link(p, q.inputs[0])
        q.inputs[1].default_value = offset
        cell = g.node("ShaderNodeVectorMath", operation="FLOOR")
        g.link(q.outputs[0], cell.inputs[0])
        local = g.node("ShaderNodeVectorMath", operation="FRACTION")
        g.link(q.outputs[0], local.inputs[0])
        rnd = g.node("ShaderNodeTexWhiteNoise", noise_dimensions="4D")
        g.link(cell.outputs[0], rnd.inputs["Vector"])
        rnd.inputs["W"].default_value = spec["seed"] + seed
        # centre jittered inside the cell: local - (0.5 + 0.25 (rand - 0.5))
        jit = g.node("ShaderNodeVectorMath", operation="MULTIPLY_ADD")
        g.link(rnd.outputs["Color"], jit.inputs[0])
        jit.inputs[1].default_value = (0.25, 0.25, 0.25)
        jit.inputs[2].default_value = (0.375, 0.375, 0.375)
        d = g.node("ShaderNodeVectorMath", operation="SUBTRACT")
        g.link(local.outputs[0], d.inputs[0])
        g.link(jit.outputs[0], d.inputs[1])
        r = g.node("ShaderNodeVectorMath", operation="LENGTH")
        g.link(d.outputs[0], r.inputs[0])
        sep = g.node("ShaderNodeSeparateXYZ")
        g.link(d.outputs[0], sep.inputs[0])
        ang = g.math("ARCTAN2", sep.outputs[2], g.math("ADD", sep.outputs[0], sep.outputs[1]))
        ang = g.math("ADD", ang, g.math("MULTIPLY", rnd.outputs["Value"], 6.283))
        petal = g.math("POWER", g.math("ABSOLUTE", g.math("COSINE", g.math("MULTIPLY", ang, n_petals / 2))), sharp)
        radius = g.math("MULTIPLY", g.math("ADD", g.math("MULTIPLY", petal, 0.55), 0.45), size)
        inside = g.math("LESS_THAN", r.outputs["Value"], radius)
        centre = g.math("LESS_THAN", r.outputs["Value"], size * 0.22)
        return inside, centre

    n = 10.0 if daisy else 5.0
    flower, centre = layer((0.0, 0.0, 0.0), n, 4.0 if daisy else 0.7, 0.34 * (0.8 + 0.4 * spec["duty"]), 0.0)
    col = g.mix(flower, c[0], c[1])
    if not daisy:  # leaves: a second, offset layer of two-lobed shapes under the flowers
        leaf, _ = layer((0.5, 0.31, 0.77), 2.0, 1.5, 0.26, 7.0)
        col = g.mix(g.math("MULTIPLY", leaf, g.math("SUBTRACT", 1.0, flower)), col, c[2])
    centre_col = tuple(min(1.0, v * 0.45) for v in c[1])
    return g.mix(g.math("MULTIPLY", centre, flower), col, centre_col)


def cloth_shading(g, bsdf, spec):
    """Sheen and folds of a photo garment: a vertical drape of soft waves plus small creases, as a bump."""
    vec, x, y, z = g.xyz()
    wave = g.node("ShaderNodeTexWave", wave_type="BANDS", bands_direction="X", wave_profile="SIN")
    g.link(vec, wave.inputs["Vector"])
    wave.inputs["Scale"].default_value = spec["fold_scale"]
    wave.inputs["Distortion"].default_value = 4.0
    wave.inputs["Detail"].default_value = 1.0
    wave.inputs["Detail Scale"].default_value = 1.5
    crease = g.node("ShaderNodeTexNoise")
    g.link(vec, crease.inputs["Vector"])
    crease.inputs["Scale"].default_value = 18.0
    crease.inputs["Detail"].default_value = 2.0
    height = g.math("ADD", wave.outputs["Fac"], g.math("MULTIPLY", crease.outputs["Fac"], 0.5))
    bump = g.node("ShaderNodeBump")
    bump.inputs["Strength"].default_value = spec["fold_bump"]
    bump.inputs["Distance"].default_value = 0.02
    g.link(height, bump.inputs["Height"])
    g.link(bump.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Sheen Weight"].default_value = spec["sheen"]
    bsdf.inputs["Sheen Roughness"].default_value = 0.4
    if spec["fabric"] == "satin":
        bsdf.inputs["Specular IOR Level"].default_value = 0.7


def logo_pixels(spec, size=128):
    """An RGBA logo drawn with PIL: train logos are circles, rings, bars and letters; held-out are stars."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c1 = tuple(int(round(255 * (v ** (1 / 2.2)))) for v in spec["colours"][1]) + (255,)
    c2 = tuple(int(round(255 * (v ** (1 / 2.2)))) for v in spec["colours"][2]) + (255,)
    k, m = spec["logo"], size // 8
    if spec["family"] == "star":
        pts = []
        for i in range(10 if k % 2 == 0 else 6):
            n = 10 if k % 2 == 0 else 6
            r = (size / 2 - m) * (1.0 if i % 2 == 0 else 0.45)
            a = np.pi / 2 + i * 2 * np.pi / n
            pts.append((size / 2 + r * np.cos(a), size / 2 - r * np.sin(a)))
        d.polygon(pts, fill=c1)
        if k >= 2:
            d.ellipse([size * 0.4, size * 0.4, size * 0.6, size * 0.6], fill=c2)
    elif k == 0:
        d.ellipse([m, m, size - m, size - m], fill=c1)
        d.ellipse([3 * m, 3 * m, size - 3 * m, size - 3 * m], fill=c2)
    elif k == 1:
        d.ellipse([m, m, size - m, size - m], outline=c1, width=2 * m)
    elif k == 2:
        for i in range(3):
            d.rectangle([m, m + i * 2.2 * m, size - m, m + i * 2.2 * m + 1.4 * m], fill=c1 if i != 1 else c2)
    else:
        from PIL import ImageFont
        try:
            font = ImageFont.load_default(size=int(size * 0.6))
        except TypeError:  # an old Pillow without scalable default font
            font = ImageFont.load_default()
        d.text((size / 2, size / 2), "PSC"[int(spec["logo_size"] * 100) % 3], fill=c1, font=font, anchor="mm")
    img = img.transpose(Image.FLIP_TOP_BOTTOM)  # Blender images start at the bottom row
    return np.asarray(img, dtype=np.float32) / 255.0


def make_material(bpy, name, spec):
    """A Principled BSDF garment material for a spec."""
    mat = bpy.data.materials.new(name)
    g = Graph(mat)
    out = g.node("ShaderNodeOutputMaterial")
    bsdf = g.node("ShaderNodeBsdfPrincipled")
    logo = None
    if spec["family"] in ("logo", "star"):
        px = logo_pixels(spec)
        logo = bpy.data.images.new(name + "_logo", px.shape[1], px.shape[0], alpha=True)
        logo.colorspace_settings.name = "sRGB"
        logo.pixels.foreach_set(px.reshape(-1))
        logo.pack()
    g.link(pattern_colour(g, spec, logo), bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = spec["roughness"]
    if "Sheen Weight" in bsdf.inputs:
        bsdf.inputs["Sheen Weight"].default_value = 0.3
    if "fabric" in spec:  # photo style only: the classic graph stays as it was
        cloth_shading(g, bsdf, spec)
    g.link(bsdf.outputs[0], out.inputs["Surface"])
    return mat
