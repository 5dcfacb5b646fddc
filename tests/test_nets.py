"""The three nets: shapes, gradients, batch independence, and flows that can move a limb 40 px."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from psc_engine.nets.aa import AANet
from psc_engine.nets.ct import CTNet, style_codes, spread_style
from psc_engine.nets.layers import pixels_to_flow, warp
from psc_engine.nets.pm import PMNet
from psc_engine.formats.poses import pose_maps

torch.manual_seed(0)


def inputs(b=2):
    rng = np.random.default_rng(0)
    poses = rng.uniform(20, 236, (b, 18, 2)).astype(np.float32)
    maps = pose_maps(poses)
    labels = torch.from_numpy(rng.integers(0, 7, (b, 256, 256)))
    onehot = F.one_hot(labels, 7).permute(0, 3, 1, 2).float()
    image = torch.rand(b, 3, 256, 256) * 2 - 1
    return maps, onehot, image


def assert_all_grads(net):
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing[:5]
    assert sum(float(p.grad.abs().sum()) for p in net.parameters()) > 0


def test_pm_shapes_and_gradients():
    net = PMNet(base=4)
    maps, _, _ = inputs()
    out = net(maps, maps.flip(0), torch.tensor([0.3, 0.7]), maps)
    assert out.shape == (2, 18, 256, 256) and 0 <= float(out.detach().min()) and float(out.detach().max()) <= 1
    out.mean().backward()
    assert_all_grads(net)


def test_untrained_pm_gives_the_straight_line():
    """PM-Net corrects the straight line: with its last layer at zero it returns the line's maps."""
    from psc_engine.nets.pm import line_poses
    from psc_engine.formats.poses import decode_pose_maps

    rng = np.random.default_rng(3)
    a, b = (torch.from_numpy(rng.uniform(30, 220, (1, 18, 2)).astype(np.float32)) for _ in range(2))
    t = torch.tensor([0.3])
    line = line_poses(a, b, t)
    with torch.no_grad():
        out = PMNet(base=4)(pose_maps(a), pose_maps(b), t, pose_maps(line))
    np.testing.assert_allclose(decode_pose_maps(out), line.numpy(), atol=0.05)


def test_aa_shapes_gradients_and_source_broadcast():
    net = AANet(base=4)
    maps, onehot, _ = inputs()
    logits = net(onehot, maps, maps.flip(0))
    assert logits.shape == (2, 7, 256, 256)
    F.cross_entropy(logits, onehot.argmax(1)).backward()
    assert_all_grads(net)
    with torch.no_grad():  # a batch-1 source broadcasts over a batch of targets
        src = net.encode_source(onehot[:1], maps[:1])
        batched = net.decode(src, maps)
        single = torch.cat([net.decode(src, maps[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_a_warp_aa_reads_the_warped_parsing_and_widens_from_one_without():
    """AANet(warp=True) reads 18 pose maps + 7 warped classes on its target side; widened from a
    trained AANet without the input it computes exactly what that net computes, whatever the
    warp says, until training moves the new weights; each kind refuses the other's call."""
    torch.manual_seed(0)
    plain, wide = AANet(base=4).eval(), AANet(base=4, warp=True).eval()
    assert wide.config == {"base": 4, "rounds": 3, "warp": True} and "warp" not in plain.config
    maps, onehot, _ = inputs()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the fresh init: a net with its own weights
        wide.widen(plain)
        torch.testing.assert_close(wide(onehot, maps, maps.flip(0), onehot.flip(0)), plain(onehot, maps, maps.flip(0)))
        stem = wide.pose_encoder.stem[0].weight
        assert stem.shape[1] == 25 and torch.all(stem[:, 18:] == 0)
        with pytest.raises(ValueError, match="reads the warped"):
            wide(onehot, maps, maps)
        with pytest.raises(ValueError, match="does not read"):
            plain(onehot, maps, maps, onehot)
    wide.train()
    F.cross_entropy(wide(onehot, maps, maps.flip(0), onehot.flip(0)), onehot.argmax(1)).backward()
    assert stem.grad[:, 18:].abs().sum() > 0  # the warp channels learn


def test_ct_shapes_gradients_and_batch_independence():
    net = CTNet(base=4)
    maps, onehot, image = inputs()
    out = net(image, onehot, maps, onehot.flip(0), maps.flip(0))
    assert out["image"].shape == (2, 3, 256, 256)
    assert out["visibility"].shape == (2, 1, 64, 64)
    assert {l: tuple(f.shape) for l, f in out["flows"].items()} == {4: (2, 2, 16, 16), 3: (2, 2, 32, 32), 2: (2, 2, 64, 64)}
    out["image"].abs().mean().backward()
    assert_all_grads(net)
    with torch.no_grad():
        src = net.encode_source(image[:1], onehot[:1], maps[:1])
        batched = net.decode(src, onehot, maps)["image"]
        single = torch.cat([net.decode(src, onehot[i:i + 1], maps[i:i + 1])["image"] for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_style_codes_are_class_means_spread_by_target():
    feat = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2] = 4
    src = F.one_hot(labels, 7).permute(0, 3, 1, 2).float()
    codes = style_codes(feat, src)
    assert codes.shape == (1, 7, 2)
    torch.testing.assert_close(codes[0, 4], feat[0, :, :2].mean((1, 2)))
    tgt = F.one_hot(torch.full((3, 4, 4), 4), 7).permute(0, 3, 1, 2).float()
    spread = spread_style(codes, tgt)
    assert spread.shape == (3, 2, 4, 4)
    torch.testing.assert_close(spread[:, :, 0, 0], codes[0, 4].expand(3, 2))


def shifted_pair(shift=40):
    """A blob image and the same blob moved `shift` px to the right."""
    img = torch.zeros(1, 3, 256, 256)
    img[:, :, 100:160, 60:90] = torch.tensor([1.0, 0.5, -0.5])[:, None, None]
    return img, torch.roll(img, shifts=shift, dims=3)


def test_warp_reproduces_a_40px_shift():
    src, tgt = shifted_pair(40)
    dx, _ = pixels_to_flow(-40, 0)  # backward flow: target pixel p samples source p - 40 px
    flow = torch.zeros(1, 2, 256, 256)
    flow[:, 0] = dx
    torch.testing.assert_close(warp(src, flow), tgt, atol=1e-5, rtol=0)


def test_bfloat16_warp_samples_at_float32_precision():
    """Grid coordinates in bfloat16 are off by up to half a pixel near the frame's edge; warp
    samples in float32 and returns the flow's dtype, so a bfloat16 flow (here exactly -40.25 px,
    which bfloat16 holds) moves a fine pattern as float32 does, up to bfloat16 output rounding."""
    from psc_engine.nets.layers import base_grid

    x = torch.arange(256, dtype=torch.float32)
    src = torch.sin(2 * torch.pi * x / 8).expand(1, 1, 256, 256)  # 8 px stripes: a 0.5 px error shows
    dx, _ = pixels_to_flow(-40.25, 0)
    flow = torch.zeros(1, 2, 256, 256)
    flow[:, 0] = dx
    assert flow.bfloat16().float().equal(flow)
    reference = warp(src, flow)  # all float32
    out = warp(src, flow.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=4e-3, rtol=0)  # bfloat16 rounding of [-1, 1]
    grid = (base_grid(256, 256, "cpu", torch.bfloat16) + flow.bfloat16().permute(0, 2, 3, 1)).float()
    naive = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert (naive - reference).abs().max() > 0.1  # what sampling coordinates in bfloat16 would cost


def test_ct_flow_head_can_output_a_40px_shift():
    """The coarsest head's output is unbounded (no tanh): a bias of 40 px in normalised units gives
    a flow that carries through the residual levels and warps the image by exactly 40 px. The
    original's tanh flow (at most ~1 px per scale) cannot reach this."""
    net = CTNet(base=4)
    maps, onehot, _ = inputs(1)
    src, tgt = shifted_pair(40)
    dx, _ = pixels_to_flow(-40, 0)
    with torch.no_grad():
        for level, head in net.flow_heads.items():
            last = head.net[-1]
            last.weight.zero_()
            last.bias.zero_()
        net.flow_heads["4"].net[-1].bias[0] = dx
        out = net(src, onehot, maps, onehot, maps)
    flow_px = out["flows"][2][:, 0] * 128
    torch.testing.assert_close(flow_px, torch.full_like(flow_px, -40.0))
    torch.testing.assert_close(out["warped"], tgt, atol=1e-5, rtol=0)


def test_flow_is_learnable_toward_a_large_shift():
    """Gradient descent on the flow alone moves it most of the way to a 40 px shift."""
    src, tgt = shifted_pair(40)
    src, tgt = F.avg_pool2d(src, 4), F.avg_pool2d(tgt, 4)  # 64x64: a blurred blob gives a usable gradient
    src, tgt = F.avg_pool2d(src, 5, 1, 2), F.avg_pool2d(tgt, 5, 1, 2)
    flow = torch.zeros(1, 2, 1, 1, requires_grad=True)
    opt = torch.optim.Adam([flow], lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        loss = (warp(src, flow.expand(1, 2, 64, 64)) - tgt).abs().mean()
        loss.backward()
        opt.step()
    assert abs(float(flow.detach()[0, 0]) * 128 + 40) < 4


def test_keypoint_scores_decode_to_subpixel_joints():
    """The keypoint net's scores are read as a spatial softmax; scores that are a Gaussian's log
    decode to its centre (256-frame pixels) exactly, and the training loss is lowest there."""
    import torch.nn.functional as F

    from psc_engine.training.losses import keypoint_losses
    from psc_engine.nets.photo import KeypointNet
    from psc_engine.formats.poses import decode_pose_maps

    rng = np.random.default_rng(3)
    poses = torch.from_numpy(rng.uniform(20, 236, (2, 18, 2)).astype(np.float32))
    target = pose_maps(poses, size=64)
    scores = torch.log(target.clamp_min(1e-30))
    np.testing.assert_allclose(decode_pose_maps(KeypointNet.heatmaps(scores), threshold=0.0), poses.numpy(), atol=0.05)

    class Fixed(torch.nn.Module):  # a "net" that outputs given scores
        def __init__(self, s):
            super().__init__()
            self.s = s
        def forward(self, image):
            return self.s, torch.full((2, 18), 10.0)
    visible = torch.ones(2, 18, dtype=torch.bool)
    exact = keypoint_losses(Fixed(scores), None, target, visible)[0]
    shifted = keypoint_losses(Fixed(torch.roll(scores, 3, -1)), None, target, visible)[0]
    flat = keypoint_losses(Fixed(torch.zeros_like(scores)), None, target, visible)[0]
    assert exact < shifted and exact < flat
    assert abs(float(flat) - np.log(64 * 64) - F.softplus(torch.tensor(-10.0)).item()) < 1e-3  # uniform guess: log(h*w)


def test_mirrored_keypoint_scores_land_on_the_photos_joints():
    """Flip reading: the scores of the mirrored photo, mirrored back by mirror_scores and with
    left and right swapped, decode to the photo's own joints (a plain grid flip is 3 px off), and
    predict(flip=True) of a net that reads both exactly gives the joints themselves."""
    from psc_engine.nets.photo import KeypointNet, mirror_scores
    from psc_engine.formats.poses import FLIP_PERM, decode_pose_maps, flip_pose

    rng = np.random.default_rng(4)
    poses = rng.uniform(20, 236, (2, 18, 2)).astype(np.float32)
    log_maps = lambda p: torch.log(pose_maps(torch.from_numpy(p), size=64).clamp_min(1e-30))  # a Gaussian's log
    mirrored = log_maps(flip_pose(poses))  # what an exact net says for the mirrored photos
    back = mirror_scores(mirrored)[:, list(FLIP_PERM)]
    np.testing.assert_allclose(decode_pose_maps(KeypointNet.heatmaps(back), threshold=0.0), poses, atol=0.05)
    plain = mirrored.flip(-1)[:, list(FLIP_PERM)]
    plain_x = decode_pose_maps(KeypointNet.heatmaps(plain), threshold=0.0)[..., 0]
    np.testing.assert_allclose(plain_x, poses[..., 0] - 3, atol=0.05)

    class Exact(KeypointNet):  # "sees" the photo (first two) or its mirror (last two) exactly
        def forward(self, image):
            return torch.cat([log_maps(poses), mirrored]), torch.full((len(image), 18), 10.0)
    np.testing.assert_allclose(Exact(base=4).predict(torch.zeros(2, 3, 256, 256), flip=True), poses, atol=0.05)
