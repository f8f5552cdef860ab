"""Dataset conversion (EMIDEC-style -> nnU-Net raw) and the LGE phantom generator of the demo."""
