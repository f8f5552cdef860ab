"""Scar quantification: volumes, masses, scar % of LV myocardium, MVO, orientation, AHA segments, transmurality,
report pictures."""
from nnunetv2_scarnet.quantification.label_scheme import LabelScheme, read_label_stack, read_stack
from nnunetv2_scarnet.quantification.orientation import Orientation, find_orientation
from nnunetv2_scarnet.quantification.report import quantify_case, quantify_folder
from nnunetv2_scarnet.quantification.sectors import SectorGeometry

__all__ = ["LabelScheme", "Orientation", "SectorGeometry", "find_orientation", "quantify_case", "quantify_folder",
           "read_label_stack", "read_stack"]
