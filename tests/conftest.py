import os
import subprocess
import sys

import pytest

# Under pytest-xdist (the suite's default: two workers, see pyproject.toml), every worker runs its tests and their
# nnU-Net subprocesses on its share of the cores (torch would otherwise start one thread per core in every worker).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# Every process the suite starts (xdist workers, nnU-Net console scripts) keeps freed memory for reuse, as
# scarnet-demo's training does (CPU_TRAINING_MALLOC_ENV: fewer page faults, the same results).
from nnunetv2_scarnet.demo import CPU_TRAINING_MALLOC_ENV  # noqa: E402

for _variable, _value in CPU_TRAINING_MALLOC_ENV.items():
    os.environ.setdefault(_variable, _value)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMIDEC_DEV = os.environ.get("SCARNET_EMIDEC_DEV", os.path.join(REPO, "..", "shared", "data", "emidec_dev"))
#: six real patients (2 normal, 4 infarct) for the end-to-end tests
SMOKE_CASES = ["Case_N012", "Case_N014", "Case_P001", "Case_P002", "Case_P004", "Case_P007"]


@pytest.fixture(scope="session", autouse=True)
def empty_weights_cache(tmp_path_factory):
    """Tests never see encoder weights a developer fetched into the real user cache (tests that need a cache set
    SCARNET_WEIGHTS_DIR themselves); subprocesses inherit the empty one."""
    previous = os.environ.get("SCARNET_WEIGHTS_DIR")
    os.environ["SCARNET_WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("empty_weights_cache"))
    yield
    if previous is None:
        os.environ.pop("SCARNET_WEIGHTS_DIR", None)
    else:
        os.environ["SCARNET_WEIGHTS_DIR"] = previous


@pytest.fixture(scope="session")
def emidec_cases():
    """Folder of the real EMIDEC development cases (read-only)."""
    folder = os.path.join(EMIDEC_DEV, "cases")
    if not os.path.isdir(folder):
        pytest.fail(f"real LGE data not found at {folder}; set SCARNET_EMIDEC_DEV to the emidec_dev folder")
    return folder


def nnunet_env(root, **extra):
    """Environment for nnU-Net console scripts with its three folders under `root`, tuned for a 2-core CPU."""
    env = dict(os.environ)
    env.pop("nnUNet_extTrainer", None)
    env.update(nnUNet_raw=os.path.join(root, "raw"), nnUNet_preprocessed=os.path.join(root, "preprocessed"),
               nnUNet_results=os.path.join(root, "results"), nnUNet_def_n_proc="1", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def run_cli(cmd, env, timeout=900):
    """Run a console script; fail the test with its output when it exits non-zero."""
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}")
    return result.stdout


def python_cli(module, *args):
    return [sys.executable, "-m", module, *args]


@pytest.fixture(scope="session")
def tiny_model(emidec_cases, tmp_path_factory):
    """Tiny ScarNet trained by the stock commands on four real patients (Dataset513, 2 folds; fold 0; its
    mirrorings make a four-member ensemble). Shared by the report and noise tests; returns the model folder, whose
    dataset's raw folder is `raw_dataset_of(model)`."""
    from nnunetv2_scarnet.data.emidec import convert_emidec

    root = str(tmp_path_factory.mktemp("report_model"))
    env = nnunet_env(root)
    convert_emidec(emidec_cases, env["nnUNet_raw"], 513, "ReportSmoke",
                   cases=["Case_N012", "Case_P001", "Case_P002", "Case_P007"], num_folds=2)
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", "513", "-c", "2d", "-np", "1"], env)
    run_cli(["nnUNetv2_train", "513", "2d", "0", "-tr", "ScarNetTrainerTiny_smoke", "-device", "cpu"],
            dict(env, nnUNet_n_proc_DA="0"))
    return os.path.join(env["nnUNet_results"], "Dataset513_ReportSmoke", "ScarNetTrainerTiny_smoke__nnUNetPlans__2d")


def raw_dataset_of(model_folder):
    """The nnU-Net raw dataset folder a `tiny_model`-style model folder was trained from."""
    dataset = os.path.basename(os.path.dirname(model_folder))
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(model_folder))), "raw", dataset)


@pytest.fixture
def axes_titles(monkeypatch):
    """The texts passed to matplotlib's `Axes.set_title` during the test, in order (the titles still drawn)."""
    import matplotlib.axes

    titles = []
    original = matplotlib.axes.Axes.set_title

    def spy(self, text, *args, **kwargs):
        titles.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy)
    return titles


#: the test modules that take longest (measured on the 2-core dev machine): their work units are scheduled first, so
#: that no worker is left with a long unit at the end while the other idles
SLOW_FIRST = ["test_end_to_end", "test_report", "test_benchmarks", "test_demo", "test_baselines_and_noise"]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Work units for pytest-xdist's `--dist loadgroup`: a test module is one unit (its module-scoped fixtures are
    built once), and the modules that use the session's `tiny_model` form one unit together (it is trained once).
    Units holding a SLOW_FIRST module come first (with `--no-loadscope-reorder`, xdist keeps this order)."""
    shared = {item.module.__name__ for item in items if "tiny_model" in getattr(item, "fixturenames", ())}

    def unit(item):
        return "tiny_model" if item.module.__name__ in shared else item.module.__name__

    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(unit(item)))
    first = {}
    for module in SLOW_FIRST:
        for item in items:
            if item.module.__name__ == module:
                first.setdefault(unit(item), len(first))
    items.sort(key=lambda item: first.get(unit(item), len(first)))  # stable: the order within a unit is kept
