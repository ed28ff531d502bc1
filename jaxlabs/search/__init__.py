"""Search inside the program: successive halving and population-based training over a task's
options, on the engine's member axis (:mod:`jaxlabs.search.run`), from a space of ranges and lists
(:mod:`jaxlabs.search.space`), with decisions as pure functions (:mod:`jaxlabs.search.decide`) and
a report (:mod:`jaxlabs.search.report`).

From Python, one call (:func:`jaxlabs.library.search`; this package is callable as it):

    import jaxlabs
    found = jaxlabs.search("boston", lr=jaxlabs.loguniform(1e-3, 0.3), members=27)
    found.best(), found.table(), found.save("runs/boston-search")

The pieces it is made of, as the command uses them: a space (:func:`search_space` of
:class:`Dimension`), a population (:func:`population`), :func:`run_search` with
:class:`SearchOptions`.
"""
from jaxlabs.search.run import METHODS, SearchError, SearchOptions, SearchResult, run_search, validation_metric
from jaxlabs.search.space import Dimension, parse_dimension, population, sample, search_space

__all__ = ["METHODS", "Dimension", "SearchError", "SearchOptions", "SearchResult", "parse_dimension", "population",
           "run_search", "sample", "search_space", "validation_metric"]
