"""Recovery after merging: a short knowledge-distillation fine-tune from the original model.

One loss per output, chosen from what the :class:`weightkit.compress.shrink.judge.Judge` knows about it:

- a class output (``(batch, n_classes)``, per-element classes on the last axis, or a one-column
  sigmoid/logit binary class): the teacher's softened probabilities per element,
  ``softmax(log p_teacher / T)``, mixed with the labels where there are some:
  ``α·T²·CE(soft teacher, soft student) + (1 − α)·CE(labels, student)``;
- a regression output: the squared difference from the teacher's outputs (mixed with the labels'
  in the same shares), divided by the variance of the teacher's outputs on the training inputs,
  so that every output weighs about as much as a KL divergence does.

Labels, where given, are the first output's (as the Judge reads them); every other output learns
the teacher alone. Any number of inputs and outputs. Training runs under the same
``tf.distribute`` strategy as ``weightkit retrain``
(:func:`weightkit.compress.decorrelate.training.choose_strategy`) and stops early on the Judge's score
of its split (the budget's unit: accuracy or agreement, or MAE for a regression; its smooth error
on ties), restoring the best epoch's weights.

Function matching (``mixup``, Beyer et al. 2022): each epoch may add fresh mixtures of pairs of training
inputs (:mod:`weightkit.compress.shrink.distill_inputs`; float inputs only, never token ids) with the
teacher's outputs on them as targets, so that the student learns the teacher's function between the
samples, not only on them.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.decorrelate.training import choose_strategy
from weightkit.compress.shrink.distill_inputs import mixable_inputs, mixed_inputs
from weightkit.compress.shrink.judge import Judge, model_outputs
from weightkit.compress.shrink.scores import element_classes, element_probabilities

__all__ = ["DistillResult", "distill", "fine_tune_merged", "soft_targets"]

_EPS = 1e-7


@dataclass
class DistillResult:
    """What a distillation fine-tune did.

    Attributes
    ----------
    epochs_run, best_epoch : int
    strategy : str
    replicas : int
    temperature, alpha : float
    unit : {"accuracy", "agreement", "mae"}
        What the early stopping read (the Judge's unit).
    losses : list of str
        Per output: ``"kl"`` (classes) or ``"mse"`` (regression).
    mixed : int
        Mixtures of training inputs added to each epoch (function matching; 0: none).
    history : list of dict
        Per epoch (0: before training): ``loss`` and the Judge's scores on its split (``drop``,
        ``error``, ``agreement`` / ``accuracy`` or ``mae`` / ``mae_to_original``).
    """

    epochs_run: int
    best_epoch: int
    strategy: str
    replicas: int
    temperature: float
    alpha: float
    unit: str = "accuracy"
    losses: list = field(default_factory=list)
    history: list = field(default_factory=list)
    mixed: int = 0

    def to_dict(self):
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "strategy": self.strategy,
                "replicas": self.replicas, "temperature": self.temperature, "alpha": self.alpha, "unit": self.unit,
                "losses": list(self.losses), "mixed": self.mixed, "history": list(self.history)}


def soft_targets(teacher, temperature):
    """``softmax(log p / T)`` row by row.

    Parameters
    ----------
    teacher : ndarray of shape (n_samples, n_classes)
        Probabilities.
    temperature : float

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float32
    """
    logits = np.log(np.asarray(teacher, dtype=np.float64) + _EPS) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def _width(output):
    return output.shape[-1] if output.ndim > 1 else 1


def _class_targets(teacher, labels, activation, temperature):
    """``[hard, soft teacher]`` per element, shape ``output.shape[:-1] + (2 n,)``: the hard part is the one-hot
    labels, or the teacher's own probabilities (at ``T = 1``) where there are none."""
    probabilities = element_probabilities(teacher, activation)
    soft = soft_targets(probabilities, temperature)
    n = soft.shape[1]
    hard = (probabilities.astype(np.float32) if labels is None
            else np.eye(n, dtype=np.float32)[element_classes(labels, teacher)])
    lead = teacher.shape[:-1] if teacher.ndim > 1 else teacher.shape
    return np.concatenate([hard, soft], axis=1).reshape(lead + (2 * n,))


def _value_targets(teacher, labels):
    """``[labels (the teacher's outputs without), teacher]`` on the last axis."""
    teacher = teacher.astype(np.float32)
    hard = teacher if labels is None else np.asarray(labels, dtype=np.float32).reshape(teacher.shape)
    return np.concatenate([hard, teacher], axis=-1)


def _class_loss(width, activation, temperature, alpha):
    """KL (as cross-entropy) per element; a one-column output is a binary class ``[0, logit]``."""
    ops = import_keras().ops
    n = max(width, 2)

    def class_distillation(y_true, y_pred):
        hard, soft = y_true[..., :n], y_true[..., n:]
        if width == 1:
            logit = (ops.log(ops.clip(y_pred, _EPS, 1.0)) - ops.log(ops.clip(1.0 - y_pred, _EPS, 1.0))
                     if activation == "sigmoid" else y_pred)
            logits = ops.concatenate([ops.zeros_like(logit), logit], axis=-1)
        else:
            logits = ops.log(ops.clip(y_pred, _EPS, 1.0)) if activation == "softmax" else y_pred
        hard_loss = -ops.sum(hard * ops.log_softmax(logits, axis=-1), axis=-1)
        soft_loss = -ops.sum(soft * ops.log_softmax(logits / temperature, axis=-1), axis=-1)
        return alpha * temperature * temperature * soft_loss + (1.0 - alpha) * hard_loss

    return class_distillation


def _value_loss(width, alpha, scale):
    """Squared difference from the teacher (and the labels), over the teacher's variance."""
    ops = import_keras().ops

    def value_distillation(y_true, y_pred):
        hard, teacher = y_true[..., :width], y_true[..., width:]
        return scale * (alpha * ops.mean(ops.square(y_pred - teacher), axis=-1) +
                        (1.0 - alpha) * ops.mean(ops.square(y_pred - hard), axis=-1))

    return value_distillation


def _nested_layers(model):
    """Every layer of ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _nested_layers(layer)


def _copy_into(model, strategy):
    keras = import_keras()
    with strategy.scope():
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    return copy


def _first_labels(y):
    return y[0] if isinstance(y, (list, tuple)) else y


def _losses(teacher, judge, labelled, temperature, alpha):
    """Per output: the loss function and its name (``kl`` or ``mse``); the first output mixes in labels when
    ``labelled``."""
    losses, names = [], []
    for index, (output, activation) in enumerate(zip(teacher, judge.activations)):
        share = float(alpha) if labelled and index == 0 else 1.0  # no labels: the teacher alone
        if judge.classifier[index]:
            losses.append(_class_loss(_width(output), activation, float(temperature), share))
            names.append("kl")
        else:
            losses.append(_value_loss(_width(output), share, 1.0 / max(float(np.var(output)), _EPS)))
            names.append("mse")
    return losses, names


def _targets(teacher, judge, labels, temperature):
    """Per output, the fit's target array: the labels (first output only) or the teacher's own outputs as the
    hard part, beside the teacher's."""
    targets = []
    for index, (output, activation) in enumerate(zip(teacher, judge.activations)):
        own = labels if index == 0 else None
        targets.append(_class_targets(output, own, activation, temperature) if judge.classifier[index]
                       else _value_targets(output, own))
    return targets


def _joined(first, second):
    """Two sets of samples (an array, or a list of them) one after the other."""
    if second is None:
        return first
    if isinstance(first, (list, tuple)):
        return [np.concatenate([a, b]) for a, b in zip(first, second)]
    return np.concatenate([first, second])


def _optimizer(keras, learning_rate, schedule, steps):
    """Adam at ``learning_rate``, held (``"constant"``) or decayed to 0 over ``steps`` batches (``"cosine"``)."""
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate)
    if schedule == "cosine":
        return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, max(int(steps), 1)))
    raise ValueError(f"Invalid value for argument `schedule`. Expected one of {{'constant', 'cosine'}}. "
                     f"Received: schedule={schedule!r}")


def distill(student, teacher, x_train, judge, *, y_train=None, epochs=30, temperature=4.0, alpha=0.7,
            learning_rate=1e-3, batch_size=32, patience=6, seed=0, freeze_batchnorm=False, mixup=0.0,
            schedule="constant", teacher_outputs=None, progress=None, choose="score"):
    """Fine-tune ``student`` on the teacher's outputs (and the labels); keep the epoch the Judge scores best.

    Parameters
    ----------
    student : keras.Model
        The same inputs and outputs as the teacher. Not modified; a copy is trained.
    teacher : keras.Model or list of ndarray
        The original, or its outputs on ``x_train`` (:func:`weightkit.compress.shrink.judge.model_outputs`:
        one float array per output, in model order; then no mixtures, which need the model).
    x_train : ndarray of shape (n_train, ...), or a list of them (one per input)
        The fine-tuning inputs; no labels needed.
    judge : Judge
        The original scored on the held-out split the early stopping reads: it says which outputs
        are classes (and their activations), and its :meth:`~Judge.score` ranks the epochs (lower
        ``drop``, then lower ``error``).
    y_train : ndarray, or a list of them (one per output), default=None
        The first output's labels on ``x_train`` (class indices per element, one-hot rows, or a
        regression's targets); mixed in with a share ``1 − alpha``. None: the teacher alone.
    epochs : int, default=30
    temperature, alpha : float, default=4.0, 0.7
        Softening of the teacher's classes, and the teacher's share of the loss where there are labels.
    learning_rate, batch_size, patience, seed
        Adam's rate; the global batch; epochs without a better held-out score before stopping.
    freeze_batchnorm : bool, default=False
        Train with every BatchNormalization frozen (its moving statistics kept): a few epochs of
        batch statistics can move them far from what the merge fitted.
    mixup : float, default=0.0
        Function matching: each epoch adds ``mixup · n_train`` fresh mixtures of pairs of training inputs
        (:func:`weightkit.compress.shrink.distill_inputs.mixed_inputs`) that the teacher labels, with
        the teacher's own outputs in place of labels. Only float inputs that reach no Embedding are
        mixed; a model without such an input, or a teacher given as outputs, gets none. 0: none.
    schedule : {"constant", "cosine"}, default="constant"
        Adam's rate held, or decayed to 0 along a cosine over ``epochs`` epochs.
    teacher_outputs : list of ndarray, default=None
        The teacher model's outputs on ``x_train`` when already computed.
    choose : {"score", "error"}, default="score"
        Which epoch is kept: ``"score"`` the Judge's ranking (lower ``drop``, then lower ``error``); ``"error"`` the
        lowest ``error`` alone (the smooth divergence from the teacher), so that the kept epoch is not the one
        whose held-out accuracy happened to be highest and a budget read on the same split after it is not
        biased upwards (shrink's stream stage: on the width-64 ViT of seed 1, the stream cut to 16 kept its
        test accuracy, 0.9722, where the merges chosen after it lost 1.67 points).
    progress : callable, default=None
        ``progress(epoch, epochs, what)`` after each epoch.

    Returns
    -------
    model : keras.Model
        The best epoch's weights, uncompiled (every layer trainable as in ``student``).
    result : DistillResult
    """
    if not float(mixup) >= 0:
        raise ValueError(f"Invalid value for argument `mixup`. Expected a number >= 0 (mixtures per training "
                         f"input each epoch; 0: none). Received: mixup={mixup!r}")
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = None if isinstance(teacher, (list, tuple)) else teacher
    teacher = list(teacher if model is None else teacher_outputs or model_outputs(model, x_train, judge.batch_size))
    labels = _first_labels(y_train)
    losses, names = _losses(teacher, judge, labels is not None, temperature, alpha)
    plain = _targets(teacher, judge, labels, temperature)
    mixable = [] if model is None or not mixup else mixable_inputs(model, x_train)
    count = int(round(float(mixup) * n_samples(x_train))) if any(mixable) else 0
    strategy, strategy_name = choose_strategy()
    work = _copy_into(student, strategy)
    if freeze_batchnorm:
        for layer in _nested_layers(work):
            if getattr(kind_for(layer), "moving_statistics", False):
                layer.trainable = False
    several = len(losses) > 1
    steps = int(epochs) * -(-(n_samples(x_train) + count) // int(batch_size))
    with strategy.scope():
        work.compile(optimizer=_optimizer(keras, learning_rate, schedule, steps), loss=losses if several else losses[0])

    if choose not in ("score", "error"):
        raise ValueError(f"Invalid value for argument `choose`. Expected 'score' or 'error'. Received: choose={choose!r}")

    def score():
        scores = judge.score(work)
        return ((-scores["error"],) if choose == "error" else (-scores["drop"], -scores["error"])), scores

    best_key, first = score()
    best = {"key": best_key, "weights": work.get_weights(), "epoch": 0}
    history = [{"epoch": 0, "loss": None, **first}]
    for epoch in range(1, int(epochs) + 1):
        x_mixed = mixed_inputs(x_train, mixable, rng, count) if count else None
        targets = plain if x_mixed is None else [
            _joined(a, b) for a, b in zip(plain, _targets(model_outputs(model, x_mixed, judge.batch_size), judge,
                                                          None, temperature))]
        fitted = work.fit(_joined(x_train, x_mixed), targets if several else targets[0], epochs=1,
                          batch_size=int(batch_size), shuffle=True, verbose=0)
        key, scores = score()
        history.append({"epoch": epoch, "loss": float(fitted.history.get("loss", [float("nan")])[-1]), **scores})
        if key > best["key"]:
            best.update(key=key, weights=work.get_weights(), epoch=epoch)
        if progress is not None:
            progress(epoch, epochs, f"fine-tune: validation {judge.metric_name} {judge.metric(scores):.4f}")
        if epoch - best["epoch"] >= patience:
            break
    tuned = type(student).from_config(student.get_config())
    tuned.set_weights(best["weights"])
    return tuned, DistillResult(epochs_run=len(history) - 1, best_epoch=int(best["epoch"]), strategy=strategy_name,
                                replicas=int(strategy.num_replicas_in_sync), temperature=float(temperature),
                                alpha=float(alpha), unit=judge.unit, losses=names, history=history, mixed=count)


def fine_tune_merged(original, merged, x_train, x_validation, *, y_train=None, y_validation=None, task=None,
                     epochs=10, temperature=2.0, alpha=0.7, learning_rate=1e-3, patience=4, seed=0, mixup=0.0,
                     schedule="constant", freeze_batchnorm=True, progress=None):
    """Distil the original into the merged model; early stopping on the Judge's held-out score.

    Parameters
    ----------
    original, merged : keras.Model
        Any inputs and outputs the Judge scores; neither is modified.
    x_train : ndarray of shape (n_train, ...), or a list of them
        Training inputs (no labels needed: the original's outputs are the targets).
    x_validation : ndarray of shape (n_validation, ...), or a list of them
        Held-out inputs the early stopping reads.
    y_train, y_validation : ndarray or list of them, default=None
        Labels (the first output's count); with ``y_train`` the loss mixes them in (``1 − alpha``),
        with ``y_validation`` the early stopping reads accuracy (or MAE to the labels) instead of
        agreement (or MAE to the original's outputs).
    task : {"classification", "regression"}, default=None
        The first output's, as :class:`weightkit.compress.shrink.judge.Judge` takes it.
    epochs, temperature, alpha, learning_rate, patience, seed
        See :func:`distill`. Measured 2026-12-07, 8-10 epochs: a 64-32-10 digits MLP merged to 3
        hidden neurons, no labels (agreement 0.657): Adam 1e-3 / T=4 (shrink's) 0.747, 1e-3 / T=2
        0.763, 3e-3 / T=2 0.808; the residual digits CNN merged by half, with labels (validation
        accuracy 0.939): 3e-4 and 1e-3 / T=2 0.983, but 3e-3 / T=2 fell to 0.106 at once (epoch 0
        kept). Hence 1e-3 and T=2. Epochs, same CNN by half, seeds 0-8 (``bench_merge_default.py``,
        2026-12-07): the test-half drop averaged 0.76 points after 10 epochs (11 runs), 0.66 after
        30 (11 runs), 0.09 after 60 (6 runs); patience 4 or 30 gave the same accuracies (20 pairs).
    mixup, schedule : float, str, default=0.0, "constant"
        Mixtures of pairs of training inputs added each epoch (function matching) and Adam's
        schedule; see :func:`distill`. Measured 2026-12-07 (``bench_merge_default.py``, residual
        digits CNN merged by half, seeds 0-2, mean loss on the 179-digit test half): one mixture per
        input (``mixup=1``) against none, 1.49 against 1.49 points (10 epochs) and 1.49 against 1.30
        (30 epochs); with patience 30, 0.75 against 0.56 (constant) and 0.56 against 0.56 (cosine).
        Hence none by default.
    freeze_batchnorm : bool, default=True
        See :func:`distill`: the merge refits the BatchNormalizations, and batch statistics of a few
        epochs would move them.
    progress : callable, default=None

    Returns
    -------
    model : keras.Model
    result : DistillResult
    """
    judge = Judge(original, x_validation, y_validation, task=task)
    return distill(merged, original, x_train, judge, y_train=y_train, epochs=int(epochs), temperature=temperature,
                   alpha=alpha, learning_rate=learning_rate, patience=patience, seed=seed,
                   freeze_batchnorm=freeze_batchnorm, mixup=mixup, schedule=schedule, progress=progress)
