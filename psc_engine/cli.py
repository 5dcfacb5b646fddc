"""Command line: `python -m psc_engine <command>` or `psc <command>`.

  test      the original release's job on the test layout (PM -> AA -> CT at t = 0.2 .. 1.0)
  animate   one frame per target pose (what the Blender add-on runs)
  bench     frames per second of the AA + CT chain, batched vs the seed-style loop
  train     train PM, AA or CT on the train layout
  evaluate  SSIM / PSNR / mIoU / PM joint error on a train-layout folder, with baselines;
            PCK and parser mIoU of the photo nets
  prepare   a plain photo -> I0, S0, P0 (the photo nets find, frame, parse and pose the person)
  init-weights  write untrained placeholder checkpoints

User errors print one line, `psc: error: <file>: <what is wrong>`, and exit with status 2.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import PSCError

TEST_TS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _pipeline(args):
    from .pipeline import Pipeline

    pipe = Pipeline.from_pretrained(args.weights, device=args.device, precision=args.precision)
    if pipe.placeholder:
        print("psc: warning: using untrained placeholder weights; frames will not look like the person",
              file=sys.stderr)
    return pipe


def _runs_in(pipe):
    """The first line `test` and `animate` print: how AA and CT run, and why in that precision."""
    return f"psc: AA and CT in {pipe.precision} on {pipe.device} ({pipe.precision_reason})"


def cmd_test(args):
    from .formats.draw import process_strip
    from .formats.test_layout import load_test_layout
    from .formats.outputs import OutputDir

    samples = load_test_layout(args.data_dir)  # everything read and checked before writing
    pipe = _pipeline(args)
    print(_runs_in(pipe), flush=True)
    for s in samples:
        if s.parsing is None or s.pose0 is None:
            s.image, s.parsing, s.pose0 = _complete(args, s.image, s.parsing, s.pose0, f"sample {s.stem}")
    with OutputDir(args.output_dir, args.overwrite) as out, OutputDir(args.process_dir, args.overwrite) as proc:
        for s in samples:
            poses = pipe.interpolate(s.pose0, s.pose1, TEST_TS)
            frames = pipe.transfer(s.image, s.parsing, s.pose0, poses, batch_size=args.batch_size)
            for t, image in zip(TEST_TS, frames.images):
                out.write_png(f"{s.stem}_t{t:.1f}.png", image)
            steps = list(zip(poses, frames.parsings, frames.images))
            proc.write_png(f"{s.stem}.png", process_strip(s.pose0, s.pose1, s.parsing, s.image, steps))
            print(f"{s.stem}: {len(TEST_TS)} frames", flush=True)
    print(f"wrote {len(samples) * len(TEST_TS)} frames to {args.output_dir} and {len(samples)} process strips to {args.process_dir}")
    return 0


def _complete(args, image, parsing, pose, what):
    """Estimate a missing parsing and/or pose with the photo nets (prepare.py), and say so."""
    from .prepare import complete_reference

    missing = " and ".join(n for n, v in (("parsing", parsing), ("pose", pose)) if v is None)
    print(f"psc: {what}: no {missing} given; estimating it from the photo", file=sys.stderr)
    return complete_reference(image, parsing, pose, args.weights, args.device)


def _target_poses(args, pipe):
    """Every frame's pose: from --poses, or PM-Net between --key_poses at --key_frames."""
    from .formats.poses import read_pose_csv

    if args.poses:
        return read_pose_csv(args.poses)[1]
    _, keys = read_pose_csv(args.key_poses)
    try:
        frames = [int(f) for f in args.key_frames.split(",")]
    except ValueError:
        raise PSCError(f"--key_frames must be comma-separated integers, got {args.key_frames!r}") from None
    if len(frames) != len(keys):
        raise PSCError(f"{len(keys)} poses but {len(frames)} --key_frames", args.key_poses)
    if len(frames) < 2 or any(b <= a for a, b in zip(frames, frames[1:])):
        raise PSCError("--key_frames needs at least two strictly increasing frame numbers")
    out = [keys[:1]]
    for (fa, pa), (fb, pb) in zip(zip(frames, keys), zip(frames[1:], keys[1:])):
        ts = (np.arange(fa + 1, fb + 1) - fa) / (fb - fa)  # the in-betweens, then the next key itself
        inner = pipe.interpolate(pa, pb, ts[:-1]) if len(ts) > 1 else np.zeros((0, 18, 2), np.float32)
        out += [inner, pb[None]]
    return np.concatenate(out)


def cmd_animate(args):
    from .formats.images import read_image, read_parsing, require_person
    from .formats.outputs import write_frames
    from .formats.poses import read_pose_csv, require_joints

    if bool(args.poses) == bool(args.key_poses):
        raise PSCError("give either --poses (one pose per frame) or --key_poses with --key_frames")
    if args.key_poses and not args.key_frames:
        raise PSCError("--key_poses needs --key_frames (the frame number of each key pose)")
    image = read_image(args.image)
    parsing = require_person(read_parsing(args.parsing), args.parsing) if args.parsing else None
    pose = require_joints(read_pose_csv(args.pose)[1][0], args.pose) if args.pose else None
    if args.poses:
        read_pose_csv(args.poses)  # check the targets before loading the nets
    pipe = _pipeline(args)
    if parsing is None or pose is None:
        image, parsing, pose = _complete(args, image, parsing, pose, str(args.image))
    targets = _target_poses(args, pipe)
    progress = args.progress == "json"

    def emit(**event):
        if progress:
            print(json.dumps(event), flush=True)

    total = len(targets)
    emit(event="start", total=total, device=str(pipe.device), precision=pipe.precision, reason=pipe.precision_reason)
    if not progress:
        print(_runs_in(pipe), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = 0

    def on_frame(path):
        nonlocal done
        done += 1
        emit(event="frame", done=done, total=total, path=str(path))
        if not progress:
            print(f"\r{done}/{total} frames", end="", file=sys.stderr, flush=True)

    warn = lambda msg: print(f"psc: warning: {msg}", file=sys.stderr, flush=True)
    chunks = pipe.stream(image, parsing, pose, targets, batch_size=args.batch_size, on_warning=warn)
    write_frames(chunks, args.output_dir, args.overwrite, on_frame)
    seconds = time.perf_counter() - start
    emit(event="done", total=total, output_dir=str(args.output_dir), seconds=round(seconds, 3))
    if not progress:
        print(f"\rwrote {total} frames to {args.output_dir} ({total / max(seconds, 1e-9):.1f} frames/s)", file=sys.stderr)
    return 0


def cmd_bench(args):
    import torch

    from .evaluation import bench
    from .pipeline import PACKAGE_WEIGHTS, default_weights_dir, load_chain, pick_device
    from .weights import NETS, build_net

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.random:  # the architecture alone: untrained nets of the chosen width at 256x256
        nets, cards = [build_net(name, {"base": args.base}) for name in NETS], None
        what = f"random base-{args.base} nets (--random: the architecture alone, untrained)"
    else:  # what animate runs: the weights as Pipeline.from_pretrained loads them, at their own size
        folder = args.weights or default_weights_dir()
        nets, cards = load_chain(folder, device)
        what = f"{'shipped' if Path(folder).resolve() == PACKAGE_WEIGHTS else 'given'} weights ({folder})"
    default = "1,4,16,64,256" if device.type == "cuda" else "1,4,8,16,64"
    sizes = tuple(int(b) for b in (args.batch_sizes or default).split(","))
    log = lambda message: print(message, file=sys.stderr, flush=True)
    result = bench.run(nets, cards, device, precision=args.precision, compile=args.compile, batch_sizes=sizes,
                       frames=args.frames, seed_frames=args.seed_frames, min_seconds=args.seconds,
                       end_to_end_frames=args.end_to_end, repeats=args.repeats, weights=what, log=log)
    if args.photo:
        from .prepare import PhotoPreparer
        from .weights import PHOTO_NETS

        if not args.random:
            prep = PhotoPreparer.from_pretrained(args.weights, args.device)
        else:
            prep = PhotoPreparer(*(build_net(name, {"base": args.base}) for name in PHOTO_NETS), device=args.device)
        result["photo"] = bench.photo_fps(prep, min_seconds=args.seconds)
    bench.print_report(result, sys.stdout)
    return 0


def cmd_train(args):
    from .training.train import train

    train(args)
    return 0


def cmd_evaluate(args):
    from .evaluation.evaluate import evaluate, format_table, write_report
    from .prepare import PhotoPreparer

    pipe = _pipeline(args) if "psc" in args.parts else None
    prep = PhotoPreparer.from_pretrained(args.weights, args.device) if "photo" in args.parts else None
    if prep is not None and prep.placeholder:
        print("psc: warning: the photo nets are untrained placeholders", file=sys.stderr)
    report, sheets = evaluate(pipe, args.data_dir, limit=args.limit, prep=prep,
                              log=lambda *a, **k: print(*a, **k, file=sys.stderr))
    print(format_table(report))
    write_report(report, sheets, args.report_dir)
    written = [f"{args.report_dir}/report.json"]
    if sheets["contact_sheet"] is not None:
        written.append(f"{args.report_dir}/contact_sheet.png (columns: input, truth, ours, ours with true S_t, copy, affine warp)")
    if sheets["photo_sheet"] is not None:
        written.append(f"{args.report_dir}/photo_sheet.png (columns: photo, true parsing and pose, the photo nets' guess)")
    print("report: " + "; ".join(written))
    return 0


def cmd_prepare(args):
    from .formats.images import write_png
    from .formats.poses import format_pose_csv
    from .prepare import PhotoPreparer, open_photo, overlay

    photo = open_photo(args.image)
    prep = PhotoPreparer.from_pretrained(args.weights, args.device)
    if prep.placeholder:
        print("psc: warning: the photo nets are untrained placeholders; check the overlay", file=sys.stderr)
    image, parsing, pose = prep.prepare(photo)
    stem = args.stem or Path(args.image).stem
    out = Path(args.out)
    targets = {f"I0/{stem}.png": image, f"S0/{stem}.png": parsing, f"overlay/{stem}.png": overlay(image, parsing, pose)}
    clashes = [n for n in [*targets, f"P0/{stem}.csv"] if (out / n).exists()]
    if clashes and not args.overwrite:
        raise PSCError(f"{clashes[0]} already exists; pass --overwrite or choose another --out", out)
    for sub in ("I0", "S0", "P0", "overlay"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name, array in targets.items():
        write_png(out / name, array)
    from .formats.images import atomic_write_bytes

    atomic_write_bytes(out / "P0" / f"{stem}.csv", format_pose_csv(pose[None]).encode())
    seen = int((~np.isnan(pose).any(-1)).sum())
    print(f"prepared {stem}: person framed at 256x256, {seen}/18 joints seen; check {out / 'overlay' / (stem + '.png')}")
    return 0


def cmd_init_weights(args):
    from .weights import make_placeholder

    if os.path.isdir(args.out) and any(n.endswith(".safetensors") for n in os.listdir(args.out)) and not args.overwrite:
        raise PSCError("folder already holds weights; pass --overwrite to replace them", args.out)
    make_placeholder(args.out, base=args.base, seed=args.seed)
    print(f"wrote untrained placeholder pm/aa/ct (base width {args.base}) to {args.out}")
    return 0


def precision_option(sp, default="auto"):
    sp.add_argument("--precision", default=default, choices=["auto", "float32", "bfloat16", "float16"],
                    help="AA's and CT's number format; auto: the fastest within the stated tolerance of float32 on "
                    "this machine (bfloat16 on a CPU with AVX512-BF16 or AMX, float16 on CUDA, else float32); "
                    "float32 forces float32 (default: %(default)s)")


def build_parser():
    p = argparse.ArgumentParser(prog="psc", description="PSC engine: a dressed person from one photo, in new poses.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, batch=8, precision="auto"):
        sp.add_argument("--weights", default=None, help="weights folder (default: $PSC_WEIGHTS or the repository's weights/)")
        sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
        precision_option(sp, precision)
        sp.add_argument("--batch_size", type=int, default=batch, help="frames per AA/CT batch")

    t = sub.add_parser("test", help="the original release's test job on the test layout")
    t.add_argument("--data_dir", required=True)
    t.add_argument("--output_dir", required=True)
    t.add_argument("--process_dir", required=True)
    t.add_argument("--overwrite", action="store_true", help="write into output folders that already hold files")
    common(t)
    t.set_defaults(fn=cmd_test)

    a = sub.add_parser("animate", help="one frame per target pose")
    a.add_argument("--image", required=True, help="reference photo I0 (256x256)")
    a.add_argument("--parsing", help="its parsing S0 (PNG, class id in red); estimated from the photo if not given")
    a.add_argument("--pose", help="its pose P0 (CSV); estimated from the photo if not given")
    a.add_argument("--poses", help="target poses CSV, one pose per frame")
    a.add_argument("--key_poses", help="key poses CSV; the frames between keys come from PM-Net")
    a.add_argument("--key_frames", help="frame number of each key pose, e.g. 1,10,25")
    a.add_argument("--output_dir", required=True)
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--progress", choices=["text", "json"], default="text", help="json: one event per line on stdout")
    common(a)
    a.set_defaults(fn=cmd_animate)

    b = sub.add_parser("bench", help="frames per second of the AA + CT chain")
    b.add_argument("--weights", default=None, help="time these weights (default: $PSC_WEIGHTS or the repository's "
                   "weights/, at their own size, as animate runs them)")
    b.add_argument("--random", action="store_true", help="time untrained nets of --base width at 256x256 instead "
                   "(the architecture alone)")
    b.add_argument("--base", type=int, default=16, help="width of the --random nets")
    b.add_argument("--device", default="auto")
    precision_option(b)
    b.add_argument("--compile", action="store_true", help="torch.compile the per-frame decoders (compile time reported apart)")
    b.add_argument("--batch_sizes", default=None, help="default: 1,4,8,16,64 on the CPU, 1,4,16,64,256 on CUDA")
    b.add_argument("--frames", type=int, default=None, help="frames per timed run (default: largest batch)")
    b.add_argument("--seed_frames", type=int, default=8)
    b.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per figure and round")
    b.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; each figure is their median")
    b.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    b.add_argument("--end_to_end", type=int, default=250, help="frames for the end-to-end run with PNG writing (0: skip)")
    b.add_argument("--photo", action="store_true", help="also time the photo nets (keypoints, parser, `prepare` on a 256x256 photo)")
    b.set_defaults(fn=cmd_bench)

    tr = sub.add_parser("train", help="train a net on the train layout (folders or .tar shards)")
    tr.add_argument("--data_dir", required=True, action="append", help="train-layout folder or folder of .tar shards (repeatable)")
    tr.add_argument("--model", required=True, choices=["pm", "aa", "ct", "pose", "parsing"],
                    help="pm, aa, ct: the PSC chain; pose, parsing: the photo nets used by `prepare`")
    tr.add_argument("--out", default="runs", help="run folder: <out>/<model>/checkpoint.pt, losses.csv, losses.png, weights/")
    tr.add_argument("--resume", action="store_true", help="continue from <out>/<model>/checkpoint.pt")
    tr.add_argument("--steps", type=int, default=20000, help="total steps (the lr halves every quarter)")
    tr.add_argument("--batch", type=int, default=4)
    tr.add_argument("--lr", type=float, default=4e-4)
    tr.add_argument("--base", type=int, default=16, help="base channel width")
    tr.add_argument("--size", type=int, default=256, choices=[128, 256], help="training resolution (128: a cheaper first stage)")
    tr.add_argument("--init", help="start from these trained weights (a folder with <model>.safetensors + .json), fresh optimiser")
    tr.add_argument("--shape_from", help="CT only: a weights folder whose AA-Net (frozen) gives CT the target parsings "
                    "it reads on --shape_mix of the items, as in the chain; losses stay on the truth")
    tr.add_argument("--shape_mix", type=float, default=0.5, help="share of items where CT reads AA's parsing (with --shape_from)")
    tr.add_argument("--ema", type=float, default=0.0, help="keep an exponential moving average of the weights with this "
                    "decay (e.g. 0.999) and export it instead of the last step's weights; 0: off")
    tr.add_argument("--ssim_weight", type=float, default=1.0, help="CT only: weight of the SSIM term against the "
                    "others (L1, gradients, face and clothing L2, texture, flow), each weighted as losses.py says")
    tr.add_argument("--minutes", type=float, default=0, help="stop (with a checkpoint) after this many minutes")
    tr.add_argument("--checkpoint_minutes", type=float, default=5)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--no_augment", action="store_true")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="bf16: the nets run under bfloat16 autocast (weights, optimiser and SSIM stay float32); "
                    "auto: bf16 on CUDA, fp32 on the CPU (bf16 there trained CT 1.22x faster on a CPU with "
                    "AVX512-BF16 or AMX)")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(fn=cmd_train)

    ev = sub.add_parser("evaluate", help="quality on a train-layout folder, against two baselines")
    ev.add_argument("--data_dir", required=True, action="append", help="train-layout folder or folder of .tar shards")
    ev.add_argument("--report_dir", default="evaluation", help="where report.json, table.txt, contact_sheet.png go")
    ev.add_argument("--limit", type=int, default=None, help="at most this many samples")
    ev.add_argument("--parts", nargs="+", choices=("psc", "photo"), default=["psc", "photo"],
                    help="psc: the PM/AA/CT chain against the baselines; photo: the keypoint net and parser (PCK, mIoU)")
    common(ev, precision="float32")  # quality figures stay comparable across checkpoints
    ev.set_defaults(fn=cmd_evaluate)

    pr = sub.add_parser("prepare", help="a plain photo -> I0, S0 and P0 in the test layout, with an overlay")
    pr.add_argument("--image", required=True, help="a photo of a person, any size")
    pr.add_argument("--out", required=True, help="folder for I0/, S0/, P0/, overlay/")
    pr.add_argument("--stem", help="file stem (default: the photo's)")
    pr.add_argument("--weights", default=None)
    pr.add_argument("--device", default="auto")
    pr.add_argument("--overwrite", action="store_true")
    pr.set_defaults(fn=cmd_prepare)

    w = sub.add_parser("init-weights", help="write untrained placeholder checkpoints")
    w.add_argument("--out", default="weights")
    w.add_argument("--base", type=int, default=16)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--overwrite", action="store_true")
    w.set_defaults(fn=cmd_init_weights)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except PSCError as e:
        print(f"psc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("psc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("psc: error: out of memory; try a smaller --batch_size", file=sys.stderr)
        return 1
