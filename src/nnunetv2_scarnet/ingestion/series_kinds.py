"""Which images of one series form the stack: one SOP instance per file, and one kind of image.

- Two files with the same SOPInstanceUID are refused, naming them: a DICOM SEG would reference one instance for
  several slices.
- Kind = Image Type (Frame Type for Enhanced MR). Several kinds in one series (magnitude and PSIR
  reconstructions) are refused with, for each kind, the `--image-type` value that selects it.
- Inversion time: scanners lengthen the TI from slice to slice to keep the myocardium nulled while the contrast
  washes out (e.g. 280-340 ms over a stack), so TIs that differ between slice positions by up to
  `TI_DRIFT_FRACTION` (25 %) of their median are one stack. Several TIs at the same slice position (two stacks at
  two TIs, a TI scout) are a mix, refused with the `--inversion-time` values that select each; TIs spread wider
  over the positions (a TI scout over several slices) are no LGE stack at all, refused pointing to
  `--series-uid`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_scarnet.ingestion.dicom_slices import DicomSeriesError, SliceRef

#: Image Type values shared by every kind of reconstruction: never suggested as the distinguishing value
GENERIC_IMAGE_TYPES = {"ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "NONE", "OTHER"}
#: largest spread (max - min) of the inversion times of one stack, as a fraction of their median
TI_DRIFT_FRACTION = 0.25


def ti_spread_is_drift(times: Sequence[float]) -> bool:
    """Whether inversion times at distinct slice positions are one stack's drift (see module doc)."""
    return len(times) == 0 or max(times) - min(times) <= TI_DRIFT_FRACTION * float(np.median(times))


def image_kinds(slices: Sequence[SliceRef]) -> Dict[Tuple[str, Optional[float]], List[SliceRef]]:
    """The slices grouped by (Image Type, inversion time), for listings."""
    kinds: Dict[Tuple[str, Optional[float]], List[SliceRef]] = {}
    for s in slices:
        kinds.setdefault((s.image_type, s.inversion_time), []).append(s)
    return kinds


def _ti_text(ti: Optional[float]) -> str:
    return "none" if ti is None else f"{ti:g} ms"


def _listing(slices: Sequence[SliceRef]) -> str:
    return "; ".join(f"ImageType {k[0] or '(none)'}, TI {_ti_text(k[1])} ({len(v)} images, e.g. {v[0].name})"
                     for k, v in image_kinds(slices).items())


def check_unique_instances(slices: Sequence[SliceRef], series_uid: str) -> None:
    """Refuse two files that carry one SOPInstanceUID (the frames of one multi-frame file share theirs)."""
    files: Dict[str, List[str]] = {}
    for s in slices:
        if s.sop_uid and s.path not in files.setdefault(s.sop_uid, []):
            files[s.sop_uid].append(s.path)
    shared = {uid: paths for uid, paths in files.items() if len(paths) > 1}
    if shared:
        uid, paths = next(iter(shared.items()))
        raise DicomSeriesError(f"series {series_uid}: {len(paths)} files share SOPInstanceUID {uid}: "
                               f"{', '.join(paths)}" + (f" (and {len(shared) - 1} more shared UIDs)"
                                                        if len(shared) > 1 else "") +
                               "; every image must be its own instance (a copied or badly anonymised export?)")


def _type_values(image_type: str) -> List[str]:
    return [v.strip().upper() for v in image_type.split("\\") if v.strip()]


def _image_type_choices(by_type: Dict[str, List[SliceRef]]) -> List[str]:
    """For each Image Type, the `--image-type` option that selects it alone (or a note that none does)."""
    choices = []
    for image_type, images in by_type.items():
        others = set().union(*(set(_type_values(t)) for t in by_type if t != image_type))
        unique = [v for v in _type_values(image_type) if v not in others]
        unique = [v for v in unique if v not in GENERIC_IMAGE_TYPES] or unique
        where = f"ImageType {image_type or '(none)'}, {len(images)} images, e.g. {images[0].name}"
        choices.append(f"--image-type {unique[0]} ({where})" if unique else
                       f"no --image-type value selects {where} alone")
    return choices


def _repeated_positions(slices: Sequence[SliceRef]) -> Dict[Tuple[float, ...], List[SliceRef]]:
    at: Dict[Tuple[float, ...], List[SliceRef]] = {}
    for s in slices:
        at.setdefault(tuple(round(v, 2) for v in s.position), []).append(s)
    return {p: v for p, v in at.items() if len(v) > 1}


def _positions(slices: Sequence[SliceRef]) -> set:
    return {tuple(round(v, 2) for v in s.position) for s in slices}


def _check_whole_stack(by_ti: List[SliceRef], candidates: List[SliceRef], series_uid: str, ti: float) -> None:
    """`--inversion-time` must pick whole stacks: in a series whose TI drifts over the slices it would keep a few
    slices only (a plausible-looking but partial stack)."""
    kept, every = _positions(by_ti), _positions(candidates)
    if by_ti and kept != every:
        times = [s.inversion_time for s in candidates if s.inversion_time is not None]
        raise DicomSeriesError(
            f"series {series_uid}: --inversion-time {ti:g} keeps {len(kept)} of its {len(every)} slice positions "
            f"(inversion times {min(times):g}-{max(times):g} ms drift over the slices, e.g. {by_ti[0].name}); "
            f"read this series without --inversion-time")


def select_kind(slices: List[SliceRef], series_uid: str, image_type: Optional[str] = None,
                inversion_time: Optional[float] = None) -> List[SliceRef]:
    """The slices of one kind (see module doc). `image_type`: values (backslash-separated, e.g. "M" or "PSIR")
    that must all be among a slice's Image Type values (case-insensitive); `inversion_time`: ms, within 0.5 ms,
    and it must select every slice position of the series (never part of a stack whose TI drifts)."""
    chosen = slices
    if image_type:
        wanted = set(_type_values(image_type))
        chosen = [s for s in chosen if wanted <= set(_type_values(s.image_type))]
    if inversion_time is not None:
        by_ti = [s for s in chosen if s.inversion_time is not None and abs(s.inversion_time - inversion_time) <= 0.5]
        _check_whole_stack(by_ti, chosen, series_uid, inversion_time)
        chosen = by_ti
    if not chosen:
        raise DicomSeriesError(f"series {series_uid}: no image matches image type {image_type!r} / inversion time "
                               f"{inversion_time}; it holds {_listing(slices)}")
    by_type: Dict[str, List[SliceRef]] = {}
    for s in chosen:
        by_type.setdefault(s.image_type, []).append(s)
    if len(by_type) > 1:
        raise DicomSeriesError(
            f"series {series_uid} mixes {len(by_type)} kinds of image (magnitude/phase-sensitive reconstructions): "
            f"{_listing(chosen)}; choose one with " + " or ".join(_image_type_choices(by_type)))
    repeated = _repeated_positions(chosen)
    mixed = [v for v in repeated.values() if len({s.inversion_time for s in v}) > 1]
    times = sorted({s.inversion_time for s in chosen if s.inversion_time is not None})
    options = " or ".join(f"--inversion-time {t:g}" for t in times)
    if mixed:
        example = ", ".join(f"{s.name} (TI {_ti_text(s.inversion_time)})" for s in mixed[0])
        raise DicomSeriesError(
            f"series {series_uid} holds images of several inversion times at the same slice positions (e.g. "
            f"{example}): {_listing(chosen)}; choose one with {options}")
    if not ti_spread_is_drift([s.inversion_time for s in chosen if s.inversion_time is not None]):
        raise DicomSeriesError(
            f"series {series_uid}: inversion times {times[0]:g}-{times[-1]:g} ms over the slice positions, spread "
            f"more than {TI_DRIFT_FRACTION:.0%} of their median: a TI scout, not one LGE stack ({_listing(chosen)}); "
            f"choose another series with --series-uid")
    return chosen
