"""Experiment planners. `PLANNER_NAMES` lists every class nnU-Net can find by name."""
from nnunetv2_scarnet.planners.scarnet_planner import ScarNetPlanner

PLANNER_NAMES = ("ScarNetPlanner",)

__all__ = ["PLANNER_NAMES", "ScarNetPlanner"]
