"""stepnet's neural-network math in pure numpy: dense layers, activations, losses, L2,
initializers, optimizers, and the network composition shared by the distributed pipeline
(one Lambda per layer step) and the single-process reference trainer.

Notation: layer l computes ``Z_l = A_{l-1} @ W_l + b_l`` and ``A_l = g_l(Z_l)`` with
``A_0 = X`` of shape (n_ex, n_features); gradients are written ``dLdW``, ``dLdb``, ``dZ``.
Everything keeps float32 as float32; everything also works in float64 (gradient checks).
"""

from trainer.nn._types import Array
from trainer.nn.activations import ACTIVATIONS, activate, derivative_from_output
from trainer.nn.initializers import init_layer, init_network
from trainer.nn.layers import dense_backward, dense_forward
from trainer.nn.losses import LOSSES, loss_value, output_gradient
from trainer.nn.network import (
    add_l2,
    aggregate_gradients,
    backward_layer,
    forward_layer,
    microbatch_gradients,
    predict,
)
from trainer.nn.optimizers import OPTIMIZERS, OptimizerSpec, apply_update, init_state
from trainer.nn.params import LayerParams, flatten, unflatten
from trainer.nn.regularization import l2_gradient, l2_penalty

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "OPTIMIZERS",
    "Array",
    "LayerParams",
    "OptimizerSpec",
    "activate",
    "add_l2",
    "aggregate_gradients",
    "apply_update",
    "backward_layer",
    "dense_backward",
    "dense_forward",
    "derivative_from_output",
    "flatten",
    "forward_layer",
    "init_layer",
    "init_network",
    "init_state",
    "l2_gradient",
    "l2_penalty",
    "loss_value",
    "microbatch_gradients",
    "output_gradient",
    "predict",
    "unflatten",
]
