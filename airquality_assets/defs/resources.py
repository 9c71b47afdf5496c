"""Resources: which sources, where files go. Chosen per deployment by environment, not code.

``AIRQUALITY_SOURCE=replay`` (the default) serves the bundled Beijing data through the same
interface and JSON shapes as the live APIs; ``AIRQUALITY_SOURCE=live`` uses OpenWeatherMap and
Visual Crossing with keys from ``OPENWEATHER_API_KEY`` / ``VISUAL_CROSSING_API_KEY``
(Dagster ``EnvVar``s: resolved at run time, never stored in run config or shown in logs).
"""

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

from airquality_assets.settings import Settings, get_settings, parse_instant
from airquality_assets.sources.base import AirPollutionSource, WeatherSource
from airquality_assets.storage import atomic_write_bytes, raw_path


class AirPollutionSourceResource(dg.ConfigurableResource, ABC):
    """Where hourly air-pollution records come from."""

    @abstractmethod
    def client(self) -> AirPollutionSource: ...


class WeatherSourceResource(dg.ConfigurableResource, ABC):
    """Where hourly weather records come from."""

    @abstractmethod
    def client(self) -> WeatherSource: ...


class OpenWeatherMapResource(AirPollutionSourceResource):
    """Live OpenWeatherMap Air Pollution API (history endpoint, one UTC day per request)."""

    api_key: str
    base_url: str = "https://api.openweathermap.org"
    timeout_s: float = 30.0
    max_retries: int = 4
    min_interval_s: float = 1.0  # free plan: 60 calls/minute

    def client(self) -> AirPollutionSource:
        from airquality_assets.sources.openweathermap import OpenWeatherMapClient

        return OpenWeatherMapClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            min_interval_s=self.min_interval_s,
        )


class VisualCrossingResource(WeatherSourceResource):
    """Live Visual Crossing Timeline API (hourly, metric, UTC; one day = 24 records)."""

    api_key: str
    base_url: str = (
        "https://weather.visualcrossing.com/VisualCrossingWebServices/rest/services/timeline"
    )
    timeout_s: float = 30.0
    max_retries: int = 4
    daily_record_budget: int | None = 1000  # free plan

    def client(self) -> WeatherSource:
        from airquality_assets.sources.visualcrossing import VisualCrossingClient

        return VisualCrossingClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            daily_record_budget=self.daily_record_budget,
        )


class ReplayAirPollutionResource(AirPollutionSourceResource):
    """Bundled real measurements served in the OpenWeatherMap JSON shape."""

    now: str = "2014-12-31T00:00:00Z"

    def client(self) -> AirPollutionSource:
        from airquality_assets.sources.replay import ReplayAirPollutionSource

        return ReplayAirPollutionSource(now=parse_instant(self.now))


class ReplayWeatherResource(WeatherSourceResource):
    """Bundled real measurements served in the Visual Crossing JSON shape."""

    now: str = "2014-12-31T00:00:00Z"

    def client(self) -> WeatherSource:
        from airquality_assets.sources.replay import ReplayWeatherSource

        return ReplayWeatherSource(now=parse_instant(self.now))


class RawStore(dg.ConfigurableResource):
    """Raw response bodies on disk, one file per (asset, location, day), written atomically."""

    base_dir: str

    def path(self, asset: str, location: str, day: str) -> Path:
        from datetime import date

        return raw_path(Path(self.base_dir), asset, location, date.fromisoformat(day))

    def write(self, asset: str, location: str, day: str, body: bytes) -> Path:
        return atomic_write_bytes(self.path(asset, location, day), body)

    def read(self, asset: str, location: str, day: str) -> bytes:
        path = self.path(asset, location, day)
        if not path.exists():
            raise FileNotFoundError(
                f"no raw file for {asset} partition {day}|{location} ({path}); "
                f"materialize {asset} for that partition first"
            )
        return path.read_bytes()


def build_resources(settings: Settings) -> dict[str, object]:
    """The resource set of one deployment, chosen by ``AIRQUALITY_SOURCE``."""
    from airquality_assets.defs.io_managers import (
        PartitionedParquetIOManager,
        SequenceTensorsIOManager,
    )
    from airquality_assets.defs.mlflow import mlflow_tracking

    now = settings.replay_now.isoformat()
    sources: dict[str, object]
    if settings.source == "live":
        sources = {
            "air_pollution_source": OpenWeatherMapResource(
                api_key=dg.EnvVar("OPENWEATHER_API_KEY")
            ),
            "weather_source": VisualCrossingResource(api_key=dg.EnvVar("VISUAL_CROSSING_API_KEY")),
        }
    else:
        sources = {
            "air_pollution_source": ReplayAirPollutionResource(now=now),
            "weather_source": ReplayWeatherResource(now=now),
        }
    return {
        **sources,
        "raw_store": RawStore(base_dir=str(settings.data_dir)),
        "io_manager": PartitionedParquetIOManager(base_dir=str(settings.data_dir)),
        "tensors_io_manager": SequenceTensorsIOManager(base_dir=str(settings.data_dir)),
        # Small Python values between steps (candidate summaries, evaluation reports).
        "pickle_io_manager": dg.FilesystemIOManager(
            base_dir=str(settings.data_dir / "dagster_storage")
        ),
        "mlflow": mlflow_tracking.configured({"experiment_name": settings.experiment_name}),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(get_settings()))
