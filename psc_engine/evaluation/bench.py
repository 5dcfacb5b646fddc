"""Speed of the AA + CT chain: batched frames per second against the seed-style loop, and a clip
written as PNGs against its compute alone.

What it times, by default: the shipped weights as `Pipeline.from_pretrained()` loads them, at
their cards' size (the shipped AA and CT run at 128x128 inside; frames are up-sampled to 256x256)
in the default precision (precision.py): what `animate` and the add-on run. `--random` times
untrained nets of `--base` width at 256x256 instead: the architecture alone, whose speed does
not depend on the weights' values. The table and the JSON say which (`weights`, `size`,
`precision`).

It times the bundled example's first photo (psc_engine/example/test), arms swinging.

The seed-style loop is the original's way: one frame per call, the reference re-encoded for
every frame, float32, PyTorch's default NCHW layout. It runs copies of the same nets through the
same Pipeline code (channels_last=False, precision="float32") in the same rounds, so the ratio
measures what the engine adds: batching, reference caching, channels-last, the faster precision.
The same loop in channels-last is reported too, to show what layout alone buys. The batched
output is compared with the seed loop's (float32) in precision.TOLERANCE's terms.

Every figure is the median of `repeats` interleaved rounds (this machine's speed drifts by
20-40 % over minutes, and other jobs share its cores); each round's figures are in "rounds".
Progress goes to `log` (the command line: stderr), one line per figure and round.
"""
import copy
import json
import platform
import resource
import shutil
import statistics
import tempfile
import time

from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import PSCError
from ..formats.outputs import write_frames
from ..formats.test_layout import load_test_layout
from ..pipeline import Pipeline
from ..precision import TOLERANCE, compare


def example_inputs(n, seed=0):
    """A plausible reference and n target poses (a person standing, arms swinging)."""
    rng = np.random.default_rng(seed)
    pose = np.array([[128, 40], [128, 60], [108, 62], [100, 95], [96, 128], [148, 62], [156, 95], [160, 128],
                     [115, 130], [113, 180], [112, 228], [141, 130], [143, 180], [144, 228], [123, 36],
                     [133, 36], [117, 40], [139, 40]], np.float32)
    parsing = np.zeros((256, 256), np.uint8)
    parsing[30:50, 115:141] = 2
    parsing[60:130, 100:156] = 4
    parsing[130:220, 108:148] = 5
    parsing[220:240, 105:150] = 6
    colours = np.array([[200, 200, 205], [60, 40, 20], [230, 190, 160], [220, 170, 140], [40, 90, 200],
                        [50, 50, 60], [120, 30, 30]], np.float32)
    stripes = (np.arange(256)[:, None] // 6 % 2).astype(np.float32) * 40  # a striped top
    image = colours[parsing] + np.where(parsing == 4, stripes, 0)[..., None]
    image = (image + rng.normal(0, 3, image.shape)).clip(0, 255).astype(np.uint8)
    swing = np.sin(np.linspace(0, 2 * np.pi, n))[:, None] * 12
    targets = np.repeat(pose[None], n, 0)
    targets[:, [3, 4, 6, 7], 0] += swing
    return image, parsing, pose, targets


EXAMPLE = Path(__file__).resolve().parent.parent / "example" / "test"


def photo_inputs(n):
    """The bundled example's first photo (a real person, with its parsing and pose) and n target
    poses: its own pose with the arms swinging. What the bench times: real pixels also give
    the PNG writer its real cost (example_inputs' drawn noise compresses worse: 5.5 ms a frame
    against 3.1)."""
    sample = load_test_layout(EXAMPLE)[0]
    swing = np.sin(np.linspace(0, 2 * np.pi, n))[:, None] * 12
    targets = np.repeat(sample.pose0[None], n, 0)
    targets[:, [3, 4, 6, 7], 0] += swing  # elbows and wrists (a missing joint stays missing)
    return sample.image, sample.parsing, sample.pose0, targets


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_frames(fn, frames, device, min_seconds=1.0, warm_up=True):
    """Frames per second of fn() (which renders `frames` frames), after one warm-up call."""
    if warm_up:
        fn()
        _sync(device)
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        _sync(device)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return runs * frames / elapsed


def flops_per_frame(pipe, image, parsing, pose, targets):
    """Per-frame FLOPs of AA + CT (per-frame work only; the reference is encoded once per clip)."""
    ref = pipe.encode_reference(image, parsing, pose)
    with FlopCounterMode(display=False) as counter:
        pipe.render(ref, torch.from_numpy(targets[:1]))
    return counter.get_total_flops()


# Peak dense throughput assumed for "fraction of peak", TFLOP/s (vendor figures, no sparsity).
GPU_PEAKS = {"H100": {"float32": 67.0, "tf32": 494.7, "float16": 989.4, "bfloat16": 989.4},
             "H200": {"float32": 67.0, "tf32": 494.7, "float16": 989.4, "bfloat16": 989.4},
             "A100": {"float32": 19.5, "tf32": 156.0, "float16": 312.0, "bfloat16": 312.0}}


def cpu_peak_tflops(bfloat16=False):
    """cores x clock x FLOP/cycle: AVX-512 with 2 FMA units is 64 fp32 FLOP/cycle/core, AVX2 32;
    bfloat16 on a CPU with AVX512-BF16 dot products doubles that. The clock is the nominal one
    /proc/cpuinfo reports."""
    import os

    mhz, flags = 2000.0, ""
    try:
        text = open("/proc/cpuinfo").read()
        mhz = float(next(l.split(":")[1] for l in text.splitlines() if l.startswith("cpu MHz")))
        flags = next(l for l in text.splitlines() if l.startswith("flags"))
    except (OSError, StopIteration, ValueError):
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    kind = "fp32 FMA"
    if bfloat16 and "avx512_bf16" in flags:
        per_cycle, kind = per_cycle * 2, "bf16 dot product"
    cores = torch.get_num_threads() or os.cpu_count()
    return cores * mhz * 1e6 * per_cycle / 1e12, f"{cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle ({kind})"


def device_peak_tflops(pipe):
    if pipe.device.type != "cuda":
        return cpu_peak_tflops(pipe.precision == "bfloat16")
    name = torch.cuda.get_device_name(pipe.device)
    kind = pipe.precision if pipe.half else ("tf32" if torch.backends.cudnn.allow_tf32 else "float32")
    for key, peaks in GPU_PEAKS.items():
        if key in name:
            return peaks[kind], f"{name} {kind} dense peak (vendor figure)"
    return float("nan"), f"{name}: peak unknown"


def end_to_end(pipe, image, parsing, pose, clip, batch_size, repeats=3, log=print):
    """`animate`'s path (Pipeline.stream + the PNG writer thread) against the compute alone.

    Each end-to-end round times two moments of the same run: when the last chunk is computed
    (compute) and when the last PNG has landed (end to end), so end to end can never read below
    compute. Rounds of the compute alone (every chunk computed and copied to host memory as uint8,
    no PNGs) alternate with them, so drift hits both alike, and are reported beside it: they say
    what the writer thread costs the compute it overlaps. Each figure is the median of its rounds."""
    def compute():
        for _ in pipe.stream(image, parsing, pose, clip, batch_size=batch_size):
            pass  # each chunk's frames are uint8 numpy arrays on the host by now
        _sync(pipe.device)

    def timed_stream(marks):
        yield from pipe.stream(image, parsing, pose, clip, batch_size=batch_size)
        _sync(pipe.device)
        marks.append(time.perf_counter())  # the last chunk is computed; its PNGs may still be writing

    times = {"compute_alone": [], "compute": [], "end_to_end": []}
    with tempfile.TemporaryDirectory(prefix="psc-bench-") as tmp:
        warm = clip[:2 * batch_size]  # the writer thread and PIL's encoder, untimed
        write_frames(pipe.stream(image, parsing, pose, warm, batch_size=batch_size), Path(tmp) / "warm")
        for r in range(1, repeats + 1):
            for kind in ("compute", "end_to_end") if r % 2 else ("end_to_end", "compute"):
                folder = Path(tmp) / f"clip{r}"
                t0 = time.perf_counter()
                if kind == "compute":
                    compute()
                    times["compute_alone"].append(round(time.perf_counter() - t0, 3))
                else:
                    marks = []
                    write_frames(timed_stream(marks), folder)
                    times["end_to_end"].append(round(time.perf_counter() - t0, 3))
                    times["compute"].append(round(marks[0] - t0, 3))
                shutil.rmtree(folder, ignore_errors=True)  # not timed
                last = times["compute_alone" if kind == "compute" else "end_to_end"][-1]
                log(f"bench: end to end round {r}/{repeats}, {len(clip)} frames at batch {batch_size}, "
                    f"{'compute alone' if kind == 'compute' else 'written as PNGs'}: {last:.2f} s")
    median = {k: statistics.median(v) for k, v in times.items()}
    compute_s, e2e_s = median["compute"], median["end_to_end"]
    return {"end_to_end_frames": len(clip), "end_to_end_batch": batch_size, "compute_seconds": compute_s,
            "compute_alone_seconds": median["compute_alone"],
            "end_to_end_seconds": e2e_s, "end_to_end_over_compute": round(e2e_s / compute_s, 3),
            "end_to_end_over_compute_alone": round(e2e_s / median["compute_alone"], 3),
            "end_to_end_fps": round(len(clip) / e2e_s, 2), "end_to_end_rounds": times}


def run(nets, cards=None, device="auto", precision="auto", compile=False, batch_sizes=(1, 4, 16), frames=None,
        seed_frames=8, min_seconds=1.0, end_to_end_frames=250, repeats=3, weights="given", log=None):
    """Time the engine's Pipeline over float32 nets (pm, aa, ct), as Pipeline.from_pretrained builds
    it from them and their cards, against the seed-style loop over copies of the same nets.
    Each Pipeline gets its own copy: it converts its nets' layout (and in bfloat16 on the CPU
    their dtype) in place. `weights` says what the nets are, for the report."""
    log = log or (lambda message: None)
    pipe = Pipeline(*(copy.deepcopy(n) for n in nets), device=device, precision=precision, cards=cards, compile=compile)
    device = pipe.device
    frames = frames or max(batch_sizes)
    image, parsing, pose, targets = photo_inputs(max(frames, seed_frames))
    result = {"weights": weights, "size": pipe.size, "precision": pipe.precision,
              "precision_reason": pipe.precision_reason, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
              else platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "repeats": repeats}
    log(f"bench: {weights}; AA and CT at {pipe.size}x{pipe.size}, {pipe.precision} ({pipe.precision_reason}), "
        f"on {device} with {torch.get_num_threads()} threads")
    log(f"bench: {repeats} rounds of batch {', '.join(map(str, batch_sizes))} and the seed-style loop, "
        f">= {min_seconds:g} s each" + (f"; then {end_to_end_frames} frames end to end" if end_to_end_frames else ""))
    if pipe.compiled:  # the compile cost, reported apart from the steady-state speed
        t0 = time.perf_counter()
        for bs in batch_sizes:
            log(f"bench: compiling for batch {bs}")
            sum(1 for _ in pipe.stream(image, parsing, pose, np.resize(targets, (bs, 18, 2)), batch_size=bs))
        _sync(device)
        result["compile_seconds"] = round(time.perf_counter() - t0, 1)
        result["compiled"] = pipe.compiled  # False if compiling failed and it fell back to eager
    seed_targets = targets[:seed_frames]
    seed_pipe = Pipeline(*(copy.deepcopy(n) for n in nets), device=device, precision="float32", cards=cards,
                         channels_last=False)
    seed_cl = Pipeline(*(copy.deepcopy(n) for n in nets), device=device, precision="float32", cards=cards)

    def batched(bs):
        tg = np.resize(targets, (max(frames, bs), 18, 2))
        return lambda: sum(1 for _ in pipe.stream(image, parsing, pose, tg, batch_size=bs)), len(tg)

    def seed_loop(p):
        def loop():
            for t in seed_targets:  # one call per frame, reference re-encoded each time
                p.transfer(image, parsing, pose, t[None], batch_size=1)
        return loop, seed_frames

    timed = {f"fps_batch{bs}": batched(bs) for bs in batch_sizes}
    timed.update(fps_seed_loop=seed_loop(seed_pipe), fps_seed_loop_channels_last=seed_loop(seed_cl))
    rounds = {key: [] for key in timed}
    for r in range(1, repeats + 1):
        for key, (fn, n) in timed.items():
            rounds[key].append(round(time_frames(fn, n, device, min_seconds, warm_up=r == 1), 2))
            log(f"bench: round {r}/{repeats}, {key.removeprefix('fps_').replace('_', ' ')}: {rounds[key][-1]:.2f} frames/s")
    result.update({key: statistics.median(values) for key, values in rounds.items()})
    result["rounds"] = rounds
    best_bs = max(batch_sizes, key=lambda bs: result[f"fps_batch{bs}"])
    best = result[f"fps_batch{best_bs}"]
    result["speedup_vs_seed_loop"] = round(best / result["fps_seed_loop"], 2)
    result["speedup_vs_seed_loop_channels_last"] = round(best / result["fps_seed_loop_channels_last"], 2)
    ours = pipe.transfer(image, parsing, pose, seed_targets, batch_size=len(seed_targets))
    diff = compare(ours, seed_pipe.transfer(image, parsing, pose, seed_targets, batch_size=1))
    result.update(max_abs_diff_vs_seed_loop=diff["max_abs_diff"], mean_abs_diff_vs_seed_loop=diff["mean_abs_diff"],
                  parsing_agreement_vs_seed_loop=diff["parsing_agreement"], within_tolerance=diff["within"],
                  tolerance=TOLERANCE)
    if end_to_end_frames:
        clip = np.resize(targets, (end_to_end_frames, 18, 2))
        result.update(end_to_end(pipe, image, parsing, pose, clip, best_bs, repeats, log))
    flops = flops_per_frame(pipe, image, parsing, pose, targets)
    result["gflop_per_frame"] = round(flops / 1e9, 3)
    result["achieved_gflops"] = round(flops * best / 1e9, 1)
    peak, how = device_peak_tflops(pipe)
    result["peak_tflops_assumed"] = round(peak, 2)
    result["peak_assumption"] = how
    result["fraction_of_peak"] = round(flops * best / 1e12 / peak, 4) if peak == peak else None
    if device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def photo_fps(prep, min_seconds=1.0):
    """Images per second of the keypoint net, the parser, and both as `prepare` runs them on a
    256x256 photo (one image per call, as a user's photo arrives)."""
    image = example_inputs(1)[0]
    device = prep.device
    result = {"keypoint_fps": round(time_frames(lambda: prep.pose(image), 1, device, min_seconds), 2),
              "parser_fps": round(time_frames(lambda: prep.parse(image), 1, device, min_seconds), 2)}
    try:
        result["prepare_fps"] = round(time_frames(lambda: prep.prepare(image), 1, device, min_seconds), 2)
    except PSCError:  # untrained (--random) nets may find no person in the drawn photo: nothing to time
        result["prepare_fps"] = None
    return result




def print_report(result, out):
    out.write(json.dumps(result) + "\n")
    size = result["size"]
    out.write(f"\n{result['weights']}: AA and CT at {size}x{size}, {result['precision']} ({result['precision_reason']}), "
              f"{result['device']}, {result['threads']} threads; median of {result['repeats']} rounds\n")
    if "compile_seconds" in result:
        out.write(f"compiled: {result['compiled']}, compile time {result['compile_seconds']} s (apart from the figures)\n")
    out.write(f"\n{'chain (AA+CT)':<26}{'frames/s':>10}\n")
    for key, fps in result.items():
        if key.startswith("fps_"):
            out.write(f"{key.removeprefix('fps_'):<26}{fps:>10.2f}\n")
    out.write(f"speed-up of batched ({result['precision']}) over the seed loop (float32, NCHW): "
              f"{result['speedup_vs_seed_loop']}x ({result['speedup_vs_seed_loop_channels_last']}x over the seed "
              f"loop in channels-last)\n")
    tol = result["tolerance"]
    out.write(f"difference from the seed loop: mean {result['mean_abs_diff_vs_seed_loop']} of 255 (tolerance "
              f"{tol['mean_abs_diff']}), max {result['max_abs_diff_vs_seed_loop']}, parsing agreement "
              f"{result['parsing_agreement_vs_seed_loop']:.2%} (tolerance {tol['parsing_agreement']:.1%}): "
              f"{'within' if result['within_tolerance'] else 'OUTSIDE'} the tolerance\n")
    if "photo" in result:
        ph = result["photo"]
        out.write(f"photo nets, one 256x256 image per call: keypoint net {ph['keypoint_fps']}/s, parser "
                  f"{ph['parser_fps']}/s, prepare (both) "
                  f"{'not timed: the nets find no person' if ph['prepare_fps'] is None else str(ph['prepare_fps']) + '/s'}\n")
    if "end_to_end_seconds" in result:
        out.write(f"end to end, {result['end_to_end_frames']} frames at batch {result['end_to_end_batch']} written as "
                  f"PNGs: {result['end_to_end_seconds']} s ({result['end_to_end_fps']} frames/s) against "
                  f"{result['compute_seconds']} s of compute in the same run ({result['end_to_end_over_compute']}x; "
                  f"compute alone, no writer: {result['compute_alone_seconds']} s, "
                  f"{result['end_to_end_over_compute_alone']}x)\n")
    out.write(f"{result['gflop_per_frame']} GFLOP/frame -> {result['achieved_gflops']} GFLOP/s achieved on {result['device']}, "
              f"{result['fraction_of_peak']} of an assumed peak of {result['peak_tflops_assumed']} TFLOP/s "
              f"({result['peak_assumption']})\n")
