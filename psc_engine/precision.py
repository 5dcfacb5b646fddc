"""Which number format AA and CT run in: the fastest one that stays within TOLERANCE of float32.

    precision = "auto"      # the default: bfloat16 on a CPU with native bfloat16 instructions
                            # (AVX512-BF16 or AMX), float16 on CUDA, float32 otherwise
    precision = "float32"   # forces float32 (the reference the tolerance is measured against)
    precision = "bfloat16"  # CPU: AA and CT converted to bfloat16; CUDA: bfloat16 autocast
    precision = "float16"   # CUDA only: float16 autocast

"auto" is decided by a capability check (the CPU's instruction set, as torch's cpuinfo reads
it), not by a timing run, so it is the same on every run on one machine and costs nothing.
Without native instructions oneDNN emulates bfloat16 and it is slower than float32, so "auto"
keeps float32 there.
"""
import numpy as np
import torch

from .errors import PSCError
from .protocol import PRECISIONS  # the contract names them: the add-on passes one

# How far the default precision may move the shipped chain's output from float32's (checked by
# tests/test_speed.py on the shipped weights, and reported by `bench`):
TOLERANCE = {
    "mean_abs_diff": 0.5,  # mean |frame - float32 frame| over all pixels and channels, of 255
    "parsing_agreement": 0.999,  # share of pixels whose AA class is float32's class
}


def native_cpu_bfloat16():
    """(True/False, why): does this CPU have bfloat16 dot-product instructions oneDNN uses?"""
    cpu = getattr(torch, "cpu", None)
    try:
        if cpu._is_amx_tile_supported():
            return True, "AMX"
        if cpu._is_avx512_bf16_supported():
            return True, "AVX512-BF16"
        return False, "no AVX512-BF16 or AMX"
    except AttributeError:  # an older torch without these checks: read the flags where Linux lists them
        try:
            flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
        except (OSError, StopIteration):
            return False, "CPU features unknown"
        if "amx_bf16" in flags:
            return True, "AMX"
        if "avx512_bf16" in flags:
            return True, "AVX512-BF16"
        return False, "no AVX512-BF16 or AMX"


def choose(precision, device):
    """The precision to run in on `device` (a torch.device) and a short reason, e.g.
    ("bfloat16", "auto: this CPU has AVX512-BF16"). `precision` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise PSCError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "float16" and not cuda:
        raise PSCError("float16 runs on CUDA only; on the CPU use --precision bfloat16 or float32")
    if precision != "auto":
        return precision, "asked for"
    if cuda:
        return "float16", "auto: float16 autocast on CUDA"
    if device.type == "cpu":
        native, why = native_cpu_bfloat16()
        if native:
            return "bfloat16", f"auto: this CPU has {why}"
        return "float32", f"auto: {why} on this CPU (bfloat16 would be emulated, slower)"
    return "float32", f"auto: float32 on {device.type}"


def compare(frames, reference):
    """How far Frames `frames` are from float32's `reference` Frames, in TOLERANCE's terms, with
    `within` saying whether both limits hold."""
    diff = np.abs(frames.images.astype(np.int16) - reference.images.astype(np.int16))
    out = {"mean_abs_diff": round(float(diff.mean()), 4), "max_abs_diff": int(diff.max()),
           "parsing_agreement": round(float((frames.parsings == reference.parsings).mean()), 5)}
    out["within"] = (out["mean_abs_diff"] <= TOLERANCE["mean_abs_diff"]
                     and out["parsing_agreement"] >= TOLERANCE["parsing_agreement"])
    return out
