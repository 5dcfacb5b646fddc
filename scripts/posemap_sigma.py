"""Measure the pose-map round trip for several Gaussian widths: clean, with noise, and for joints
just outside the frame. Prints a table; the README's "Pose maps" paragraph quotes it.

    python scripts/posemap_sigma.py
"""
import numpy as np
import torch

from psc_engine.formats.poses import decode_pose_maps, pose_maps

rng = np.random.default_rng(0)
poses = rng.uniform(4, 251, (64, 18, 2)).astype(np.float32)
outside = np.full((64, 18, 2), np.nan, np.float32)
outside[:, 0] = np.stack([rng.uniform(-30, -5, 64), rng.uniform(20, 230, 64)], 1)  # 5..30 px left of the frame

print(f"{'sigma':>6}{'clean err px':>14}{'noisy err px':>14}{'noisy lost %':>14}{'outside seen %':>16}")
for sigma in (2, 4, 6, 8, 12, 25, 100):
    maps = pose_maps(poses, sigma=sigma)
    clean = np.abs(decode_pose_maps(maps) - poses).mean()
    g = torch.Generator().manual_seed(0)
    noisy_maps = (maps + 0.1 * torch.randn(maps.shape, generator=g)).clamp(0, 1)
    noisy = decode_pose_maps(noisy_maps)
    lost = np.isnan(noisy).any(-1).mean() * 100
    err = np.nanmean(np.linalg.norm(noisy - poses, axis=-1))
    seen = (~np.isnan(decode_pose_maps(pose_maps(outside, sigma=sigma))[:, 0]).any(-1)).mean() * 100
    print(f"{sigma:>6}{clean:>14.3f}{err:>14.2f}{lost:>14.1f}{seen:>16.1f}")
