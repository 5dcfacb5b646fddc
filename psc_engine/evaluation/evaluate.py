"""`python -m psc_engine evaluate --data_dir D`: quality on any train-layout folder.

For each sample, each reference view k (right, front, left, back) goes to its neighbours in the
original pairing, both directions: view k + 1 and mid k ahead of it, view k - 1 and mid k - 1
behind it (right -> front, mid0, back, mid3; ...), with the true target pose:

- ours: the chain AA -> CT; "ours, true S_t": CT given the true target parsing (CT alone);
- copy: I0 as it is; affine: I0 warped piecewise-affinely by the two skeletons.

Metrics per method: SSIM and PSNR over the whole frame and within the person (the target's
non-background pixels), L1 within the clothing (classes 4, 5; pixel values in [0, 1]), and AA's
parsing mIoU. PM is scored on each transition's true in-between poses: mean joint distance in
pixels, against straight-line interpolation between the two references.

The photo nets (`prepare`'s keypoint net and parser) are scored on every view of every sample,
through the same PhotoPreparer calls `prepare` makes: PCK at 0.05 and 0.1 of the image size
(12.8 and 25.6 px at 256) over the joints the truth has, visibility accuracy (does the net report
a joint exactly when the truth has it), and the parser's mIoU with its per-class IoU.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .baselines import piecewise_affine_warp
from ..formats.train_layout import REFERENCE_VIEWS, RING, TRANSITIONS, VIEWS, TrainSet
from ..formats.images import CLASS_NAMES, atomic_write_bytes, write_png
from .metrics import confusion, iou_per_class, masked_l1, miou, pck, psnr, ssim
from ..prepare import overlay

METHODS = ("ours", "ours_true_parsing", "copy", "affine")
PCK_FRACTIONS = (0.05, 0.1)


def pairs():
    """(source view, target view) pairs: each reference view to its ring neighbours at distance 1
    (the mid views either side) and 2 (the reference views either side)."""
    out = []
    for v in REFERENCE_VIEWS:
        i = RING.index(v)
        out += [(v, RING[(i + d) % 8]) for d in (-2, -1, 1, 2)]
    return out


def to_float(images):
    """(B, 256, 256, 3) uint8 -> (B, 3, 256, 256) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def image_metrics(pred, truth, truth_parsing):
    p, t = to_float(pred), to_float(truth)
    lab = torch.from_numpy(truth_parsing)[:, None]
    person = (lab > 0).float()
    cloth = ((lab == 4) | (lab == 5)).float()
    return {"ssim": ssim(p, t, 1.0), "psnr": psnr(p, t, 1.0), "ssim_person": ssim(p, t, 1.0, person),
            "psnr_person": psnr(p, t, 1.0, person), "l1_cloth": masked_l1(p, t, cloth)}


def pm_errors(pipe, poses, ts, interp):
    """Mean joint distance (px) of PM and of a straight line to the 8 true in-between poses."""
    pm_err, line_err = [], []
    for first, second, rows in TRANSITIONS:
        a, b = poses[VIEWS.index(first)], poses[VIEWS.index(second)]
        t, truth = ts[rows], interp[rows]
        pred = pipe.interpolate(a, b, t)
        line = a[None] + t[:, None, None] * (b - a)[None]
        for guess, errs in ((pred, pm_err), (line, line_err)):
            d = np.linalg.norm(guess - truth, axis=-1)
            ok = ~np.isnan(d)
            errs.extend(d[ok].tolist())
            # A joint the truth has but the guess lost counts as missed, not as a distance.
    return pm_err, line_err


def contact_row(src, truth, outs, size=128):
    tiles = [src, truth] + outs
    return np.concatenate([np.asarray(Image.fromarray(t).resize((size, size), Image.BILINEAR)) for t in tiles], 1)


def evaluate_photo_nets(prep, images, parsings, poses, tally):
    """Score the keypoint net and the parser on a sample's views, adding to `tally`."""
    pred_parsing, pred_poses = prep.estimate_batch(images)
    tally["conf"] += confusion(torch.from_numpy(pred_parsing), torch.from_numpy(parsings))
    for f in PCK_FRACTIONS:
        ok, total = pck(pred_poses, poses, f * images.shape[2])
        tally[f"pck@{f}"] += ok
    tally["joints"] += total
    tally["visibility_ok"] += int((np.isnan(pred_poses).any(-1) == np.isnan(poses).any(-1)).sum())
    tally["joint_slots"] += poses.shape[0] * poses.shape[1]
    return pred_parsing, pred_poses


def photo_report(tally):
    iou = iou_per_class(tally["conf"])
    return {**{f"pck@{f}": tally[f"pck@{f}"] / max(tally["joints"], 1) for f in PCK_FRACTIONS},
            "visibility_accuracy": tally["visibility_ok"] / max(tally["joint_slots"], 1),
            "joints": tally["joints"], "miou": miou(tally["conf"]),
            "iou": {name: float(v) for name, v in zip(CLASS_NAMES, iou.tolist())}}


def evaluate(pipe=None, data_dir=None, limit=None, sheet_rows=12, log=print, prep=None):
    """Score the PSC chain (`pipe`) and/or the photo nets (`prep`, a PhotoPreparer) on a
    train-layout folder. Returns (report dict, {"contact_sheet", "photo_sheet"}: (H, W, 3) uint8 or None)."""
    data = TrainSet(data_dir)
    data.require_images("evaluate")
    n = min(len(data), limit) if limit else len(data)
    sums = {m: {} for m in METHODS}
    counts = {m: 0 for m in METHODS}
    conf = torch.zeros(7, 7, dtype=torch.long)
    photo = {"conf": torch.zeros(7, 7, dtype=torch.long), "joints": 0, "visibility_ok": 0, "joint_slots": 0,
             **{f"pck@{f}": 0 for f in PCK_FRACTIONS}}
    pm_err, line_err, sheet, photo_sheet = [], [], [], []
    start = time.perf_counter()
    for i in range(n):
        poses, ts, interp = data.poses(i)
        images = {v: data.image(i, v) for v in VIEWS}
        parsings = {v: data.parsing(i, v) for v in VIEWS}
        if prep is not None:
            pred_par, pred_pose = evaluate_photo_nets(prep, np.stack([images[v] for v in VIEWS]),
                                                      np.stack([parsings[v] for v in VIEWS]), poses, photo)
            if len(photo_sheet) < sheet_rows:
                front = VIEWS.index("front")
                photo_sheet.append(np.concatenate([overlay(images["front"], parsings["front"], poses[front]),
                                                   overlay(images["front"], pred_par[front], pred_pose[front])[:, 256:]], 1))
        if pipe is None:
            log(f"\revaluate {i + 1}/{n} samples ({(i + 1) / (time.perf_counter() - start):.2f}/s)", end="")
            continue
        a, b = pm_errors(pipe, poses, ts, interp)
        pm_err += a
        line_err += b
        by_source = {}
        for s, t in pairs():
            by_source.setdefault(s, []).append(t)
        for s, targets in by_source.items():
            tpose = np.stack([poses[VIEWS.index(t)] for t in targets])
            truth = np.stack([images[t] for t in targets])
            tpars = np.stack([parsings[t] for t in targets])
            ref = pipe.encode_reference(images[s], parsings[s], poses[VIEWS.index(s)])
            ours, ours_par = (x.cpu().numpy() for x in pipe.render(ref, torch.from_numpy(tpose)))
            ours_true = pipe.render(ref, torch.from_numpy(tpose), tpars)[0].cpu().numpy()
            copy = np.repeat(images[s][None], len(targets), 0)
            affine = np.stack([piecewise_affine_warp(images[s], poses[VIEWS.index(s)], p) for p in tpose])
            conf += confusion(torch.from_numpy(ours_par), torch.from_numpy(tpars))
            for name, pred in zip(METHODS, (ours, ours_true, copy, affine)):
                for key, vals in image_metrics(pred, truth, tpars).items():
                    sums[name][key] = sums[name].get(key, 0.0) + float(vals.sum())
                counts[name] += len(targets)
            if len(sheet) < sheet_rows:
                sheet.append(contact_row(images[s], truth[0], [ours[0], ours_true[0], copy[0], affine[0]]))
        log(f"\revaluate {i + 1}/{n} samples ({(i + 1) / (time.perf_counter() - start):.2f}/s)", end="")
    log("")
    report = {}
    cards = {}
    if pipe is not None:
        report = {m: {k: v / counts[m] for k, v in sums[m].items()} for m in METHODS}
        report["ours"]["miou"] = miou(conf)
        report["ours"]["iou"] = {name: float(v) for name, v in zip(CLASS_NAMES, iou_per_class(conf).tolist())}
        report["pm"] = {"pm_joint_error_px": float(np.mean(pm_err)) if pm_err else float("nan"),
                        "linear_joint_error_px": float(np.mean(line_err)) if line_err else float("nan")}
        cards.update(pipe.cards)
    if prep is not None:
        report["photo"] = photo_report(photo)
        cards.update(prep.cards)
    report["meta"] = {"samples": n, "pairs": counts["ours"], "views": n * len(VIEWS) if prep is not None else 0,
                      "data_dir": [str(d) for d in np.atleast_1d(data_dir)],
                      "weights": {k: {kk: c.get(kk) for kk in ("steps", "placeholder", "data")} for k, c in cards.items()},
                      "seconds": round(time.perf_counter() - start, 1)}
    sheets = {"contact_sheet": np.concatenate(sheet, 0) if sheet else None,
              "photo_sheet": np.concatenate(photo_sheet, 0) if photo_sheet else None}
    return report, sheets


def format_table(report):
    lines = []
    if "ours" in report:
        cols = ("ssim", "ssim_person", "psnr", "psnr_person", "l1_cloth")
        lines.append(f"{'method':<20}" + "".join(f"{c:>13}" for c in cols) + f"{'mIoU':>8}")
        for m in METHODS:
            r = report[m]
            lines.append(f"{m:<20}" + "".join(f"{r[c]:>13.4f}" for c in cols) + (f"{r['miou']:>8.4f}" if "miou" in r else f"{'':>8}"))
        pm = report["pm"]
        lines.append(f"PM joint error: {pm['pm_joint_error_px']:.2f} px (straight line: {pm['linear_joint_error_px']:.2f} px)")
        lines.append(f"{report['meta']['samples']} samples, {report['meta']['pairs']} pairs")
    if "photo" in report:
        ph = report["photo"]
        lines.append(f"photo nets on {report['meta']['views']} views: keypoints PCK@0.05 {ph['pck@0.05']:.4f}, "
                     f"PCK@0.1 {ph['pck@0.1']:.4f} ({ph['joints']} joints), visibility accuracy "
                     f"{ph['visibility_accuracy']:.4f}; parser mIoU {ph['miou']:.4f}")
        lines.append("  parser IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in ph["iou"].items()))
    return "\n".join(lines)


def write_report(report, sheets, out_dir, table=None):
    """report.json, table.txt (`table`, default: format_table's) and a PNG per sheet in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write_bytes(out_dir / "table.txt", ((table or format_table(report)) + "\n").encode())
    for name, sheet in sheets.items():
        if sheet is not None:
            write_png(out_dir / f"{name}.png", sheet, compress_level=6)
