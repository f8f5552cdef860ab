"""Place (or remove) the discovery shims in the installed nnunetv2 package.

The nnunetv2-scarnet wheel already installs both shims. This command is the fallback for installs that do not
run the wheel's file list into nnU-Net's folders: an editable (`pip install -e`) checkout of this project, an
nnunetv2 that is itself installed editable, or an nnunetv2 reinstalled after this project.

    scarnet-nnunet-register            # write the shims where nnunetv2 lives
    scarnet-nnunet-register --check    # report where nnU-Net will look and whether the shims are there
    scarnet-nnunet-register --remove   # delete them again
"""
import argparse
import importlib.util
import os
import shutil
import sys
from typing import List, Tuple

#: shim source (inside this package) -> (folder below nnunetv2, file name there)
SHIMS = {
    "trainers_shim.py": (os.path.join("training", "nnUNetTrainer"), "scarnet_plugin_trainers.py"),
    "planners_shim.py": ("experiment_planning", "scarnet_plugin_planners.py"),
}


def nnunetv2_folder() -> str:
    """Folder of the nnunetv2 package that `import nnunetv2` resolves to (without importing it)."""
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunetv2 is not installed in this Python environment")
    return list(spec.submodule_search_locations)[0]


def shim_locations() -> List[Tuple[str, str]]:
    """(source, destination) of every shim."""
    package = os.path.dirname(os.path.abspath(__file__))
    here = os.path.join(package, "shims")  # where the wheel puts them
    if not os.path.isdir(here):  # an editable install runs from the checkout: src/nnunetv2_scarnet/discovery
        here = os.path.join(package, os.pardir, os.pardir, os.pardir, "discovery_shims")
    root = nnunetv2_folder()
    return [(os.path.join(here, src), os.path.join(root, folder, name)) for src, (folder, name) in SHIMS.items()]


def install() -> List[str]:
    written = []
    for source, destination in shim_locations():
        if not os.path.isdir(os.path.dirname(destination)):
            raise RuntimeError(f"nnU-Net folder {os.path.dirname(destination)} does not exist: is nnunetv2 2.8.x "
                               f"installed?")
        shutil.copyfile(source, destination)
        written.append(destination)
    return written


def remove() -> List[str]:
    removed = []
    for _, destination in shim_locations():
        if os.path.isfile(destination):
            os.remove(destination)
            removed.append(destination)
    return removed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Register the ScarNet trainers and planner with nnU-Net v2.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--remove", action="store_true", help="delete the shims from nnU-Net's folders")
    group.add_argument("--check", action="store_true", help="only report whether the shims are in place")
    args = parser.parse_args(argv)
    try:
        if args.remove:
            for path in remove():
                print(f"removed {path}")
            return 0
        if args.check:
            missing = [d for _, d in shim_locations() if not os.path.isfile(d)]
            for _, destination in shim_locations():
                print(f"{'present' if os.path.isfile(destination) else 'MISSING'}: {destination}")
            return 1 if missing else 0
        for path in install():
            print(f"wrote {path}")
        return 0
    except RuntimeError as exc:
        print(f"scarnet-nnunet-register: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
