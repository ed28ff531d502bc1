"""jaxlabs: deep-learning lab studies in JAX, every seed and learning rate of a grid in one program.

    import jaxlabs
    jaxlabs.sweep("boston", lr=[0.01, 0.001], seeds=3).table()
    jaxlabs.search("boston", lr=jaxlabs.loguniform(1e-3, 0.3), members=27).best()
    net = jaxlabs.model(lambda rngs: Net(rngs), optimizer=lambda lr: optax.adam(lr),
                        loss=jaxlabs.optim.cross_entropy, data=(x, y))

:func:`sweep`, :func:`search`, :func:`model`, :func:`loguniform`, :func:`uniform`: see
:mod:`jaxlabs.library`; the results they return: :mod:`jaxlabs.outcomes`.
"""
import inspect as _inspect
import types as _types

from jaxlabs.models import CNN, MLP, ResNet, ResNet8, ResNet20
from jaxlabs.train import Trainer, make_train
from jaxlabs.interop import from_torch
from jaxlabs import library as _library, optim
from jaxlabs.library import LibraryError, loguniform, model, uniform
from jaxlabs.outcomes import SearchOutcome, SweepOutcome
import jaxlabs.search as _search_package
import jaxlabs.sweep as _sweep_module

__version__ = "0.1.0"


# ``jaxlabs.sweep`` and ``jaxlabs.search`` are modules (the grid engine, the search package) that
# the commands, the tests and users' code import by those names; they are callable too, as the
# library's two verbs, so neither name has to change meaning: ``jaxlabs.sweep("boston", ...)``
# calls :func:`jaxlabs.library.sweep`, ``from jaxlabs.sweep import run_grid`` still imports.
class _SweepModule(_types.ModuleType):
    def __call__(self, what, **kwargs) -> SweepOutcome:
        return _library.sweep(what, **kwargs)


class _SearchModule(_types.ModuleType):
    def __call__(self, what, **kwargs) -> SearchOutcome:
        return _library.search(what, **kwargs)


_sweep_module.__class__ = _SweepModule
_sweep_module.__signature__ = _inspect.signature(_library.sweep)
_search_package.__class__ = _SearchModule
_search_package.__signature__ = _inspect.signature(_library.search)
sweep, search = _sweep_module, _search_package

__all__ = ["CNN", "MLP", "LibraryError", "ResNet", "ResNet8", "ResNet20", "SearchOutcome", "SweepOutcome", "Trainer",
           "from_torch", "loguniform", "make_train", "model", "optim", "search", "sweep", "uniform"]
