"""Data and concept drift: pure, estimator-style tests over arrays and frames."""

from __future__ import annotations

from mloop.monitoring.drift._binned import PSI, ChiSquareTest, JensenShannon
from mloop.monitoring.drift._concept import ADWIN, DDM, DETECTORS, EDDM, KSWIN, PageHinkley, detector
from mloop.monitoring.drift._correction import CORRECTIONS, adjust, benjamini_hochberg, bonferroni
from mloop.monitoring.drift._dataset import DatasetDrift, DriftReport, FeatureDrift
from mloop.monitoring.drift._mmd import MMDTest
from mloop.monitoring.drift._univariate import KSTest, TestResult
from mloop.monitoring.drift._wasserstein import Wasserstein

__all__ = [
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
