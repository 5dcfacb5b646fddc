"""Per-sample random streams: (split, index, stream name) -> a numpy Generator.

Every part of a sample (body, pose, outfit, hair, scene) draws from its own stream, so a
change to how one part draws numbers leaves the others' draws unchanged. The split is part
of the seed, so train, heldout and test never share a seed.
"""
import zlib

import numpy as np

SPLITS = ("train", "heldout", "test")
# test draws from the held-out families too: it is for inference demos, never for training.
FAMILY = {"train": "train", "heldout": "heldout", "test": "heldout"}
_STREAMS = ("body", "pose", "outfit", "hair", "scene", "framing")  # append only: the index is the seed


def split_salt(split):
    return zlib.crc32(f"psc-datagen/{split}".encode())


def sample_seed(split, index):
    """The integer that names a sample; written into its completion marker."""
    return int(np.random.SeedSequence([split_salt(split), int(index)]).generate_state(1)[0])


def rng(split, index, stream):
    if stream not in _STREAMS:
        raise ValueError(f"unknown random stream {stream!r}")
    return np.random.default_rng([split_salt(split), int(index), _STREAMS.index(stream)])
