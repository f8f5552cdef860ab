"""Pretrained encoder weights: a pinned catalogue, verified resumable downloads, conversion, a per-user cache.

`scarnet weights list | fetch NAME | path NAME | verify NAME` is the command line; trainers call
`find_encoder_weights(name)` (environment variable first, then the cache).
"""
from nnunetv2_scarnet.weights.cache import (WEIGHTS_DIR_ENV, cache_path, cached_encoder_path, find_encoder_weights,
                                            missing_weights_hint, weights_dir)
from nnunetv2_scarnet.weights.sources import SOURCES, WeightSource, get_source

__all__ = ["SOURCES", "WEIGHTS_DIR_ENV", "WeightSource", "cache_path", "cached_encoder_path", "find_encoder_weights",
           "get_source", "missing_weights_hint", "weights_dir"]
