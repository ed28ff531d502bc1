"""Search inside the program: successive halving and population-based training over a task's
options, on the engine's member axis (:mod:`jaxlabs.search.run`), from a space of ranges and lists
(:mod:`jaxlabs.search.space`), with decisions as pure functions (:mod:`jaxlabs.search.decide`) and
a report (:mod:`jaxlabs.search.report`).

    from jaxlabs.search import SearchOptions, parse_dimension, population, run_search, search_space
    task = get_task("boston")
    lr = parse_dimension(by_name(task.options)["lr"], "1e-3..0.3")
    space = search_space(task.options, {"lr": lr})
    result = run_search(task, population(task, space, 27, seed=0), space, SearchOptions("halving"))
"""
from jaxlabs.search.run import METHODS, SearchError, SearchOptions, SearchResult, run_search, validation_metric
from jaxlabs.search.space import Dimension, parse_dimension, population, sample, search_space

__all__ = ["METHODS", "Dimension", "SearchError", "SearchOptions", "SearchResult", "parse_dimension", "population",
           "run_search", "sample", "search_space", "validation_metric"]
