"""Recovery after merging: a short knowledge-distillation fine-tune from the original model.

The student (the merged model) learns the teacher's (the original's) softened probabilities,
``softmax(log p_teacher / T)``, mixed with the true labels: loss = α·T²·CE(soft teacher, soft
student) + (1 − α)·CE(labels, student). It trains under the same ``tf.distribute`` strategy as
``weightkit retrain`` (:func:`weightkit.compress.decorrelate.training.choose_strategy`) and stops early on
the validation split's accuracy, restoring the best epoch's weights.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.decorrelate.training import choose_strategy
from weightkit.compress.shrink.scores import predict_probabilities, score_outputs

__all__ = ["DistillResult", "distill", "soft_targets"]

_EPS = 1e-7


@dataclass
class DistillResult:
    """What a distillation fine-tune did.

    Attributes
    ----------
    epochs_run, best_epoch : int
    strategy : str
    replicas : int
    history : list of dict
        Per epoch: ``loss``, validation ``accuracy`` and ``kl``.
    """

    epochs_run: int
    best_epoch: int
    strategy: str
    replicas: int
    temperature: float
    alpha: float
    history: list = field(default_factory=list)

    def to_dict(self):
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "strategy": self.strategy,
                "replicas": self.replicas, "temperature": self.temperature, "alpha": self.alpha,
                "history": list(self.history)}


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


def _loss(n_classes, temperature, alpha, from_probabilities):
    keras = import_keras()
    ops = keras.ops

    def distillation_loss(y_true, y_pred):
        hard, soft = y_true[:, :n_classes], y_true[:, n_classes:]
        logits = ops.log(ops.clip(y_pred, _EPS, 1.0)) if from_probabilities else y_pred
        hard_loss = -ops.sum(hard * ops.log_softmax(logits, axis=-1), axis=-1)
        soft_loss = -ops.sum(soft * ops.log_softmax(logits / temperature, axis=-1), axis=-1)
        return alpha * temperature * temperature * soft_loss + (1.0 - alpha) * hard_loss

    return distillation_loss


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


def distill(student, teacher_train, x_train, y_train, x_validation, y_validation, teacher_validation, activation, *,
            epochs=30, temperature=4.0, alpha=0.7, learning_rate=1e-3, batch_size=32, patience=6, seed=0,
            freeze_batchnorm=False, progress=None):
    """Fine-tune ``student`` on the teacher's soft targets and the labels; keep the best validation epoch.

    Parameters
    ----------
    student : keras.Model
        Not modified; a copy is trained.
    teacher_train : ndarray of shape (n_train, n_classes)
        The original's probabilities on ``x_train``.
    x_train, y_train : ndarray of shape (n_train, ...), (n_train,)
        The fine-tuning split (class indices). ``y_train=None``: no labels, the soft targets
        alone (give ``alpha=1``).
    x_validation, y_validation, teacher_validation
        The validation split, its labels and the original's probabilities on it: early stopping
        reads validation accuracy (then lower KL to the teacher on ties); ``y_validation=None``:
        agreement with the teacher instead of accuracy.
    activation : str
        The output activation: ``softmax`` outputs are probabilities, anything else logits.
    epochs : int, default=30
    temperature, alpha : float, default=4.0, 0.7
        Softening of the teacher, and the soft targets' share of the loss.
    learning_rate, batch_size, patience, seed
        Adam's rate; the global batch; epochs without a better validation score before stopping.
    freeze_batchnorm : bool, default=False
        Train with every BatchNormalization frozen (its moving statistics kept): a few epochs of
        batch statistics can move them far from what the merge fitted.
    progress : callable, default=None
        ``progress(epoch, epochs, what)`` after each epoch.

    Returns
    -------
    model : keras.Model
        The best epoch's weights, uncompiled (every layer trainable as in ``student``).
    result : DistillResult
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    strategy, strategy_name = choose_strategy()
    work = _copy_into(student, strategy)
    n_classes = int(teacher_train.shape[1])
    if freeze_batchnorm:
        for layer in _nested_layers(work):
            if getattr(kind_for(layer), "moving_statistics", False):
                layer.trainable = False
    if y_train is None:
        labels = np.zeros((len(teacher_train), n_classes), dtype=np.float32)
    else:
        labels = np.eye(n_classes, dtype=np.float32)[np.asarray(y_train, dtype=np.int64).reshape(-1)]
    if y_validation is None:
        y_validation = np.asarray(teacher_validation).argmax(axis=1)
    targets = np.concatenate([labels, soft_targets(teacher_train, temperature)], axis=1)
    with strategy.scope():
        work.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     loss=_loss(n_classes, float(temperature), float(alpha), activation == "softmax"))

    def score():
        scores = score_outputs(predict_probabilities(work, x_validation, activation), y_validation, teacher_validation)
        return (scores["accuracy"], -scores["kl"]), scores

    best_key, first = score()
    best = {"key": best_key, "weights": work.get_weights(), "epoch": 0}
    history = [{"epoch": 0, "loss": None, **first}]

    class EarlyStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            key, scores = score()
            history.append({"epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))), **scores})
            if key > best["key"]:
                best.update(key=key, weights=work.get_weights(), epoch=epoch + 1)
            elif epoch + 1 - best["epoch"] >= patience:
                self.model.stop_training = True
            if progress is not None:
                progress(epoch + 1, epochs, f"fine-tune: validation accuracy {scores['accuracy']:.4f}")

    work.fit(x_train, targets, epochs=int(epochs), batch_size=int(batch_size), shuffle=True, verbose=0,
             callbacks=[EarlyStop()])
    plain = type(student).from_config(student.get_config())
    plain.set_weights(best["weights"])
    return plain, DistillResult(epochs_run=len(history) - 1, best_epoch=int(best["epoch"]), strategy=strategy_name,
                                replicas=int(strategy.num_replicas_in_sync), temperature=float(temperature),
                                alpha=float(alpha), history=history)
