"""The in-memory trainers the local engine is compared with: stepnet's reference, scikit-learn's
MLPClassifier and PyTorch on the CPU.

All three train the config's network (same layers, activations, optimizer and hyper-parameters,
epochs, and examples per optimizer update) on the same prepared data (``stepnet.reference.
prepare_dataset``: the same split and standardisation). One optimizer update of the pipeline
averages the gradients of ``workers`` micro-batches of ``batch_size`` examples, i.e. it is an
update on ``batch_size × workers`` examples, so scikit-learn and PyTorch use that batch size.
Initial weights and shuffles differ (their own generators).

Times: the reference and PyTorch are timed per epoch, each epoch including an evaluation of the
training and validation loss (what the reference does, and the pipeline's Evaluate task);
scikit-learn's ``fit`` over all epochs is divided by the epochs (it evaluates nothing extra).
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

import numpy as np

from trainer.config import RunConfig
from trainer.data.prepare import PreparedData


def _labels(Y: np.ndarray) -> np.ndarray:
    labels: np.ndarray = np.argmax(Y, axis=1)
    return labels


def run_reference(config: RunConfig, data: Any) -> dict[str, Any]:
    """stepnet.reference.train, timed epoch by epoch."""
    from stepnet.reference import train

    marks = [time.perf_counter()]
    trained = train(config, data, on_epoch=lambda _: marks.append(time.perf_counter()))
    seconds = [b - a for a, b in itertools.pairwise(marks)]
    return {
        "system": "reference",
        "label": "stepnet reference (numpy, in memory)",
        "epochs": len(seconds),
        "epoch_seconds": float(np.mean(seconds)),
        "epoch_seconds_each": seconds,
        "val_accuracy": trained.metrics[-1].get("val_accuracy"),
        "metrics": trained.metrics,  # what the local engine must reproduce exactly
        "measured": "full epochs",
    }


def run_sklearn(config: RunConfig, data: PreparedData) -> dict[str, Any]:
    """scikit-learn's MLPClassifier, the same architecture and optimizer."""
    label = "scikit-learn MLPClassifier"
    hidden = config.model.layers[:-1]
    names = {layer.activation for layer in hidden}
    table = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic", "linear": "identity"}
    if not config.is_classification:
        return {"system": "sklearn", "label": label, "skipped": "classification workloads only"}
    if len(names) > 1 or any(n not in table for n in names):
        return {"system": "sklearn", "label": label, "skipped": "needs one hidden activation"}
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    o = config.optimizer
    update_batch = config.batch_size * config.workers
    solver = "adam" if o.name == "adam" else "sgd"
    model = MLPClassifier(
        hidden_layer_sizes=tuple(layer.units for layer in hidden),
        activation=table[names.pop()] if names else "identity",
        solver=solver,
        # sklearn adds alpha·W / batch to the mean gradient; the pipeline adds l2·W
        alpha=config.l2 * update_batch,
        batch_size=update_batch,
        learning_rate="constant",
        learning_rate_init=o.learning_rate,
        momentum=o.momentum if o.name == "momentum" else 0.0,
        nesterovs_momentum=False,
        beta_1=o.beta1,
        beta_2=o.beta2,
        epsilon=o.epsilon,
        max_iter=config.epochs,
        shuffle=True,
        random_state=config.seed,
        tol=0.0,
        n_iter_no_change=config.epochs + 1,
        early_stopping=False,
    )
    y_train, y_val = _labels(data.Y_train), _labels(data.Y_val)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(data.X_train, y_train)
        seconds = time.perf_counter() - started
    return {
        "system": "sklearn",
        "label": label,
        "epochs": int(model.n_iter_),
        "epoch_seconds": seconds / max(1, int(model.n_iter_)),
        "val_accuracy": float(model.score(data.X_val, y_val)),
        "measured": "full epochs (fit time / epochs)",
        "batch_size": update_batch,
    }


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def run_torch(config: RunConfig, data: PreparedData) -> dict[str, Any]:
    """PyTorch on the CPU: the same layers, optimizer, L2 on weights only, update batch size."""
    label = "PyTorch (CPU)"
    try:
        import torch
    except ImportError:
        return {"system": "torch", "label": label, "skipped": "torch is not installed"}
    if not config.is_classification:
        return {"system": "torch", "label": label, "skipped": "classification workloads only"}
    torch.manual_seed(config.seed)
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    modules: list[Any] = []
    n_in = data.X_train.shape[1]
    for index, layer in enumerate(config.model.layers):
        modules.append(torch.nn.Linear(n_in, layer.units))
        last = index == len(config.model.layers) - 1
        if not last and layer.activation in acts:
            modules.append(acts[layer.activation]())
        n_in = layer.units
    net = torch.nn.Sequential(*modules)  # the softmax is inside CrossEntropyLoss
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    groups = [{"params": weights, "weight_decay": config.l2}, {"params": biases, "weight_decay": 0}]
    o = config.optimizer
    optimizer: Any
    if o.name == "adam":
        optimizer = torch.optim.Adam(
            groups, lr=o.learning_rate, betas=(o.beta1, o.beta2), eps=o.epsilon
        )
    else:
        momentum = o.momentum if o.name == "momentum" else 0.0
        optimizer = torch.optim.SGD(groups, lr=o.learning_rate, momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.from_numpy(np.ascontiguousarray(data.X_train, dtype=np.float32))
    y = torch.from_numpy(_labels(data.Y_train))
    X_val = torch.from_numpy(np.ascontiguousarray(data.X_val, dtype=np.float32))
    y_val = torch.from_numpy(_labels(data.Y_val))
    update_batch = config.batch_size * config.workers
    generator = torch.Generator().manual_seed(config.seed)
    seconds: list[float] = []
    accuracy = 0.0
    for _ in range(config.epochs):
        started = time.perf_counter()
        net.train()
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), update_batch):
            rows = order[start : start + update_batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():  # the per-epoch evaluation the reference does too
            float(loss_fn(net(X), y))
            logits = net(X_val)
            float(loss_fn(logits, y_val))
            accuracy = float((logits.argmax(dim=1) == y_val).float().mean())
        seconds.append(time.perf_counter() - started)
    return {
        "system": "torch",
        "label": label,
        "epochs": config.epochs,
        "epoch_seconds": float(np.mean(seconds)),
        "epoch_seconds_each": seconds,
        "val_accuracy": accuracy,
        "measured": "full epochs",
        "batch_size": update_batch,
        "threads": torch.get_num_threads(),
        "version": str(torch.__version__),
    }
