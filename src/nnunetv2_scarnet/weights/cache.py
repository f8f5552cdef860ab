"""Where converted encoder weights live, and how trainers find them.

The cache is `$SCARNET_WEIGHTS_DIR` when set, else the platform's per-user cache directory (`~/.cache/scarnet/weights`
on Linux, honouring `$XDG_CACHE_HOME`; `~/Library/Caches/scarnet/weights` on macOS; `%LOCALAPPDATA%\\scarnet\\Cache\\
weights` on Windows). Each encoder is one plain state-dict file plus a JSON manifest that records where it came from.
"""
import json
import os
import sys
from typing import Optional, Union

from nnunetv2_scarnet.weights.sources import WeightSource, get_source

WEIGHTS_DIR_ENV = "SCARNET_WEIGHTS_DIR"


def user_cache_root() -> str:
    """The platform's per-user cache directory (no third-party dependency)."""
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local"), "scarnet",
                            "Cache")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "scarnet")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "scarnet")


def weights_dir() -> str:
    """The weights cache: `$SCARNET_WEIGHTS_DIR`, else `<user cache>/weights`."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return os.path.abspath(os.path.expanduser(configured)) if configured else os.path.join(user_cache_root(),
                                                                                           "weights")


def _source(source: Union[str, WeightSource]) -> WeightSource:
    return get_source(source) if isinstance(source, str) else source


def cache_path(source: Union[str, WeightSource]) -> str:
    """Where the converted encoder of `source` (a catalogue name or entry) is, or would be, stored."""
    return os.path.join(weights_dir(), _source(source).cache_filename)


def manifest_path(source: Union[str, WeightSource]) -> str:
    return os.path.splitext(cache_path(source))[0] + ".json"


def cached_encoder_path(name: Union[str, WeightSource]) -> Optional[str]:
    """The converted encoder file of `name` when it is in the cache, else None."""
    path = cache_path(name)
    return path if os.path.isfile(path) else None


def read_manifest(source: Union[str, WeightSource]) -> dict:
    """The manifest written next to a cached encoder; FileNotFoundError when there is none."""
    path = manifest_path(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no manifest {path}; run `scarnet weights fetch {_source(source).name} --force`")
    with open(path) as f:
        return json.load(f)


def find_encoder_weights(name: str) -> Optional[str]:
    """The file a trainer should load for `name`: its environment variable when set (it wins), else the cache."""
    source: WeightSource = get_source(name)
    configured = os.environ.get(source.env_var)
    if configured:
        return configured
    return cached_encoder_path(name)


def missing_weights_hint(name: str) -> str:
    """How to get the weights of `name`: the fetch command first, the environment variable second."""
    source = get_source(name)
    return (f"Run `scarnet weights fetch {name}` once (stores them in {weights_dir()}; "
            f"${WEIGHTS_DIR_ENV} moves the cache), or set {source.env_var}=/path/to/{source.env_example} "
            f"(SAM state-dict layout)")
