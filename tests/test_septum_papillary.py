"""The papillary-muscle septum cue and the 'ok' rule without geometry (issue 23 section 6), on hand-built LGE-like
stacks: a bright LV blood pool, a dark myocardial ring, a bright RV crescent placed at a chosen angle and two dark
papillary muscles placed at chosen angles inside the pool (labelled as pool, as EMIDEC labels them). The expected
angles are the placements, not the code's output."""
import numpy as np
import pytest

from nnunetv2_scarnet.quantification.geometry import wrap_deg
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme
from nnunetv2_scarnet.quantification.orientation import find_orientation
from nnunetv2_scarnet.quantification.septum_papillary import septum_from_papillary

SPACING = (1.6, 1.6, 10.0)
#: EMIDEC's affine: spacing only, diag(-sx, -sy, sz); with the apex in slice 0 it assumes anterior up (direction -1)
AFFINE = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
BACKGROUND, MYOCARDIUM, BLOOD = 2000.0, 2100.0, 2700.0


def stack(rv_deg, papillary_deg=(), n_slices=7, shape=(96, 96), seed=0):
    """(image, label): the LV grows from slice 0 (apex) to the base; an RV crescent of +-60 deg around `rv_deg`,
    12 mm deep, touching the epicardium on every slice; a 3.5-mm-radius dark disc at 60% of the cavity radius for
    each angle of `papillary_deg`."""
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    ci, cj = shape[0] / 2 + 0.3, shape[1] / 2 - 0.2
    di, dj = (ii - ci) * SPACING[0], (jj - cj) * SPACING[1]
    radius, theta = np.hypot(di, dj), np.degrees(np.arctan2(dj, di))
    image = np.full(shape + (n_slices,), BACKGROUND)
    label = np.zeros(shape + (n_slices,), np.uint8)
    for k in range(n_slices):
        cavity = 12.0 + 2.0 * k
        epi = cavity + 8.0
        img, lab = image[..., k], label[..., k]
        rv = (radius > epi) & (radius <= epi + 12.0) & (np.abs((theta - rv_deg + 180) % 360 - 180) <= 60)
        img[rv] = BLOOD
        lab[radius <= cavity], img[radius <= cavity] = 1, BLOOD
        lab[(radius > cavity) & (radius <= epi)], img[(radius > cavity) & (radius <= epi)] = 2, MYOCARDIUM
        for a in papillary_deg:
            t = np.radians(a)
            disc = np.hypot(di - 0.6 * cavity * np.cos(t), dj - 0.6 * cavity * np.sin(t)) <= 3.5
            img[disc & (radius <= cavity)] = MYOCARDIUM
    image += rng.normal(0.0, 30.0, image.shape)
    return image, label


def orient(image, label):
    myo, scar, _, pool = LabelScheme().masks(label)
    return find_orientation(myo, pool, scar, AFFINE, SPACING, image)


@pytest.mark.parametrize("rv_deg", [180.0, -110.0, 120.0])
def test_septum_lies_opposite_the_placed_papillary_muscles(rv_deg):
    # anterolateral and inferolateral muscles: 40 deg either side of the direction opposite the septum
    lateral = rv_deg + 180.0
    image, label = stack(rv_deg, (lateral - 40.0, lateral + 40.0))
    myo, scar, _, pool = LabelScheme().masks(label)
    septum, used = septum_from_papillary(image, myo, pool, scar, SPACING[:2])
    assert used == 7 and abs(wrap_deg(septum - rv_deg)) <= 10.0
    # an uniform pool (no dark structure) gives no answer rather than a direction from noise
    image, label = stack(rv_deg, ())
    myo, scar, _, pool = LabelScheme().masks(label)
    assert septum_from_papillary(image, myo, pool, scar, SPACING[:2]) == (None, 0)


def test_septum_off_the_display_is_ok_when_the_papillary_muscles_agree():
    """RV placed 70 deg from the viewer's left (upper left, as in EMIDEC's Case_N012): outside the display window,
    but the papillary muscles opposite it confirm it (the old 60-degree window said 'needs review')."""
    image, label = stack(-110.0, (30.0, 110.0))
    o = orient(image, label)
    assert abs(wrap_deg(o.septum_deg + 110.0)) <= 10.0 and abs(wrap_deg(o.papillary_septum_deg + 110.0)) <= 10.0
    assert o.direction == -1 and o.state == "ok", o.review_reasons


def test_septum_off_the_display_needs_review_when_the_papillary_muscles_disagree():
    image, label = stack(-110.0, (-30.0, 50.0))  # muscles centred on 10 deg: they put the septum at -170
    o = orient(image, label)
    assert abs(wrap_deg(o.septum_deg + 110.0)) <= 10.0 and abs(wrap_deg(o.papillary_septum_deg + 170.0)) <= 10.0
    assert o.state == "needs review"
    assert any("septum opposite the papillary muscles" in r for r in o.review_reasons), o.review_reasons


def test_septum_45_deg_off_the_display_without_papillary_muscles_needs_review():
    """No second opinion: the display window is half a segment again (30 deg; the 60 of 2026-12-05 let it pass)."""
    image, label = stack(135.0, ())
    o = orient(image, label)
    assert abs(wrap_deg(o.septum_deg - 135.0)) <= 10.0 and o.papillary_septum_deg is None
    assert o.state == "needs review"
    assert any("no papillary muscles measurable" in r for r in o.review_reasons), o.review_reasons
    image, label = stack(170.0, ())  # within 30 deg of the viewer's left: the display agrees
    assert orient(image, label).state == "ok"
