"""Data and concept drift: pure, estimator-style tests over arrays and frames."""

from __future__ import annotations

from mloop.data._columns import Coded, as_columns
from mloop.monitoring.drift._binned import PSI, ChiSquareTest, JensenShannon, total_variation
from mloop.monitoring.drift._concept import ADWIN, DDM, DETECTORS, EDDM, KSWIN, PageHinkley, detector
from mloop.monitoring.drift._correction import CORRECTIONS, adjust, benjamini_hochberg, bonferroni
from mloop.monitoring.drift._dataset import DEFAULT_FLOORS, DatasetDrift, DriftReport, FeatureDrift, check_floors
from mloop.monitoring.drift._mmd import MMDTest
from mloop.monitoring.drift._univariate import MEASURES, KSTest, TestResult, wasserstein_1
from mloop.monitoring.drift._wasserstein import Wasserstein

__all__ = [
    "DEFAULT_FLOORS",
    "MEASURES",
    "Coded",
    "as_columns",
    "check_floors",
    "total_variation",
    "wasserstein_1",
    "ADWIN",
    "DDM",
    "DETECTORS",
    "EDDM",
    "KSWIN",
    "PageHinkley",
    "detector",
    "CORRECTIONS",
    "ChiSquareTest",
    "DatasetDrift",
    "DriftReport",
    "FeatureDrift",
    "JensenShannon",
    "KSTest",
    "MMDTest",
    "PSI",
    "TestResult",
    "Wasserstein",
    "adjust",
    "benjamini_hochberg",
    "bonferroni",
]
