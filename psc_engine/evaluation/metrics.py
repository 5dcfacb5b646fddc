"""Image and parsing metrics, shared by the training losses and `evaluate`.

SSIM follows Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2,
C2 = (0.03 L)^2, on each channel, averaged. Images are (B, C, H, W) floats with range L.
"""
import numpy as np
import torch
import torch.nn.functional as F


def _gaussian_1d(size=11, sigma=1.5, device=None, dtype=torch.float32):
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _blur(x):
    """(B, K, H, W) -> the same filtered by the 11x11 Gaussian window, reflect-padded. The window
    is separable: a column pass then a row pass, 11+11 taps instead of 121 (5x faster here)."""
    k = x.shape[1]
    g = _gaussian_1d(device=x.device, dtype=x.dtype)
    x = F.pad(x, (5, 5, 5, 5), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 11, 1).expand(k, 1, 11, 1), groups=k)
    return F.conv2d(x, g.view(1, 1, 1, 11).expand(k, 1, 1, 11), groups=k)


def ssim_map(a, b, data_range=2.0):
    """(B, C, H, W) x2 -> (B, 1, H, W) per-pixel SSIM averaged over channels ('valid' window region padded by reflection).
    Always in float32, autocast or not: the variances are differences of near-equal means
    (E[a^2] - E[a]^2), which bfloat16's 8 bits cannot resolve (a training loss's SSIM term read
    0.30 in place of 0.08 under bf16 autocast)."""
    with torch.autocast(a.device.type, enabled=False):
        return _ssim_map(a.float(), b.float(), data_range)


def _ssim_map(a, b, data_range):
    c = a.shape[1]
    # the five local means in one filtering pass: (B, 5C, H, W) -> five (B, C, H, W)
    mu_a, mu_b, m_aa, m_bb, m_ab = _blur(torch.cat([a, b, a * a, b * b, a * b], 1)).split(c, 1)
    saa, sbb, sab = m_aa - mu_a ** 2, m_bb - mu_b ** 2, m_ab - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean(1, keepdim=True)


def ssim(a, b, data_range=2.0, mask=None):
    """Mean SSIM per item (B,); with a (B, 1, H, W) mask, the mean over the masked pixels."""
    s = ssim_map(a, b, data_range)
    if mask is None:
        return s.mean((1, 2, 3))
    return (s * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)


def psnr(a, b, data_range=2.0, mask=None):
    """PSNR in dB per item (B,), optionally over masked pixels only."""
    err = (a - b) ** 2
    if mask is None:
        mse = err.mean((1, 2, 3))
    else:
        mse = (err * mask).sum((1, 2, 3)) / (mask.sum((1, 2, 3)) * a.shape[1]).clamp_min(1)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))


def masked_l1(a, b, mask):
    """Mean absolute difference per item over the masked pixels (B,)."""
    return ((a - b).abs() * mask).sum((1, 2, 3)) / (mask.sum((1, 2, 3)) * a.shape[1]).clamp_min(1)


def confusion(pred, truth, classes=7):
    """(B, H, W) labels -> (classes, classes) counts, rows = truth."""
    idx = truth.reshape(-1).long() * classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(conf):
    """(classes, classes) confusion -> (classes,) IoU, NaN for a class neither side has."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, float("nan")))


def miou(conf):
    """Mean IoU over the classes present in the truth or the prediction."""
    iou = iou_per_class(conf)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else float("nan")


def pck(pred, truth, threshold):
    """Percentage of correct keypoints: of the joints the truth has (not NaN), the share the
    prediction places within `threshold` pixels. A joint the prediction lost (NaN) counts as wrong.
    (..., 2) arrays in pixels -> (correct, total) counts."""
    seen = ~np.isnan(truth).any(-1)
    d = np.linalg.norm(pred - truth, axis=-1)
    return int((seen & (d <= threshold)).sum()), int(seen.sum())
