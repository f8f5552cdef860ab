"""The z-score window that maps nnU-Net's normalised images to the encoder's [0, 1] input, measured on the data.

MedSAM clips each image to its 0.5-99.5 intensity percentiles and rescales it to [0, 1]. A sliding-window tile
cannot see its whole image, so ScarNet uses one fixed window in nnU-Net's z-score units instead, measured once on
the preprocessed training images: the median over cases of each case's 0.5th and 99.5th percentile. A constant
fill outside the acquired field of view (voxels equal to the image's minimum, when they are at least 1% of it) is
not anatomy and is left out of the percentiles; it still maps to 0. On the EMIDEC development set (2-22% zero-filled
borders) the window is [-2.78, 2.11] SD; with the fill counted its lower end would sit on the fill (about -3.9).
"""
import os
from typing import List

import numpy as np

#: the per-case percentiles, as MedSAM clips
PERCENTILES = (0.5, 99.5)
#: voxels at the image minimum that make up at least this share of it are fill, not anatomy
FILL_FRACTION = 0.01


def dataset_input_window(preprocessed_folder: str, max_cases: int = 40) -> List[float]:
    """[low, high]: medians over (up to `max_cases`, evenly spread) cases of the per-case 0.5 / 99.5 percentiles
    of the preprocessed (z-scored) images, rounded to 0.01 SD. Deterministic for a given dataset."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    if not os.path.isdir(preprocessed_folder):
        raise FileNotFoundError(f"{preprocessed_folder}: no preprocessed data to measure ScarNet's encoder input "
                                f"window; run nnUNetv2_plan_and_preprocess first")
    dataset = infer_dataset_class(preprocessed_folder)(preprocessed_folder)
    identifiers = sorted(dataset.identifiers)
    if not identifiers:
        raise FileNotFoundError(f"{preprocessed_folder}: holds no preprocessed cases")
    picks = [identifiers[i] for i in np.linspace(0, len(identifiers) - 1, min(max_cases, len(identifiers)))
             .round().astype(int)]
    lows, highs = [], []
    for case in dict.fromkeys(picks):
        data = np.asarray(dataset.load_case(case)[0][:], dtype=np.float32).ravel()
        fill = data == data.min()
        if FILL_FRACTION <= fill.mean() < 1:
            data = data[~fill]
        low, high = np.percentile(data, PERCENTILES)
        lows.append(low)
        highs.append(high)
    low, high = round(float(np.median(lows)), 2), round(float(np.median(highs)), 2)
    if not high > low:
        raise ValueError(f"{preprocessed_folder}: the images' 0.5-99.5 percentile window is empty ({low}, {high})")
    return [low, high]
