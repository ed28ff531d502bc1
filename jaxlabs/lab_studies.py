"""The studies of LABS.md, with the numbers the original reports got.

Budgets: the Lab A report allowed 20000-30000 epochs per run; where a full budget would take hours
on a 2-core CPU the study says what it uses (``note``) and the table says when a seed did not
converge within it.
"""
from __future__ import annotations

from jaxlabs.studies import (Claim, Setting, Study, diverged, lower, more_converged, never, register,
                             value, within)

# ---------------------------------------------------------------- Lab A: log2(x) + cos(pi x / 2)
A_BASE = {"n": 2000, "width": 64, "depth": 4, "activation": "silu", "optimizer": "adam"}
A_QUICK = {"n": 100, "width": 8, "epochs": 40}

register(
    Study(
        "A-depth", "A", "Network depth (N=2000, lr 0.01, width 64)", "fit-log2cos",
        settings=(
            Setting("depth 1", {"depth": 1}, originals=(value("converged_epoch", 19979.5, "19979.5 (mean of 8)"),)),
            Setting("depth 4", {"depth": 4}, originals=(value("converged_epoch", 2736.6, "2736.6 (mean)"),)),
            Setting("depth 10", {"depth": 10}, originals=(value("converged_epoch", 18265, "10743, 25787 (2 runs)"),)),
        ),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 30000},
        traced={"lr": 0.01, "tolerance": 1e-4}, quick={**A_QUICK, "epochs": 40},
        claims=(Claim("depth 4 converges in fewer epochs than depth 1",
                      lower("converged_epoch", "depth 4", "depth 1")),),
        note="Budget 30000 epochs, as the report.", figures=("loss", "fit")),
    Study(
        "A-lr", "A", "Learning rate x data size (width 64, depth 4)", "fit-log2cos",
        settings=tuple(
            Setting(f"N={n} lr={lr:g}", {"n": n, **({"epochs": 10000} if n == 10000 else {})}, {"lr": lr},
                    originals=orig)
            for n, row in (
                (200, ((0.001, (value("converged_epoch", 15029),)), (0.01, (value("converged_epoch", 4390),)),
                       (0.1, (value("converged_epoch", 5479),)))),
                (2000, ((0.001, (value("converged_epoch", 12181), value("test_mse", 1e-4))),
                        (0.01, (value("converged_epoch", 1150), value("test_mse", 1e-4))),
                        (0.1, (never("never (loss stuck ~1.76)"), value("test_mse", 1.60))))),
                (10000, ((0.001, (value("converged_epoch", 7042),)), (0.01, (value("converged_epoch", 4264),)),
                         (0.1, (never("diverges"),)))),
            )
            for lr, orig in row),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 20000},
        traced={"tolerance": 1e-4}, quick=A_QUICK,
        claims=(Claim("at N=2000, lr 0.01 converges in fewer epochs than lr 0.001",
                      lower("converged_epoch", "N=2000 lr=0.01", "N=2000 lr=0.001")),
                Claim("at N=2000, lr 0.1 converges less often than lr 0.01",
                      more_converged("N=2000 lr=0.01", "N=2000 lr=0.1"))),
        note="Budget 20000 epochs (the report's loop cap); 10000 at N=10000, where the report's "
             "converging runs needed at most 7042.", figures=("loss", "fit")),
    Study(
        "A-width", "A", "Width (N=2000, lr 0.01, depth 4)", "fit-log2cos",
        settings=(
            Setting("width 32", {"width": 32}, originals=(value("converged_epoch", 2981, "2981 (1 of 2 runs; the other stuck at 1.7543)"),)),
            Setting("width 64", {"width": 64}, originals=(value("converged_epoch", 1150, "1150 (lr study)"),)),
            Setting("width 128", {"width": 128}, originals=(never("never (a straight-line fit)"),)),
        ),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 20000},
        traced={"lr": 0.01, "tolerance": 1e-4}, quick=A_QUICK,
        note="Budget 20000 epochs (the report: 30000).", figures=("loss", "fit")),
    Study(
        "A-activation", "A", "Activation: SiLU vs ReLU (N=2000, lr 0.01, depth 4, width 64)", "fit-log2cos",
        settings=(Setting("silu", {"activation": "silu"}), Setting("relu", {"activation": "relu"})),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 10000},
        traced={"lr": 0.01, "tolerance": 1e-4}, quick=A_QUICK,
        claims=(Claim("SiLU fits better than ReLU (lower median test MSE)", lower("test_mse", "silu", "relu")),),
        note="The report gives no numbers, only the verdict checked below. Budget 10000 epochs.",
        figures=("loss", "fit")),
    Study(
        "A-optimizer", "A", "Optimizer: Adam vs SGD (N=2000, lr 0.01, depth 4, width 64)", "fit-log2cos",
        settings=(Setting("adam", {"optimizer": "adam"}), Setting("sgd", {"optimizer": "sgd"})),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 10000},
        traced={"lr": 0.01, "tolerance": 1e-4}, quick=A_QUICK,
        claims=(Claim("Adam fits far better than SGD (lower median test MSE)", lower("test_mse", "adam", "sgd")),),
        note="The report gives no numbers, only the verdict checked below. Budget 10000 epochs.",
        figures=("loss", "fit")),
    Study(
        "A-tolerance", "A", "Tolerance (N=2000, lr 0.01, depth 4, width 64)", "fit-log2cos",
        settings=(
            Setting("tol 1e-3", traced={"tolerance": 1e-3}, originals=(within(1000, "within ~1000 epochs"),)),
            Setting("tol 1e-4", traced={"tolerance": 1e-4}, originals=(within(5000, "within ~5000 epochs"),)),
            Setting("tol 1e-5", traced={"tolerance": 1e-5}, originals=(never("rarely converges"),)),
        ),
        metrics=("converged_epoch", "test_mse"), static={**A_BASE, "epochs": 10000},
        traced={"lr": 0.01}, quick=A_QUICK, note="Budget 10000 epochs.", figures=("loss",)),
)

# ---------------------------------------------------------------- Lab B: x^2 + 2 sin x + cos(x-1) - 5
B_QUICK = {"n": 100, "width": 8, "epochs": 20}
register(
    Study(
        "B-epochs", "B", "Number of training epochs (lr 0.001)", "fit-poly",
        settings=tuple(Setting(f"{e} epochs", {"epochs": e}) for e in (10, 50, 100, 200, 1000, 10000, 50000)),
        metrics=("test_mse",), traced={"lr": 0.001, "tolerance": 0.0}, quick=B_QUICK,
        claims=(Claim("the fit improves with more epochs (1000 beats 100)", lower("test_mse", "1000 epochs", "100 epochs")),),
        note="The report shows curves only; its 100000-epoch run is left out (50000 already shows the trend). "
             "x range [-5, 5] and the 2 x 64 ReLU network are jaxlabs' choices: the report does not give them.",
        figures=("loss", "fit")),
    Study(
        "B-lr", "B", "Learning rate at 1000 epochs", "fit-poly",
        settings=tuple(Setting(f"lr {lr:g}", traced={"lr": lr}) for lr in (1.0, 0.1, 0.01, 0.001)),
        metrics=("test_mse",), static={"epochs": 1000}, traced={"tolerance": 0.0}, quick=B_QUICK,
        claims=(Claim("lr 0.01 fits better than lr 1", lower("test_mse", "lr 0.01", "lr 1")),),
        note="The report argues that smaller learning rates fit more precisely; the curves show it.",
        figures=("loss", "fit")),
    Study(
        "B-custom", "B", "User-defined function (x+1)^2 + sin(x^2+1) - log(x^2+1), lr 0.001, 3500 epochs", "fit-poly",
        settings=(Setting("custom", {"target": "(x+1)**2 + sin(x**2+1) - log(x**2+1)", "x_range": "-3,3"}),),
        metrics=("test_mse",), static={"epochs": 3500}, traced={"lr": 0.001, "tolerance": 0.0}, quick=B_QUICK,
        note="x range [-3, 3] chosen by jaxlabs.", figures=("loss", "fit")),
)
