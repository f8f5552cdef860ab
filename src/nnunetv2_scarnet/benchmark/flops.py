"""Arithmetic of a network: FLOPs of one inference forward and of one training step (forward + backward), per
image, counted by `torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2; matrix products,
convolutions and attention; element-wise operations are not counted).

PyTorch's formula for the backward of a convolution (`aten.convolution_backward`, torch 2.14) ignores the groups
when it counts the weight gradient: a depthwise convolution on C channels is counted C times too high (tested).
TinyViT's MBConv blocks and local convolutions are depthwise, so the stock counter reports the fine-tuned
LiteMedSAM encoder's backward several times too high (487.8 instead of 287 GFLOPs per training image for the Lite
hybrid). `count_flops` uses the exact count: each gradient asked for (input, weight) costs as many multiply-adds as
the forward convolution.
"""
from typing import Callable, Dict, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of `aten.convolution_backward`: the forward convolution's count once per gradient computed (the
    weight shape holds in_channels / groups, so grouped and depthwise convolutions are counted exactly)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=bool(transposed))
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of everything `run()` computes, forward and backward alike."""
    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        run()
    return int(counter.get_total_flops())


def _outputs(out) -> Sequence[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def network_flops(network: nn.Module, patch_size: Sequence[int], in_channels: int) -> Dict[str, float]:
    """GFLOPs per image of `network` on one patch: `forward` (eval mode, no autograd: one sliding-window tile) and
    `train_step` (train mode, forward and backward of the sum of the outputs; the loss itself is not counted).
    Parameters that do not require gradients get none, frozen parts that run without autograd have no backward.
    The network's mode and gradients are restored."""
    was_training = network.training
    x = torch.randn(1, int(in_channels), *[int(s) for s in patch_size],
                    device=next(network.parameters()).device)
    try:
        network.eval()
        with torch.no_grad():
            forward = count_flops(lambda: network(x))
        network.train()

        def step():
            sum(o.float().mean() for o in _outputs(network(x))).backward()

        train_step = count_flops(step)
    finally:
        network.zero_grad(set_to_none=True)
        network.train(was_training)
    return {"forward_gflops": forward / 1e9, "train_step_gflops": train_step / 1e9}
