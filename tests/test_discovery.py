"""Stock nnU-Net finds our trainers and planner with no environment variable, through import-light shims."""
import importlib.util
import os
import subprocess
import sys

from nnunetv2_scarnet.discovery.register import shim_locations
from nnunetv2_scarnet.planners import PLANNER_NAMES
from nnunetv2_scarnet.trainers import TRAINER_NAMES


def run_python(code):
    env = dict(os.environ)
    env.pop("nnUNet_extTrainer", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_shims_are_installed_inside_nnunetv2():
    for _, destination in shim_locations():
        assert os.path.isfile(destination), f"{destination} missing: reinstall or run scarnet-nnunet-register"


def test_nnunet_lookup_finds_every_trainer_and_the_planner():
    code = (
        "import nnunetv2, os\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        "from nnunetv2.utilities.find_class_by_name import recursive_find_python_class\n"
        f"for name in {list(TRAINER_NAMES)!r}:\n"
        "    cls = find(name)\n"
        "    assert cls.__name__ == name and cls.__module__.startswith('nnunetv2_scarnet.'), (name, cls)\n"
        "assert find('nnUNetTrainer').__module__.startswith('nnunetv2.')\n"
        f"for name in {list(PLANNER_NAMES)!r}:\n"
        "    cls = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], 'experiment_planning'), name,\n"
        "                                      'nnunetv2.experiment_planning')\n"
        "    assert cls is not None and cls.__module__.startswith('nnunetv2_scarnet.'), name\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_installed_trainer_namespace_holds_no_benchmark_curve_trainer():
    """nnU-Net's trainer folder (shim included) and the package the shim serves define no class with "Curve" in
    its name, and nnU-Net's lookup (no nnUNet_extTrainer) finds neither the old nor the new curve trainer names: the
    learning-curve trainers live in benchmarks/curve_trainers, found only where the benchmark points nnU-Net."""
    code = (
        "import importlib, pkgutil\n"
        "import nnunetv2.training.nnUNetTrainer as stock_folder\n"
        "import nnunetv2_scarnet.trainers as served\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        "names = set(vars(served))\n"
        "for package in (stock_folder, served):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        names |= {n for n, o in vars(importlib.import_module(info.name)).items() if isinstance(o, type)}\n"
        "assert 'ScarNetTrainerLiteHybrid' in names and 'nnUNetTrainer' in names\n"
        "curve = sorted(n for n in names if 'Curve' in n)\n"
        "assert not curve, curve\n"
        "for name in ('ScarNetTrainerCurve_nnUNetTrainer', 'ScarNetTrainerCurve_ScarNetTrainerTiny_smoke',\n"
        "             'LearningCurve_nnUNetTrainer', 'LearningCurve_ScarNetTrainerLiteHybrid'):\n"
        "    try:\n"
        "        find(name)\n"
        "    except RuntimeError:\n"
        "        continue\n"
        "    raise AssertionError(f'nnU-Net found {name}')\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), (result.stdout[-2000:]
                                                                             + result.stderr[-3000:])


def test_shim_is_import_light_and_never_raises_for_other_names():
    code = (
        "import sys, importlib\n"
        "m = importlib.import_module('nnunetv2.training.nnUNetTrainer.scarnet_plugin_trainers')\n"
        "p = importlib.import_module('nnunetv2.experiment_planning.scarnet_plugin_planners')\n"
        "assert not any(k.startswith('nnunetv2_scarnet') for k in sys.modules), 'shim imported the plugin'\n"
        "assert not hasattr(m, 'nnUNetTrainer') and not hasattr(m, 'nnUNetTrainer_5epochs')\n"
        "assert not hasattr(p, 'ExperimentPlanner') and not hasattr(p, 'ResEncUNetPlanner')\n"
        "assert not any(k.startswith('nnunetv2_scarnet') for k in sys.modules), 'probe imported the plugin'\n"
        "assert not hasattr(m, 'ScarNetTrainerDoesNotExist')\n"
        "assert m.ScarNetTrainerLite.__name__ == 'ScarNetTrainerLite'\n"
        "assert p.ScarNetPlanner.__name__ == 'ScarNetPlanner'\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_register_command_reports_installed_shims():
    result = subprocess.run([sys.executable, "-m", "nnunetv2_scarnet.discovery.register", "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("present") == 2


def test_register_writes_shims_into_another_nnunet_tree(tmp_path, monkeypatch):
    """The fallback for editable installs: copy the shims into wherever nnunetv2 lives."""
    from nnunetv2_scarnet.discovery import register

    fake = tmp_path / "nnunetv2"
    (fake / "training" / "nnUNetTrainer").mkdir(parents=True)
    (fake / "experiment_planning").mkdir()
    monkeypatch.setattr(register, "nnunetv2_folder", lambda: str(fake))
    written = register.install()
    assert sorted(os.path.relpath(p, fake) for p in written) == [
        os.path.join("experiment_planning", "scarnet_plugin_planners.py"),
        os.path.join("training", "nnUNetTrainer", "scarnet_plugin_trainers.py")]
    assert register.remove() == written and not any(os.path.exists(p) for p in written)
    # the copies come from the wheel's package data, or in an editable checkout from discovery_shims/
    sources = [src for src, _ in register.shim_locations()]
    assert all(os.path.isfile(src) for src in sources)
    if os.path.isdir(os.path.join(os.path.dirname(register.__file__), "shims")):  # installed from the wheel
        assert importlib.util.find_spec("nnunetv2_scarnet.discovery.shims.trainers_shim") is not None
