"""Speed benchmark (training and inference) of ScarNet trainers against stock nnU-Net in one run."""
