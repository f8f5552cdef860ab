"""Experiment planners. `PLANNER_NAMES` lists every class nnU-Net can find by name."""
from nnunetv2_scarnet.planners.scarnet_planner import (
    ScarNetPlanner, ScarNetPlannerHybrid, ScarNetPlannerLite, ScarNetPlannerLiteHybrid)

PLANNER_NAMES = ("ScarNetPlanner", "ScarNetPlannerLite", "ScarNetPlannerHybrid", "ScarNetPlannerLiteHybrid")

__all__ = ["PLANNER_NAMES", *PLANNER_NAMES]
