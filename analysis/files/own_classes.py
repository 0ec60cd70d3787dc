"""weightkit's own Keras-serializable classes, found from a model's configuration alone.

A model saved with the decorrelation regularizer still on its kernels (``weightkit retrain
--keep-regularizer``, or :func:`weightkit.compress.attach_decorrelation` without the detach) names
``weightkit>DecorrelationRegularizer`` in its configuration, and ``weightkit>CombinedRegularizer``
where the layer had its own weight decay as well. Keras resolves such a name only through its
registry, which the defining module fills when it is imported; it imports a module by the name
stored in the file only for its own packages (``keras``, ``keras_hub``, ``keras_cv``,
``keras_nlp``: see ``_retrieve_class_or_fn`` in ``keras/src/saving/serialization_lib.py``).

``analysis`` sits below ``compress`` and never imports it at module level, so this table names
the module that defines each class, and :func:`own_custom_objects` imports that module by name
(:func:`importlib.import_module`) only when a configuration mentions the class. The module
names come from this table, never from the file: such a model runs only weightkit's own,
installed code while loading, so safe mode accepts it.

The same holds for the layer classes that installed Keras-ecosystem libraries register:
:data:`ECOSYSTEM_PACKAGES` is the one list of them. A configuration object whose registered name
is ``keras_hub>...`` imports ``keras_hub`` (on demand: models without such a name never pay for the
import), and loads in safe mode when the class registered under that name has the module and class
name the file states (:func:`ecosystem_package` finds the package; the loader checks the identity
against Keras' registry). Lambda layers, serialized lambdas and classes of any other package still
need ``unsafe``. Without the library installed, the loader's refusal names the package to install.
"""

import importlib

__all__ = ["ECOSYSTEM_PACKAGES", "OWN_CLASSES", "ecosystem_package", "ecosystem_skip_reason", "import_ecosystem",
           "is_own_class", "own_custom_objects"]

#: ``registered name -> module defining it``, for every class weightkit registers with
#: ``keras.saving.register_keras_serializable(package="weightkit")``.
OWN_CLASSES = {
    "weightkit>DecorrelationRegularizer": "weightkit.compress.decorrelate.penalty",
    "weightkit>CombinedRegularizer": "weightkit.compress.decorrelate.kernels",
}

#: ``import name -> pip distribution`` of the Keras-ecosystem libraries whose registered classes
#: (``registered_name`` ``"<import name>>Class"``, defined in a module under the import name) load in
#: safe mode when the library is installed. keras-hub (Google's Keras library of BERT, Gemma, Llama,
#: ViT, ... and their layers) serializes its classes as ``keras_hub>TransformerEncoder``,
#: ``keras_hub>GemmaBackbone``. A new library is one entry here, once its classes are checked to
#: serialize that way.
ECOSYSTEM_PACKAGES = {"keras_hub": "keras-hub"}


def own_custom_objects(names):
    """The classes of weightkit's own among ``names``, for ``keras.models.load_model(custom_objects=...)``.

    Parameters
    ----------
    names : iterable of str
        Registered names found in a model's configuration (``"weightkit>DecorrelationRegularizer"``).

    Returns
    -------
    dict of str to type
        ``registered name -> class``; names not in :data:`OWN_CLASSES` are left out.
    """
    found = {}
    for name in names:
        module = OWN_CLASSES.get(name)
        if module is not None and name not in found:
            found[name] = getattr(importlib.import_module(module), name.split(">", 1)[1])
    return found


def is_own_class(module, class_name, registered_name):
    """Whether a serialized object's whole identity is one of weightkit's own classes.

    The registered name alone proves nothing (a file can claim any name): the module and class
    name stored beside it must be the ones :data:`OWN_CLASSES` says weightkit's class is saved with.

    Parameters
    ----------
    module, class_name, registered_name : str or None
        The ``module``, ``class_name`` and ``registered_name`` keys of the serialized object.

    Returns
    -------
    bool
    """
    expected = OWN_CLASSES.get(registered_name)
    return expected is not None and module == expected and class_name == registered_name.split(">", 1)[1]


def ecosystem_package(module, registered_name):
    """The import name of the :data:`ECOSYSTEM_PACKAGES` library a serialized object names, or None.

    Both the registered name's package (``keras_hub>``) and the stored module (``keras_hub.src...``)
    must name the library: anything else is not its class. A legacy ``.h5`` stores no module (its
    class name is the registered name); Keras then finds the class by that name in its registry only.

    Parameters
    ----------
    module, registered_name : str or None
        The ``module`` and ``registered_name`` keys of the serialized object.

    Returns
    -------
    str or None
    """
    if not isinstance(registered_name, str) or ">" not in registered_name or not isinstance(module, (str, type(None))):
        return None
    package = registered_name.split(">", 1)[0]
    if package in ECOSYSTEM_PACKAGES and (module is None or module == package or module.startswith(package + ".")):
        return package
    return None


def import_ecosystem(package):
    """Import an :data:`ECOSYSTEM_PACKAGES` library (registering its classes with Keras), or say why not.

    Parameters
    ----------
    package : str
        A key of :data:`ECOSYSTEM_PACKAGES`.

    Returns
    -------
    str or None
        None once it is imported; otherwise what to do, in words (``pip install keras-hub``).
    """
    distribution = ECOSYSTEM_PACKAGES[package]
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name == package:
            return (f"it is a class of {distribution}, which is not installed here; install it with "
                    f"pip install {distribution} and run again")
        return _broken(distribution, error)
    except Exception as error:  # noqa: BLE001 - a broken install becomes one line
        return _broken(distribution, error)
    return None


def _broken(distribution, error):
    first = str(error).splitlines()[0] if str(error) else ""
    return (f"it is a class of {distribution}, which is installed but fails to import ({type(error).__name__}: "
            f"{first}); repair that installation (pip install --force-reinstall {distribution})")


def ecosystem_skip_reason(module, registered_name):
    """Why weight analysis from the file lists a layer of an :data:`ECOSYSTEM_PACKAGES` library as skipped, or None.

    Parameters
    ----------
    module, registered_name : str or None
        The ``module`` and ``registered_name`` keys of the stored layer.

    Returns
    -------
    str or None
        None for a class of no listed library.
    """
    package = ecosystem_package(module, registered_name)
    if package is None:
        return None
    return (f"{ECOSYSTEM_PACKAGES[package]} layer {registered_name}: weight analysis from the file does not open "
            "its sublayers yet")
