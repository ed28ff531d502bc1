"""jaxlabs.progress: the progress bar's text for a classifier, a converging fit and a regression."""
import numpy as np

from jaxlabs.progress import converging, postfix
from jaxlabs.train import CONVERGED, DIVERGED, RUNNING


def test_a_classifier_shows_validation_accuracy_and_no_converged_count():
    last = {"loss": np.array([0.42, 0.56, 0.61, np.nan]), "val_acc": np.array([0.981, 0.975, 0.969, np.nan]),
            "test_acc": np.array([0.5, 0.5, 0.5, 0.5])}
    text = postfix(last, np.array([RUNNING] * 3 + [DIVERGED]), monitor="loss", rate=1234.4)
    assert text == "run 3 div 1 | val_acc best 98.1% median 97.5% | 1,234 img/s"


def test_a_classifier_without_a_validation_split_shows_test_accuracy():
    text = postfix({"loss": np.array([0.3, 0.2]), "test_acc": np.array([0.9, 0.8])}, np.array([RUNNING] * 2),
                   monitor="loss")
    assert text == "run 2 div 0 | test_acc best 90.0% median 85.0%"


def test_a_fit_with_a_tolerance_counts_converged_members_and_shows_its_loss():
    hp = {"lr": np.array([0.01, 0.1]), "tolerance": np.array([1e-4, 1e-4])}
    assert converging(hp) and not converging({"lr": np.array([0.1])})
    assert not converging({"tolerance": np.zeros(3)})
    text = postfix({"loss": np.array([9e-5, 2e-3, 1.71]), "val_mse": np.array([1e-4, 3e-3, 2.0])},
                   np.array([CONVERGED, RUNNING, RUNNING]), monitor="loss", converging=True)
    assert text == "run 2 conv 1 div 0 | loss best 9e-05 median 0.002"


def test_a_regression_shows_its_monitored_loss_and_every_member_diverged_is_nan():
    text = postfix({"loss": np.array([3.0, 4.0]), "val_loss": np.array([12.25, 14.5])},
                   np.array([RUNNING, RUNNING]), monitor="val_loss")
    assert text == "run 2 div 0 | val_loss best 12.2 median 13.4"
    text = postfix({"val_loss": np.array([np.nan, np.inf])}, np.array([DIVERGED, DIVERGED]), monitor="val_loss")
    assert text == "run 0 div 2 | val_loss best nan median nan"
