"""`evaluate --parts photo` on real photos: a test-layout folder whose I0 photos have P0 (and S0)
labels, such as ../shared/realdev/dresscode_sample. (On a train-layout folder of renders,
evaluate.py scores the photo nets on every view instead.)

Each photo goes through `prepare` as a user's would (find, frame, parse), for each finder side by
side: MediaPipe with the project's parser, and the project's own nets. The prepared frame's pose
and parsing are mapped back through its window into the photo's own frame, where the labels are
(the window is exact, so no scale-and-shift fit is needed), and scored there:

- PCK at 0.05 and 0.1 of the photo's longer side (12.8 and 25.6 px at 256) over the joints the
  labels have; a joint the finder lost counts as wrong;
- visibility accuracy: does the finder report a joint exactly when the labels have it;
- PCK@0.1 on the mirrored photo, its pose mirrored back: left and right must follow the mirror;
- the parsing's mIoU and per-class IoU (photos with an S0);
- photos `prepare` refused (no person, several people), which score as all missed;
- seconds per photo, wall and CPU (all threads), models loaded beforehand.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import PSCError
from ..formats.images import CLASS_NAMES, atomic_write_bytes, read_parsing, write_png
from ..formats.poses import flip_pose, read_pose_csv
from ..formats.test_layout import find_test_samples
from ..prepare import from_frame, open_photo, overlay
from .metrics import confusion, iou_per_class, miou, pck

PCK_FRACTIONS = (0.05, 0.1)


def parsing_to_photo(parsing, window, h, w):
    """(256, 256) labels of the frame at window (x0, y0, side) -> (h, w) labels of the photo,
    nearest neighbour; photo pixels outside the frame are background."""
    x0, y0, side = window
    us = np.floor((np.arange(w) + 0.5 - x0) * 256 / side).astype(int)
    vs = np.floor((np.arange(h) + 0.5 - y0) * 256 / side).astype(int)
    inside = ((vs >= 0) & (vs < 256))[:, None] & ((us >= 0) & (us < 256))[None]
    return np.where(inside, parsing[vs.clip(0, 255)][:, us.clip(0, 255)], 0).astype(np.uint8)


def empty_tally():
    return {"conf": torch.zeros(7, 7, dtype=torch.long), "joints": 0, "visibility_ok": 0, "joint_slots": 0,
            "mirror_ok": 0, "mirror_joints": 0, "photos": 0, "refused": 0, "parsed": 0, "seconds": 0.0,
            "cpu_seconds": 0.0,
            **{f"pck@{f}": 0 for f in PCK_FRACTIONS}}


def read_photo(prep, photo):
    """prepare -> (pose (18, 2), parsing (h, w)) in the photo's frame, or None where it refuses."""
    try:
        p = prep.prepare(photo)
    except PSCError:
        return None
    h, w = photo.shape[:2]
    return from_frame(p.pose, p.window), parsing_to_photo(p.parsing, p.window, h, w), p


def score_photo(prep, photo, truth_pose, truth_parsing, tally):
    """Add one photo's scores to `tally`; returns the Prepared (or None) for the sheet."""
    h, w = photo.shape[:2]
    start, cpu = time.perf_counter(), time.process_time()
    got = read_photo(prep, photo)
    tally["seconds"] += time.perf_counter() - start
    tally["cpu_seconds"] += time.process_time() - cpu
    mirrored = read_photo(prep, np.ascontiguousarray(photo[:, ::-1]))
    tally["photos"] += 1
    if got is None:
        tally["refused"] += 1
        pose, parsing, prepared = np.full((18, 2), np.nan, np.float32), np.zeros((h, w), np.uint8), None
    else:
        pose, parsing, prepared = got
    side = max(h, w)
    for f in PCK_FRACTIONS:
        tally[f"pck@{f}"] += pck(pose, truth_pose, f * side)[0]
    tally["joints"] += int((~np.isnan(truth_pose).any(-1)).sum())
    tally["visibility_ok"] += int((np.isnan(pose).any(-1) == np.isnan(truth_pose).any(-1)).sum())
    tally["joint_slots"] += len(truth_pose)
    back = flip_pose(mirrored[0], w) if mirrored is not None else np.full((18, 2), np.nan, np.float32)
    ok, total = pck(back, truth_pose, 0.1 * side)
    tally["mirror_ok"] += ok
    tally["mirror_joints"] += total
    if truth_parsing is not None:
        tally["conf"] += confusion(torch.from_numpy(parsing), torch.from_numpy(truth_parsing))
        tally["parsed"] += 1
    return prepared


def report_of(tally):
    out = {f"pck@{f}": tally[f"pck@{f}"] / max(tally["joints"], 1) for f in PCK_FRACTIONS}
    out.update(visibility_accuracy=tally["visibility_ok"] / max(tally["joint_slots"], 1),
               mirrored_pck_at_0_1=tally["mirror_ok"] / max(tally["mirror_joints"], 1),
               joints=tally["joints"], photos=tally["photos"], refused=tally["refused"],
               seconds_per_photo=round(tally["seconds"] / max(tally["photos"], 1), 3),
               cpu_seconds_per_photo=round(tally["cpu_seconds"] / max(tally["photos"], 1), 3))
    if tally["parsed"]:
        out.update(miou=miou(tally["conf"]), parsed_photos=tally["parsed"],
                   iou={n: float(v) for n, v in zip(CLASS_NAMES, iou_per_class(tally["conf"]).tolist())})
    return out


def evaluate_photos(preparers, data_dirs, limit=None, sheet_rows=12, log=print):
    """preparers: {name: PhotoPreparer}. Returns (report {folder: {name: scores}}, with "all" over
    every folder when there are several; a sheet (H, W, 3) uint8: photo with its labels, then each
    finder's prepared frame, or None)."""
    folders = [Path(d) for d in np.atleast_1d(data_dirs)]
    totals = {name: empty_tally() for name in preparers}
    report, sheet = {}, []
    for folder in folders:
        tallies = {name: empty_tally() for name in preparers}
        samples = [(stem, paths) for stem, paths in find_test_samples(folder).items() if paths["P0"]]
        for k, (stem, paths) in enumerate(samples[:limit]):
            photo = open_photo(paths["I0"])
            truth_pose = read_pose_csv(paths["P0"])[1][0]
            truth_parsing = read_parsing(paths["S0"]) if paths["S0"] else None
            row = [overlay(photo, truth_parsing if truth_parsing is not None else np.zeros(photo.shape[:2], np.uint8),
                           truth_pose)] if photo.shape[:2] == (256, 256) else []
            for name, prep in preparers.items():
                for tally in (tallies[name], totals[name]):
                    prepared = score_photo(prep, photo, truth_pose, truth_parsing, tally)
                if row:
                    row.append(overlay(prepared.image, prepared.parsing, prepared.pose)[:, 256:] if prepared
                               else np.zeros((256, 256, 3), np.uint8))
            if row and len(sheet) < sheet_rows:
                sheet.append(np.concatenate(row, 1))
            log(f"\rphoto evaluation: {folder.name} {k + 1}/{len(samples[:limit])}", end="")
        report[str(folder)] = {name: report_of(t) for name, t in tallies.items()}
    log("")
    if len(folders) > 1:
        report["all"] = {name: report_of(t) for name, t in totals.items()}
    return report, (np.concatenate(sheet, 0) if sheet else None)


def format_photo_table(report):
    cols = ("pck@0.05", "pck@0.1", "visibility_accuracy", "mirrored_pck_at_0_1", "miou")
    heads = ("PCK@0.05", "PCK@0.1", "visibility", "mirrored PCK@0.1", "mIoU")
    lines = []
    for folder, by_name in report.items():
        lines.append(f"{Path(folder).name or folder}")
        lines.append(f"  {'finder':<28}" + "".join(f"{h:>18}" for h in heads) + f"{'refused':>9}{'s/photo':>9}{'CPU s':>7}")
        for name, r in by_name.items():
            vals = "".join(f"{r[c]:>18.3f}" if c in r else f"{'-':>18}" for c in cols)
            lines.append(f"  {name:<28}{vals}{r['refused']:>9}{r['seconds_per_photo']:>9.3f}{r['cpu_seconds_per_photo']:>7.3f}")
            if "iou" in r:
                lines.append("    IoU " + ", ".join(f"{n} {v:.3f}" for n, v in r["iou"].items()))
    return "\n".join(lines)


def write_photo_report(report, sheet, report_dir):
    """report_dir/photo_report.json, photo_table.txt and photo_sheet.png (for looking at only:
    photos under a research licence stay out of the repository)."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "photo_report.json", json.dumps(report, indent=2).encode())
    atomic_write_bytes(out / "photo_table.txt", (format_photo_table(report) + "\n").encode())
    if sheet is not None:
        write_png(out / "photo_sheet.png", sheet)
    return [out / "photo_report.json"] + ([out / "photo_sheet.png"] if sheet is not None else [])


def finders():
    """The finders to compare: MediaPipe with the parser (where installed), and the project's nets."""
    from ..estimators import load_mediapipe

    return (["mediapipe"] if load_mediapipe()[0] is not None else []) + ["nets"]


def run(args, log=print):
    """`evaluate --parts photo` on test-layout folders: both finders side by side."""
    from ..prepare import PhotoPreparer

    if not args.report_dir:
        raise PSCError("--parts photo on test-layout folders needs --report_dir: its sheet shows the photos, so "
                       "choose where it goes (outside the repository if their licence forbids sharing them)")
    preparers = {("MediaPipe + parser" if f == "mediapipe" else "project's nets"):
                 PhotoPreparer.from_pretrained(args.weights, args.device, finder=f) for f in finders()}
    report, sheet = evaluate_photos(preparers, args.data_dir, limit=args.limit, log=log)
    print(format_photo_table(report))
    written = write_photo_report(report, sheet, args.report_dir)
    print("report: " + "; ".join(str(p) for p in written))
    return report
