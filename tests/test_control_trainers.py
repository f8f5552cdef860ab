"""Controls that isolate the pretrained encoder from the training recipe (issue 21 §3): ScarNet's recipe on stock
nnU-Net's network, and the hybrid with stock nnU-Net's recipe. Each differs from its reference in one thing only."""
import copy

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from init_gradients import STOCK_PLANS, deep_supervision_targets, phantom_batch, stock_network, trainer_loss
from test_trainer_resume_and_precision import DATASET_JSON, PLANS, TINY_HYBRID, build_parts, make_trainer

from nnunetv2_scarnet.network import ScarNet, scarnet_architecture
from nnunetv2_scarnet.trainers import variants
from nnunetv2_scarnet.trainers.scarnet_trainer import ScarNetTrainer


def test_stock_network_control_is_stocks_network_under_the_hybrids_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    control = make_trainer(variants.ScarNetTrainer_stockNetwork, epochs=100)
    assert control.configuration_manager.configuration["architecture"] == STOCK_PLANS  # the plans are left alone
    torch.manual_seed(0)
    build_parts(control)
    torch.manual_seed(0)
    stock = stock_network()  # nnU-Net's get_network_from_plans with its initialisation, as nnUNetTrainer builds it
    assert type(control.network) is type(stock)
    control_state, stock_state = control.network.state_dict(), stock.state_dict()
    assert list(control_state) == list(stock_state)
    assert all(torch.equal(control_state[k], stock_state[k]) for k in stock_state)

    hybrid = make_trainer(variants.ScarNetTrainerLiteHybrid, epochs=100, **TINY_HYBRID)
    build_parts(hybrid)
    for trainer in (control, hybrid):
        assert type(trainer.optimizer) is torch.optim.AdamW
        assert trainer.optimizer.defaults["weight_decay"] == ScarNetTrainer.adamw_weight_decay
    assert type(control.lr_scheduler) is type(hybrid.lr_scheduler)
    assert vars(control.lr_scheduler).get("warmup_steps") == vars(hybrid.lr_scheduler).get("warmup_steps")
    # one group holding every parameter, at the rate (warm-up included) of the hybrid's randomly initialised parts
    assert len(control.optimizer.param_groups) == 1
    assert {id(p) for p in control.optimizer.param_groups[0]["params"]} == {id(p) for p in control.network.parameters()}
    assert control.optimizer.param_groups[0]["lr"] == hybrid.optimizer.param_groups[0]["lr"]
    assert type(control.loss) is type(hybrid.loss) and type(control.loss.loss) is type(hybrid.loss.loss)
    assert torch.equal(torch.as_tensor(control.loss.weight_factors), torch.as_tensor(hybrid.loss.weight_factors))

    # ScarNet's train_step runs on it and moves every encoder convolution
    image, target = phantom_batch()
    _, scales = trainer_loss(6)
    before = [p.detach().clone() for p in control.network.encoder.parameters()]
    out = control.train_step({"data": image, "target": deep_supervision_targets(target, scales)})
    assert torch.isfinite(out["loss"])
    assert all(not torch.equal(a, b) for a, b in zip(before, control.network.encoder.parameters()) if a.dim() == 4)


def test_stock_network_control_refuses_scarnet_plans(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    plans = copy.deepcopy(PLANS)
    settings = dict(variants.ScarNetTrainerLiteHybrid.network_settings(), encoder_input_window=[-2.5, 2.5])
    plans["configurations"]["2d"]["architecture"] = scarnet_architecture(STOCK_PLANS["arch_kwargs"], settings)
    with pytest.raises(ValueError, match="stock plans"):
        variants.ScarNetTrainer_stockNetwork(plans, "2d", 0, DATASET_JSON, torch.device("cpu"))


def test_hybrid_with_stock_recipe_has_nnunets_optimizer_schedule_and_loss(tmp_path, monkeypatch):
    """Compared against a real nnUNetTrainer on the same plans: its SGD settings, poly schedule and Dice + CE loss,
    over every parameter of the hybrid (pretrained encoder included)."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    stock = nnUNetTrainer(dict(copy.deepcopy(PLANS), continue_training=False), "2d", 0, DATASET_JSON,
                          torch.device("cpu"))
    build_parts(stock)
    hybrid = make_trainer(variants.ScarNetTrainerLiteHybrid_stockRecipe, **TINY_HYBRID)
    build_parts(hybrid)
    assert isinstance(hybrid.network, ScarNet) and hybrid.network.has_conv_encoder
    assert type(hybrid.optimizer) is type(stock.optimizer) is torch.optim.SGD
    assert hybrid.optimizer.defaults == stock.optimizer.defaults
    assert len(hybrid.optimizer.param_groups) == 1
    assert {id(p) for p in hybrid.optimizer.param_groups[0]["params"]} == {id(p) for p in hybrid.network.parameters()}
    assert type(hybrid.lr_scheduler) is type(stock.lr_scheduler)
    assert hybrid.optimizer.param_groups[0]["lr"] == stock.optimizer.param_groups[0]["lr"]  # no warm-up
    assert type(hybrid.loss) is type(stock.loss) and type(hybrid.loss.loss) is type(stock.loss.loss)
    assert torch.equal(torch.as_tensor(hybrid.loss.weight_factors), torch.as_tensor(stock.loss.weight_factors))
