"""Training losses: PM, AA and CT, and the photo nets `prepare` uses.

The original's perceptual loss used an ImageNet VGG19, which cannot be downloaded here. The
substitute, chosen for being honest and cheap: SSIM (structure and contrast, in windows), an
image-gradient L1 (edges in the right place), and Gram matrices of the features of a small
frozen, randomly initialised conv net (second-order texture statistics: random conv features
are known to carry texture well -- Ustyuzhaninov et al., 2017 -- and they need no download and
cannot be gamed, since the net never trains). Written down in the model card too.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nets.ct import sobel_magnitude
from ..nets.layers import resize_flow, warp
from ..evaluation.metrics import ssim
from ..nets.pm import line_poses
from ..formats.poses import NUM_JOINTS, pose_maps

# Class weights for AA's cross-entropy: face, hair and skin are small regions and matter to people.
AA_CLASS_WEIGHTS = (1.0, 2.0, 3.0, 2.0, 1.0, 1.0, 1.5)


def soft_argmax(maps, temperature=0.05):
    """(B, 18, H, W) maps -> (B, 18, 2) expected (x, y) in 256-frame pixels (differentiable)."""
    b, j, h, w = maps.shape
    p = torch.softmax(maps.reshape(b, j, -1) / temperature, -1).reshape(b, j, h, w)
    xs = (torch.arange(w, device=maps.device, dtype=maps.dtype)) * (256 / w)
    ys = (torch.arange(h, device=maps.device, dtype=maps.dtype)) * (256 / h)
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


def pm_losses(pm, maps_a, maps_b, t1, t2, target1, target2, joints_ok, pose_a, pose_b):
    """PM-Net on a transition with its two true in-between poses (t1 < t2 not required).

    - L1 and L2 to the true in-between maps, joints up-weighted (most pixels are zero);
    - smoothness: a small random change of t changes the output only a little;
    - uniform motion: the joints' speed along t (finite differences over 0, t1, t2, 1 on
      soft-argmax coordinates) is the same on each stretch. Speed, not the difference vectors:
      equal vectors would force a straight line, which is what PM-Net exists to improve on.
    """
    dt = 0.02
    b = len(t1)
    # One forward over [t1, t2, t1 + dt] (B each): one call also keeps DistributedDataParallel happy.
    ts3 = torch.cat([t1, t2, (t1 + dt).clamp(max=1)])
    line = pose_maps(line_poses(pose_a.repeat(3, 1, 1), pose_b.repeat(3, 1, 1), ts3).cpu(), size=maps_a.shape[-1])
    outs = pm(maps_a.repeat(3, 1, 1, 1), maps_b.repeat(3, 1, 1, 1), ts3, line.to(maps_a))
    out1, out2, out_eps = outs[:b], outs[b:2 * b], outs[2 * b:]
    weight = lambda tgt: 1 + 20 * tgt
    fit = sum(((o - tg).abs() * weight(tg)).mean() + (((o - tg) ** 2) * weight(tg)).mean()
              for o, tg in ((out1, target1), (out2, target2)))
    smooth = (out_eps - out1).abs().mean() / dt * 0.01
    xy = [soft_argmax(m) for m in (maps_a, out1, out2, maps_b)]
    ts = [torch.zeros_like(t1), t1, t2, torch.ones_like(t1)]
    order = torch.argsort(torch.stack(ts[1:3], 1), 1)  # sort the two in-betweens by t
    speeds = []
    pts = torch.stack(xy, 1)  # (B, 4, 18, 2)
    tt = torch.stack(ts, 1)  # (B, 4)
    idx = torch.cat([torch.zeros_like(order[:, :1]), order + 1, torch.full_like(order[:, :1], 3)], 1)
    pts = torch.gather(pts, 1, idx[:, :, None, None].expand(-1, -1, NUM_JOINTS, 2))
    tt = torch.gather(tt, 1, idx)
    for k in range(3):
        d = (pts[:, k + 1] - pts[:, k]).norm(dim=-1) / (tt[:, k + 1] - tt[:, k]).clamp_min(0.05)[:, None]
        speeds.append(d)  # (B, 18) pixels per unit t
    speeds = torch.stack(speeds, 1)  # (B, 3, 18)
    ok = joints_ok[:, None, :].float()
    uniform = ((speeds - speeds.mean(1, keepdim=True)).abs() * ok).sum() / (ok.sum() * 3).clamp_min(1) / 256
    total = fit + smooth + 0.1 * uniform
    return total, {"fit": fit.item(), "smooth": smooth.item(), "uniform": uniform.item()}


def aa_losses(logits, target_labels):
    """L1 on the one-hot parsing plus class-weighted cross-entropy."""
    weights = torch.tensor(AA_CLASS_WEIGHTS, device=logits.device, dtype=logits.dtype)
    ce = F.cross_entropy(logits, target_labels, weight=weights)
    onehot = F.one_hot(target_labels, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    l1 = (torch.softmax(logits, 1) - onehot).abs().mean()
    return ce + l1, {"ce": ce.item(), "l1": l1.item()}


class RandomFeatures(nn.Module):
    """Frozen random convs for the Gram (style) term; same seed, same features, every run."""

    def __init__(self, seed=1234):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 3, 2, 1), nn.Conv2d(32, 64, 3, 2, 1), nn.Conv2d(64, 64, 3, 2, 1)])
        for conv in self.convs:
            conv.weight.data = torch.randn(conv.weight.shape, generator=g) * (2 / conv.weight[0].numel()) ** 0.5
            conv.bias.data.zero_()
            conv.requires_grad_(False)

    def forward(self, x):
        feats = []
        for conv in self.convs:
            x = F.relu(conv(x))
            feats.append(x)
        return feats


def gram(feat):
    b, c, h, w = feat.shape
    f = feat.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def image_gradients(x):
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def ct_losses(probe, out, target_image, target_onehot, source_onehot, ssim_weight=1.0):
    """All CT terms; target_onehot / source_onehot are (B, 7, H, W) true parsings. ssim_weight
    scales the SSIM term against the others (`train --ssim_weight`)."""
    pred = out["image"]
    l1 = (pred - target_image).abs().mean()
    ssim_term = 1 - ssim(pred, target_image).mean()
    gx_p, gy_p = image_gradients(pred)
    gx_t, gy_t = image_gradients(target_image)
    grad = (gx_p - gx_t).abs().mean() + (gy_p - gy_t).abs().mean()
    face = target_onehot[:, 2:3]
    cloth = target_onehot[:, 4:6].sum(1, keepdim=True)
    face_l2 = (((pred - target_image) ** 2) * face).sum() / (face.sum() * 3).clamp_min(1)
    cloth_l2 = (((pred - target_image) ** 2) * cloth).sum() / (cloth.sum() * 3).clamp_min(1)
    sob = (sobel_magnitude(pred * cloth) - sobel_magnitude(target_image * cloth)).abs().mean()
    with torch.no_grad():
        feats_t = probe(target_image)
    style = sum((gram(p) - gram(t)).abs().mean() for p, t in zip(probe(pred), feats_t))
    # Flow: the source parsing, warped by each level's flow, must land on the target parsing.
    flow_term = 0.0
    for level, flow in out["flows"].items():
        src = F.avg_pool2d(source_onehot, 2 ** level)
        tgt = F.avg_pool2d(target_onehot, 2 ** level)
        flow_term = flow_term + (warp(src, flow) - tgt).abs().mean()
    full = resize_flow(out["flows"][min(out["flows"])], source_onehot.shape[-2:])
    flow_term = flow_term + (warp(source_onehot, full) - target_onehot).abs().mean()
    smooth = sum(image_gradients(f)[0].abs().mean() + image_gradients(f)[1].abs().mean() for f in out["flows"].values())
    total = (l1 + ssim_weight * ssim_term + grad + face_l2 + cloth_l2 + 0.5 * sob + 0.1 * style + flow_term + 0.1 * smooth)
    return total, {"l1": l1.item(), "ssim": ssim_term.item(), "grad": grad.item(), "face": face_l2.item(),
                   "cloth": cloth_l2.item(), "sobel": sob.item(), "style": float(style.detach()), "flow": float(flow_term.detach())}


def keypoint_losses(net, image, heatmaps, visible):
    """Spatial-softmax cross-entropy of each visible joint's scores against its normalised
    Gaussian target, plus visibility binary cross-entropy."""
    scores, vis_logits = net(image)
    logp = F.log_softmax(scores.flatten(2).float(), -1)  # (B, 18, h*w)
    target = heatmaps.flatten(2)
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-8)
    per_joint = -(target * logp).sum(-1)  # (B, 18)
    hm = (per_joint * visible).sum() / visible.sum().clamp_min(1)
    vis = F.binary_cross_entropy_with_logits(vis_logits, visible.float())
    return hm + vis, {"heatmap": hm.item(), "visibility": vis.item()}


def parser_losses(logits, labels):
    """Class-weighted cross-entropy plus a soft Dice term (small classes count as much as big ones)."""
    weights = torch.tensor(AA_CLASS_WEIGHTS, device=logits.device, dtype=logits.dtype)
    ce = F.cross_entropy(logits, labels, weight=weights)
    prob = torch.softmax(logits, 1)
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    inter = (prob * onehot).sum((0, 2, 3))
    dice = 1 - ((2 * inter + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)).mean()
    return ce + dice, {"ce": ce.item(), "dice": dice.item()}


# One training step's loss for each net, as training/config.py's NETS names them:
# (net, batch from batches.py, extras) -> (loss, {term: value}).


@dataclass
class Extras:
    """What some nets' losses need beside the net and its batch."""

    probe: nn.Module = None  # CT: the frozen random features of the texture (Gram) term
    shape_net: nn.Module = None  # CT with --shape_from: the frozen AA-Net whose parsings CT reads
    shape_mix: float = 0.0  # ... on this share of the items
    ssim_weight: float = 1.0  # CT: the SSIM term's weight


def pm_step(net, batch, extras):
    return pm_losses(net, batch["maps_a"], batch["maps_b"], batch["t1"], batch["t2"], batch["target1"],
                     batch["target2"], batch["joints_ok"], batch["pose_a"], batch["pose_b"])


def aa_inputs(net, batch):
    """AA-Net's inputs from a pair batch: source parsing and pose maps, target pose maps, and the
    warped source parsing where the net reads it (warp=True; `net` may be wrapped for DDP)."""
    warp = getattr(getattr(net, "module", net), "warp", False)
    return (batch["src_onehot"], batch["src_maps"], batch["tgt_maps"]) + ((batch["tgt_warped"],) if warp else ())


def aa_step(net, batch, extras):
    return aa_losses(net(*aa_inputs(net, batch)), batch["tgt_labels"])


def ct_step(net, batch, extras):
    """CT with a `shape_net` (a frozen AA-Net): on a `shape_mix` share of the items CT reads the
    target parsing AA predicts (its class probabilities), as the chain gives it at run time,
    instead of the true one; its losses still compare against the true image and parsing. CT
    trained on true parsings alone never sees AA's mistakes (lost fingers, ragged hems, hair
    read as face) until it is used."""
    shape = batch["tgt_onehot"]
    if extras.shape_net is not None and extras.shape_mix > 0:
        with torch.no_grad():
            predicted = extras.shape_net(*aa_inputs(extras.shape_net, batch)).softmax(1).to(shape.dtype)
        use = torch.rand(shape.shape[0], device=shape.device) < extras.shape_mix  # seeded per step: resumes exactly
        shape = torch.where(use[:, None, None, None], predicted, shape)
    out = net(batch["src_image"], batch["src_onehot"], batch["src_maps"], shape, batch["tgt_maps"])
    return ct_losses(extras.probe, out, batch["tgt_image"], batch["tgt_onehot"], batch["src_onehot"], extras.ssim_weight)


def pose_step(net, batch, extras):
    return keypoint_losses(net, batch["image"], batch["heatmaps"], batch["visible"])


def parsing_step(net, batch, extras):
    return parser_losses(net(batch["image"]), batch["labels"])
