"""Matrix-product FLOPs of a training step or an inference pass, for the speed benchmarks.

Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions,
forward and backward; element-wise work is not counted). The ratio of two methods' counts is the
speed ratio they would have if only their products cost time: on a machine where the products
run at the same rate for both, no implementation gets below it without removing work.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from robustfusion.model import MultimodalModel
from robustfusion.types import Batch


def training_step_flops(model: MultimodalModel, batch: Batch) -> int:
    """FLOPs of one training step's products: ``prepare_batch``, forward, losses, backward.

    The model's gradients are cleared afterwards; its training state (e.g. UDML's step counter or
    a BatchNorm's running statistics) moves by one step, as after any step.
    """
    method = model.method
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        prepared = method.prepare_batch(batch, True)
        output = model(prepared)
        torch.stack(list(method.losses(output, prepared).values())).sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def inference_flops(model: MultimodalModel, batch: Batch) -> int:
    """FLOPs of one evaluation-mode forward pass over ``batch``."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(model.method.prepare_batch(batch, False))
    model.train(was_training)
    return int(counter.get_total_flops())
