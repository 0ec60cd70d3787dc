"""Shared fixtures: small models trained once per session on scikit-learn's digits.

Models are built from code and trained for a few epochs (seconds); nothing is downloaded.
Modules add their own fixtures beside their tests; shared ones live here.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests explore the same examples on every run (CI included): a red run is a real bug,
# reproducible with the same command, never a fresh random draw. HYPOTHESIS_PROFILE=explore
# draws new examples when hunting for bugs.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def keras():
    from weightkit.analysis._tf import import_keras

    return import_keras()


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits as a Dataset: x of shape (n, 64) in [0, 1], integer labels."""
    from weightkit.analysis.data.datasets import load_data

    return load_data("sklearn:digits", seed=0)


@pytest.fixture(scope="session")
def digits_images(digits):
    """The same split with x reshaped to (n, 8, 8, 1) images."""
    from weightkit.analysis.data.datasets import Dataset

    return Dataset(digits.x_train.reshape(-1, 8, 8, 1), digits.y_train, digits.x_test.reshape(-1, 8, 8, 1),
                   digits.y_test, "sklearn:digits", "classification")


@pytest.fixture(scope="session")
def trained_mlp(keras, digits):
    """A 64-64-64-10 ReLU MLP trained with weight decay: has redundant groups. (model, accuracy)."""
    from weightkit.demo.examples import build_wide_mlp, train_example

    return train_example(build_wide_mlp((64, 64), name="test_mlp"), digits, epochs=15, seed=0)


@pytest.fixture(scope="session")
def trained_cnn(keras, digits_images):
    """A small conv net on 8×8×1 digits. (model, accuracy)."""
    from weightkit.demo.examples import build_small_cnn, train_example

    return train_example(build_small_cnn(filters=(8, 16)), digits_images, epochs=8, seed=0)


@pytest.fixture(scope="session")
def mlp_path(trained_mlp, tmp_path_factory):
    """The trained MLP saved as .keras (compiled). Treat as read-only."""
    path = tmp_path_factory.mktemp("models") / "mlp.keras"
    trained_mlp[0].save(path)
    return str(path)


@pytest.fixture(scope="session")
def cnn_path(trained_cnn, tmp_path_factory):
    """The trained CNN saved as .keras (compiled). Treat as read-only."""
    path = tmp_path_factory.mktemp("models") / "cnn.keras"
    trained_cnn[0].save(path)
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def corpus(keras, tmp_path_factory):
    """``(models, data)``: {case: path} of the bad-input corpus. Read-only: tests check its checksums."""
    from bad_inputs_corpus import build_data, build_models

    root = tmp_path_factory.mktemp("corpus")
    os.makedirs(root / "models")
    os.makedirs(root / "data")
    return build_models(keras, root / "models"), build_data(root / "data")


@pytest.fixture(scope="session")
def trained_transformer(tmp_path_factory):
    """``get(name) -> (folder, Dataset)``: the zoo transformer ``name`` trained once per session, saved as
    ``folder/name.keras``. Read-only: a test loads its own copy from the file (and writes elsewhere)."""
    from tests.zoo_transformers import TRANSFORMER_TASKS, TRANSFORMER_ZOO

    folder = tmp_path_factory.mktemp("transformers")
    tasks = {}

    def get(name):
        if name not in tasks:
            if name.startswith("hub"):
                pytest.importorskip("keras_hub")
            TRANSFORMER_ZOO[name](folder)
            tasks[name] = TRANSFORMER_TASKS[name]()
        return folder, tasks[name]

    return get


@pytest.fixture(scope="session")
def load_transformer(keras, trained_transformer):
    """``load(name) -> (folder, a fresh copy of the trained model loaded from its file, Dataset)``."""

    def load(name):
        folder, data = trained_transformer(name)
        return folder, keras.saving.load_model(folder / f"{name}.keras"), data

    return load
