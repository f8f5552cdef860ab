"""CPU check of the learning-rate warm-up: ScarNetTrainerTiny for 20 epochs x 2 iterations, with and without it,
from the same seed, on an nnU-Net preprocessed dataset (`Dataset500_EMIDECdev`, stock plans, fold 0). Writes the
per-epoch learning rates of both parameter groups, the first loss and the set-up of each run to a JSON file.

    nnUNet_preprocessed=... nnUNet_n_proc_DA=0 nnUNet_def_n_proc=1 python benchmarks/warmup_check.py out.json
"""
import json, sys, time
import numpy as np, torch
from nnunetv2_scarnet.benchmark.speed import make_trainer
from nnunetv2_scarnet.trainers import ScarNetTrainerTiny

rows = {}
for warm in (0, 10):
    cls = type("ScarNetTrainerTiny", (ScarNetTrainerTiny,), {"warmup_epochs": warm, "epochs": 20,
               "iterations_per_epoch": 2, "val_iterations_per_epoch": 1})
    torch.manual_seed(0); np.random.seed(0)
    t = make_trainer(cls, "Dataset500_EMIDECdev", "nnUNetPlans", 0, "cpu")
    t.initialize()
    t.on_train_start()
    lrs, times, first_loss = [], [], None
    for epoch in range(t.num_epochs):
        t.on_epoch_start(); t.on_train_epoch_start()
        lrs.append([g["lr"] for g in t.optimizer.param_groups])
        start = time.time()
        outs = []
        for _ in range(t.num_iterations_per_epoch):
            outs.append(t.train_step(next(t.dataloader_train)))
        times.append(time.time() - start)
        if first_loss is None: first_loss = float(outs[0]["loss"])
        t.on_train_epoch_end(outs)
        t.current_epoch += 1
    rows[warm] = {"lrs": lrs, "median_epoch_s": float(np.median(times)), "first_loss": first_loss,
                  "batch_size": t.batch_size, "patch": list(t.configuration_manager.patch_size),
                  "n_params": sum(p.numel() for p in t.network.parameters())}
    print(warm, json.dumps({k: v for k, v in rows[warm].items() if k != "lrs"}), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
