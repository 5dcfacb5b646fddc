"""Training batches, as the method note describes them, drawn reproducibly from (seed, step).

- PM: a transition between two neighbouring reference views (right->front, front->left,
  left->back, back->right, either direction) with its two true in-between poses and their t.
- AA and CT: a view and a neighbour on the turning ring of eight views (right, mid0, front,
  mid1, left, mid2, back, mid3): distance 1 is view -> in-between view, distance 2 is view ->
  next view; both directions. AA's batches (`shape_batch`) carry no photos, so geometry-only
  samples feed it. With `warp` both also carry the source parsing warped onto the target pose
  (`tgt_warped`), which an AA-Net built with warp=True reads.
- The photo nets: single views.

PM and AA draw from geometry-only samples too: uniformly over all samples, or on a
`geometry_mix` share of the items when both kinds are there.

`augment`: True (flips, small affines, garment colours), False, or an augment.Augment that also
reframes a share of the clips as fashion photos (all views of a clip share the crop) and gives
a share of the photos a camera look. Joints outside the frame are missing in every batch.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .augment import (affine_poses, apply_affine, as_augment, camera_look, drop_outside, fashion_framings, flip_poses,
                      flip_some, jitter_garments, paint_backdrops, random_affines, random_looks)
from ..formats.train_layout import RING, TRANSITIONS, VIEWS
from ..nets.layers import at_size, subsample_labels
from ..nets.warp import warped_onehot
from ..formats.poses import pose_maps


def draw_sample(data, rng, geometry_mix=None):
    """A sample index: every sample equally likely, or with `geometry_mix` (when both kinds are
    there) a geometry-only sample on that share of the draws."""
    geo, full = data.geometry_only, data.with_images
    if geometry_mix is None or not geo or not full:
        return int(rng.integers(len(data)))
    pool = geo if rng.random() < geometry_mix else full
    return pool[int(rng.integers(len(pool)))]


def pm_batch(data, rng, batch, size, augment=True, geometry_mix=None):
    pa, pb, t1, t2, g1, g2 = [], [], [], [], [], []
    for _ in range(batch):
        i = draw_sample(data, rng, geometry_mix)
        poses, ts, interp = data.poses(i)
        first, second, rows = TRANSITIONS[int(rng.integers(4))]
        a, b = poses[VIEWS.index(first)], poses[VIEWS.index(second)]
        (ta, tb), (ga, gb) = ts[rows], interp[rows]
        if rng.random() < 0.5:  # the same transition backwards
            a, b, ta, tb = b, a, 1 - ta, 1 - tb
        pa.append(a), pb.append(b), t1.append(ta), t2.append(tb), g1.append(ga), g2.append(gb)
    poses = torch.from_numpy(np.stack([pa, pb, g1, g2], 1))  # (B, 4, 18, 2)
    aug = as_augment(augment)
    if aug:
        flip = rng.random(batch) < 0.5
        aff = random_affines(rng, batch)
        flat = poses.reshape(batch * 4, 18, 2)  # the four poses of an item share one flip and affine
        flat = torch.where(torch.from_numpy(np.repeat(flip, 4))[:, None, None], flip_poses(flat), flat)
        if aug.framing > 0:  # from the joints alone: the four poses are one clip
            framing, framed = fashion_framings(rng, flat.reshape(batch, 4, 18, 2), None, aug.framing, aug.head_cut)
            aff = np.where(framed[:, None], framing, aff)
        poses = affine_poses(flat, np.repeat(aff, 4, 0)).reshape(batch, 4, 18, 2)
    poses = drop_outside(poses)
    maps = pose_maps(poses.reshape(-1, 18, 2), size=size).reshape(batch, 4, 18, size, size)
    ok = ~torch.isnan(poses).any(-1).any(1)  # (B, 18) joints present in all four poses
    return {"maps_a": maps[:, 0], "maps_b": maps[:, 1], "target1": maps[:, 2], "target2": maps[:, 3],
            "pose_a": poses[:, 0], "pose_b": poses[:, 1],
            "t1": torch.tensor(t1, dtype=torch.float32), "t2": torch.tensor(t2, dtype=torch.float32), "joints_ok": ok}


def draw_pair(rng):
    """(source view, target view): a view and a ring neighbour at distance 1 or 2, either way."""
    s = int(rng.integers(8))
    t = (s + int(rng.choice([-2, -1, 1, 2]))) % 8
    return RING[s], RING[t]


def pair_batch(data, rng, batch, size, augment=True, geometry_mix=None, images=True, warp=False):
    """Source and target view of the same person: images in [-1, 1] (with `images`), labels,
    poses, at `size`; with `warp` also the source parsing warped onto the target pose."""
    items = []
    for _ in range(batch):
        i = draw_sample(data, rng, geometry_mix)
        vs, vt = draw_pair(rng)
        poses, _, _ = data.poses(i)
        items.append((data.image(i, vs) if images else None, data.parsing(i, vs), poses[VIEWS.index(vs)],
                      data.image(i, vt) if images else None, data.parsing(i, vt), poses[VIEWS.index(vt)]))
    cols = [torch.from_numpy(np.stack(c)) if c[0] is not None else None for c in zip(*items)]
    images = torch.cat([cols[0], cols[3]]).permute(0, 3, 1, 2).float() / 127.5 - 1 if images else None  # (2B, 3, 256, 256)
    labels = torch.cat([cols[1], cols[4]]).long()  # (2B, 256, 256)
    poses = torch.cat([cols[2], cols[5]])  # (2B, 18, 2)
    aug = as_augment(augment)
    if aug:
        flip = torch.from_numpy(np.tile(rng.random(batch) < 0.5, 2))  # source and target flip together
        images, labels, poses = flip_some(flip, images, labels, poses)
        affines = random_affines(rng, 2 * batch)  # each view its own small affine...
        if aug.framing > 0:  # ...or its clip's fashion framing, the same for source and target
            clips = lambda x: x.reshape(2, batch, *x.shape[1:]).transpose(0, 1)  # (2B, ...) -> (B, 2, ...)
            framing, framed = fashion_framings(rng, clips(poses), clips(labels), aug.framing, aug.head_cut)
            affines = np.where(np.tile(framed, 2)[:, None], np.tile(framing, (2, 1)), affines)
        images, labels, poses = apply_affine(images, labels, poses, affines)
        angles = np.tile(np.where(rng.random(batch) < 0.7, rng.uniform(-np.pi, np.pi, batch), 0.0), 2)
        if images is not None:
            images = jitter_garments(images, labels, angles)
        if images is not None and aug.photometric > 0:  # drawn last: AA's batches (no photos) draw the same geometry
            looks, picked = random_looks(rng, batch), np.flatnonzero(rng.random(batch) < aug.photometric)
            images = camera_look(images, looks, rng, [(j, j) for j in picked])  # the source: light, lens, sensor
            images = camera_look(images, looks, rng, [(batch + j, j) for j in picked], artifacts=False)  # the target: light, lens
    poses = drop_outside(poses)
    src, tgt = slice(0, batch), slice(batch, 2 * batch)
    warped = torch.cat([warped_onehot(labels[i].numpy(), poses[i].numpy(), poses[batch + i].numpy()[None], size)
                        for i in range(batch)]) if warp else None  # (B, 7, size, size)
    images, labels = at_size(images, labels, size) if images is not None else (None, subsample_labels(labels, size))
    maps = pose_maps(poses, size=size)
    onehot = F.one_hot(labels, 7).permute(0, 3, 1, 2).float()
    out = {"src_labels": labels[src], "src_onehot": onehot[src], "src_maps": maps[src],
           "tgt_labels": labels[tgt], "tgt_onehot": onehot[tgt], "tgt_maps": maps[tgt]}
    if warp:
        out["tgt_warped"] = warped
    if images is not None:
        out.update(src_image=images[src], tgt_image=images[tgt])
    return out


def shape_batch(data, rng, batch, size, augment=True, geometry_mix=None, warp=False):
    """AA's pairs: pair_batch's parsings and poses without the photos (the same draws, so the same
    labels as pair_batch's for the same generator)."""
    return pair_batch(data, rng, batch, size, augment, geometry_mix, images=False, warp=warp)


def photo_batch(data, rng, batch, size=256, augment=True, geometry_mix=None):
    """Single views for the photo nets: image, parsing and pose of any of the eight views, at
    `size` (128: a cheaper first stage, the image area-averaged and the labels subsampled;
    heatmaps are always a quarter of the image side). Poses stay in 256-frame pixels."""
    items = []
    for _ in range(batch):
        i, v = int(rng.integers(len(data))), VIEWS[int(rng.integers(8))]
        items.append((data.image(i, v), data.parsing(i, v), data.poses(i)[0][VIEWS.index(v)]))
    images = torch.from_numpy(np.stack([it[0] for it in items])).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = torch.from_numpy(np.stack([it[1] for it in items])).long()
    poses = torch.from_numpy(np.stack([it[2] for it in items]))
    aug = as_augment(augment)
    if aug:
        images, labels, poses = flip_some(torch.from_numpy(rng.random(batch) < 0.5), images, labels, poses)
        affines = random_affines(rng, batch, scale=0.15, shift=20)
        if aug.framing > 0:
            framing, framed = fashion_framings(rng, poses[:, None], labels[:, None], aug.framing, aug.head_cut)
            affines = np.where(framed[:, None], framing, affines)
        images, labels, poses = apply_affine(images, labels, poses, affines)
        images = jitter_garments(images, labels, rng.uniform(-np.pi, np.pi, batch))
        gain = torch.from_numpy(rng.uniform(0.8, 1.2, (batch, 3, 1, 1))).float()  # lighting colour and level
        images = ((images + 1) * gain - 1).clamp(-1, 1)
        if aug.photometric > 0:  # a camera's look on top
            looks, picked = random_looks(rng, batch), np.flatnonzero(rng.random(batch) < aug.photometric)
            images = camera_look(images, looks, rng, [(j, j) for j in picked])
        if aug.backdrop > 0:  # last: the grey is painted on the photo as the camera took it
            images = paint_backdrops(images, labels, rng, aug.backdrop)
    poses = drop_outside(poses)  # joints pushed off the frame are not visible
    images, labels = at_size(images, labels, size)
    return {"image": images, "labels": labels, "poses": poses,
            "heatmaps": pose_maps(poses, size=size // 4), "visible": ~torch.isnan(poses).any(-1)}
