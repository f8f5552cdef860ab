"""Centerline-chord transmurality on synthetic rings, Kim et al. categories, AHA segment 17 and summary counts."""
import numpy as np
import pytest

from nnunetv2_scarnet.quantification.aha import aha_summary, aha_table, segment_of, stack_levels
from nnunetv2_scarnet.quantification.transmurality import slice_chords, summarize, transmurality_category


def ring(r_in_mm, wall_mm, fraction, subendocardial, spacing=(1.0, 1.0), center_shift=(0.3, -0.2)):
    n = int(2 * (r_in_mm + wall_mm + 6) / spacing[0]) + 4
    c = (n / 2 + center_shift[0], n / 2 + center_shift[1])
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    r = np.hypot((ii - c[0]) * spacing[0], (jj - c[1]) * spacing[1])
    myo, pool = (r >= r_in_mm) & (r < r_in_mm + wall_mm), r < r_in_mm
    depth = (r - r_in_mm) / wall_mm
    scar = myo & ((depth < fraction) if subendocardial else (depth >= 1 - fraction))
    return myo, scar, pool, c


@pytest.mark.parametrize("r_in_mm", [6.0, 12.0, 25.0, 40.0])
@pytest.mark.parametrize("spacing", [1.0, 1.5])
def test_ring_transmurality_is_the_thickness_fraction_whatever_the_radius(r_in_mm, spacing):
    for fraction in (0.25, 0.5, 0.75):
        for subendocardial in (True, False):
            myo, scar, pool, c = ring(r_in_mm, 9.0, fraction, subendocardial, (spacing, spacing))
            chords = slice_chords(myo, scar, pool, (spacing, spacing), c, n_chords=100)
            assert len(chords) == 100
            stats = summarize(chords)
            assert stats["transmurality_mean"] == pytest.approx(fraction, abs=0.05), (fraction, subendocardial)
            assert np.mean([ch["length_mm"] for ch in chords]) == pytest.approx(9.0, abs=1.0)


def test_half_thickness_subendocardial_scar_is_not_read_at_the_viability_cutoff():
    # the former wedge-area share read this 0.40-0.48: the chord method reads the thickness fraction
    myo, scar, pool, c = ring(20.0, 10.0, 0.5, True, (1.4, 1.4))
    mean = summarize(slice_chords(myo, scar, pool, (1.4, 1.4), c))["transmurality_mean"]
    assert 0.47 <= mean <= 0.53
    assert transmurality_category(mean) in ("26-50%", "51-75%")


def test_open_ring_gives_no_chords():
    myo, scar, pool, c = ring(12.0, 8.0, 0.5, True)
    ii, jj = np.meshgrid(np.arange(myo.shape[0]), np.arange(myo.shape[1]), indexing="ij")
    cut = np.abs(jj - c[1]) < 2
    assert slice_chords(myo & ~(cut & (ii > c[0])), scar, np.zeros_like(pool), (1.0, 1.0), c) == []


def test_kim_categories():
    assert [transmurality_category(x) for x in (0.0, 0.004, 0.01, 0.25, 0.26, 0.5, 0.51, 0.75, 0.76, 1.0)] == [
        "0%", "1-25%", "1-25%", "1-25%", "26-50%", "26-50%", "51-75%", "51-75%", "76-100%", "76-100%"]
    assert transmurality_category(None) is None


def test_segments_17_levels_and_counts():
    n_slices = 7
    shape = (80, 80, n_slices)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot(ii - 40.2, jj - 39.7)
    theta = np.degrees(np.arctan2(jj - 39.7, ii - 40.2))
    myo, pool, scar = (np.zeros(shape, bool) for _ in range(3))
    for k in range(1, n_slices):                  # slice 0: the apical cap, myocardium without cavity
        cavity = 8 + 2 * k                        # apex first: the cavity grows with k
        pool[..., k] = r < cavity
        myo[..., k] = (r >= cavity) & (r < cavity + 8)
        # transmural scar at the inferior side (theta 90 with septum 180, direction -1): 40 deg wide
        scar[..., k] = myo[..., k] & (np.abs(theta - 90) < 20)
    myo[..., 0] = r < 7
    levels = stack_levels(myo, pool, apex_first=True)
    assert levels[0] == "apex" and levels[6] == "basal" and levels[1] == "apical"
    rows = {s["segment"]: s for s in aha_table(myo, scar, pool, (1.5, 1.5, 10.0), 180.0, -1, True)}
    assert rows[17]["myocardium_px"] == int(myo[..., 0].sum()) and rows[17]["status"] == "ok"
    assert rows[17]["transmurality_mean"] is None
    assert {n for n, s in rows.items() if s["scar_px"]} == {4, 10, 15}
    assert rows[4]["transmurality_max"] == pytest.approx(1.0, abs=0.02)
    summary = aha_summary(list(rows.values()))
    assert summary["n_segments_with_scar"] == 3
    # transmural scar over 40 of a segment's 60 degrees: chord mean ~0.67 (basal, mid); 40 of 90 apical: ~0.44
    assert rows[10]["transmurality_mean"] == pytest.approx(40 / 60, abs=0.07)
    assert rows[15]["transmurality_mean"] == pytest.approx(40 / 90, abs=0.07)
    assert summary["segments_transmurality_ge_50"] == [4, 10] and summary["territories_transmurality_ge_50"] == ["RCA"]
    assert rows[10]["transmurality_category"] == "51-75%" and rows[15]["transmurality_category"] == "26-50%"
    no_cap = {s["segment"]: s for s in aha_table(myo[..., 1:], scar[..., 1:], pool[..., 1:], (1.5, 1.5, 10.0),
                                                   180.0, -1, True)}
    assert no_cap[17]["status"] == "not_imaged" and no_cap[17]["scar_extent_pct"] is None


def test_segment_numbering_in_the_standard_display():
    # septum 180 (viewer's left), direction -1: anterior up (-90), inferior down (90), lateral right (0)
    angles = np.array([-90.0, -150.0, 150.0, 90.0, 30.0, -30.0])
    assert segment_of(angles, "basal", 180.0, -1).tolist() == [1, 2, 3, 4, 5, 6]
    assert segment_of(angles, "mid", 180.0, -1).tolist() == [7, 8, 9, 10, 11, 12]
    assert segment_of(np.array([-90.0, 180.0, 90.0, 0.0]), "apical", 180.0, -1).tolist() == [13, 14, 15, 16]
    assert segment_of(np.array([-90.0, 180.0, 90.0]), "apical", 180.0, 1).tolist() == [15, 14, 13]


def eccentric_ring_stack(n_slices=6, septum_deg=180.0, direction=-1):
    """Ring whose cavity sits off the epicardium's centre (wall 6 mm on one side, 16 mm on the other), so chords
    perpendicular to the centerline lean across segment borders; transmural scar drawn in exactly the angular range
    of mid/basal segment 2|8 (anteroseptal: 60 deg between the septum and 60 deg anterior of it, anterior at
    septum - 90 * direction), measured around the blood-pool centre."""
    shape = (90, 90, n_slices)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    c_pool, c_epi = (45.2, 44.7), (48.2, 49.7)
    r_pool = np.hypot(ii - c_pool[0], jj - c_pool[1])
    r_epi = np.hypot(ii - c_epi[0], jj - c_epi[1])
    theta = np.degrees(np.arctan2(jj - c_pool[1], ii - c_pool[0]))
    anteroseptal_lo = septum_deg - direction * 60.0  # border 1|2, then 2|3 at the septum
    relative = np.mod(direction * (theta - anteroseptal_lo), 360.0)
    in_segment = relative < 60.0
    myo, pool, scar = (np.zeros(shape, bool) for _ in range(3))
    for k in range(n_slices):
        pool[..., k] = r_pool < 14
        myo[..., k] = (r_pool >= 14) & (r_epi < 25)
        scar[..., k] = myo[..., k] & in_segment
    return myo, scar, pool


def test_scar_confined_to_one_segment_leaves_its_neighbours_scar_free():
    myo, scar, pool = eccentric_ring_stack()
    rows = {r["segment"]: r for r in aha_table(myo, scar, pool, (1.0, 1.0, 8.0), 180.0, -1, True)}
    for segment in (2, 8):  # drawn fully transmural in these
        assert rows[segment]["transmurality_mean"] == pytest.approx(1.0, abs=0.05)
    for segment in (1, 3, 7, 9, 4, 5, 6, 10, 11, 12):  # no scar drawn: no chord may read any
        assert rows[segment]["scar_px"] == 0
        assert rows[segment]["transmurality_max"] == 0.0, (segment, rows[segment]["transmurality_max"])
        assert rows[segment]["transmurality_category"] == "0%"


def test_the_50_percent_boundary_category_and_count_agree():
    """Kim et al. 2000: categories 0, 1-25, 26-50, 51-75, 76-100%; a segment at exactly 50% is in 26-50% and is not
    counted among the segments above 50%; one just above is in 51-75% and counted."""
    def row(segment, values):
        return {"segment": segment, "territory": "LAD", "scar_px": 1, **summarize(
            [{"transmurality": v} for v in values])}
    rows = [row(1, [0.5, 0.5]), row(2, [0.4, 0.6]), row(7, [0.52, 0.52]), row(8, [0.0, 0.0])]
    summary = aha_summary(rows)
    assert rows[0]["transmurality_category"] == rows[1]["transmurality_category"] == "26-50%"
    assert rows[2]["transmurality_category"] == "51-75%"
    assert summary["segments_transmurality_ge_50"] == [7]
    assert summary["n_segments_transmurality_ge_50"] == 1
    above = sum(n for c, n in summary["segments_per_category"].items() if c in ("51-75%", "76-100%"))
    assert above == summary["n_segments_transmurality_ge_50"]


def test_transmurality_agreement_counts_segments_above_50_percent_as_the_kim_categories_do():
    """Kim et al. (NEJM 2000): 50% belongs to 26-50% and is not counted as > 50% transmural; 51% is."""
    from nnunetv2_scarnet.quantification.transmurality import is_above_50
    assert [is_above_50(f) for f in (None, 0.0, 0.25, 0.5, 0.504, 0.51, 0.75, 1.0)] == \
        [False, False, False, False, False, True, True, True]


def test_transmurality_agreement_definition_states_the_above_50_rule_it_applies():
    """The definition written into evaluation.json must describe the count the code makes (> 50%, Kim categories),
    not the former 'mean transmurality >= 0.5' (a segment at 0.5 is not counted)."""
    from nnunetv2_scarnet.evaluation.transmurality_agreement import DEFINITION
    from nnunetv2_scarnet.quantification.transmurality import is_above_50
    assert not is_above_50(0.5)
    assert ">= 50%" not in DEFINITION and ">= 0.5" not in DEFINITION
    assert "> 50%" in DEFINITION and "51-75% or 76-100%" in DEFINITION
