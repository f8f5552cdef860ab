"""nnunetv2-scarnet: ScarNet (MedSAM encoder + attention U-Net decoder) as an nnU-Net v2 plugin.

Subpackages: `network` (the model), `trainers` (nnU-Net trainer family), `planners` (ScarNetPlanner),
`data` (dataset conversion, phantoms), `discovery` (how nnU-Net finds our classes).
"""
__version__ = "0.1.0"
