"""Activation memory of a training step: the bytes autograd keeps from the forward pass for the backward pass.

Counted exactly (each saved tensor's storage once, parameters excluded) with
`torch.autograd.graph.saved_tensors_hooks` on one image, independent of the machine's load and of the allocator;
it grows linearly with the batch. With the parameters, gradients and optimiser state it is what a training step's
peak memory is made of, and the part that frozen encoder stages (no autograd) and activation checkpointing
(recomputed instead of kept) reduce.
"""
from typing import Sequence

import torch
from torch import nn


def saved_activation_bytes(network: nn.Module, patch_size: Sequence[int], in_channels: int) -> int:
    """Bytes saved for the backward pass by one training forward of `network` on one image (train mode)."""
    parameters = {p.untyped_storage().data_ptr() for p in network.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = network.training
    x = torch.randn(1, int(in_channels), *[int(s) for s in patch_size], device=next(network.parameters()).device)
    network.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = network(x)
        del out
    finally:
        network.train(was_training)
    return int(sum(storages.values()))


def trainer_network(trainer_name: str, plans_json: str, configuration: str = "2d") -> nn.Module:
    """The network `trainer_name` trains on these plans' stage layout, with its training-only encoder settings
    (frozen stages, checkpointing); random weights (what autograd keeps does not depend on them). Stock trainers get
    the plans' own network."""
    import json

    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunetv2_scarnet import trainers
    from nnunetv2_scarnet.network.builder import SCARNET_CLASS_NAME, build_scarnet, scarnet_architecture

    with open(plans_json) as f:
        planned = json.load(f)["configurations"][configuration]["architecture"]
    if not trainer_name.startswith("ScarNetTrainer") or \
            getattr(trainers, trainer_name).build_network_architecture is \
            trainers.ScarNetTrainer_stockNetwork.build_network_architecture:
        return get_network_from_plans(planned["network_class_name"], planned["arch_kwargs"],
                                      planned["_kw_requires_import"], 1, 4, deep_supervision=True)
    cls = getattr(trainers, trainer_name)
    settings = dict(cls.network_settings(), encoder_input_window=[0.0, 1.0])  # the window changes no activation
    architecture = scarnet_architecture(planned["arch_kwargs"], settings, planned["network_class_name"])
    network = build_scarnet(SCARNET_CLASS_NAME, architecture["arch_kwargs"], 1, 4, deep_supervision=True)
    network.configure_encoder_training(cls.frozen_encoder_stages, cls.checkpoint_encoder)
    return network


def main(argv=None) -> int:
    """Activation memory per image of each trainer's network against stock nnU-Net's on the same plans."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--plans", required=True, help="an nnU-Net plans file (nnUNetPlans.json)")
    parser.add_argument("--patch-size", type=int, nargs=2, required=True)
    parser.add_argument("--trainers", nargs="+", required=True)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for name in ["nnUNetTrainer"] + [t for t in args.trainers if t != "nnUNetTrainer"]:
        saved = saved_activation_bytes(trainer_network(name, args.plans), args.patch_size, 1)
        rows.append({"trainer": name, "gib_per_image": saved / 2 ** 30, "vs_stock": saved / (
            rows[0]["gib_per_image"] * 2 ** 30) if rows else 1.0})
        print(f"{name}: {saved / 2 ** 30:.3f} GiB per image, {rows[-1]['vs_stock']:.2f}x stock's", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"plans": args.plans, "patch_size": args.patch_size, "precision": "float32",
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
