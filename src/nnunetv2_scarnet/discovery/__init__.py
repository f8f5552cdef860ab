"""How stock nnU-Net commands find the ScarNet trainers and planner (see README, "How discovery works")."""
