import os
import subprocess
import sys

import pytest

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
