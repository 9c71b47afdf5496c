"""Column names shared by every frame, the model and the service (one place, no drift).

Units (documented once, here): pollutants in ug/m3, ``aqi`` OWM index 1-5; ``temp``/``dew``/
``feelslike`` degC, ``humidity``/``cloudcover``/``precipprob`` %, ``precip`` mm, ``snow``/
``snowdepth`` cm, ``windspeed``/``windgust`` km/h, ``winddir`` degrees (from), ``pressure``
hPa, ``visibility`` km, ``solarradiation`` W/m2, ``solarenergy`` MJ/m2; ``is_rain``/``is_snow``
0/1 flags derived from Visual Crossing's ``preciptype``.
"""

LOCATION = "location"
TIME = "time"  # tz-aware UTC, on the whole hour
#: A weather forecast's row: when it was issued (UTC, whole hour) and how many hours after
#: that its target hour ``time`` lies (``lead = (time - issue_time) / 1 h``).
ISSUE_TIME = "issue_time"
LEAD = "lead"
#: Hours ahead a weather forecast is kept for (leads 1..48).
FORECAST_HOURS = 48

POLLUTANTS: tuple[str, ...] = ("co", "no", "no2", "o3", "so2", "pm2_5", "pm10", "nh3")
AQI = "aqi"

WEATHER: tuple[str, ...] = (
    "temp",
    "feelslike",
    "humidity",
    "dew",
    "precip",
    "precipprob",
    "snow",
    "snowdepth",
    "windgust",
    "windspeed",
    "winddir",
    "pressure",
    "visibility",
    "cloudcover",
    "solarradiation",
    "solarenergy",
    "uvindex",
    "is_rain",
    "is_snow",
)

#: column -> (what it is, unit or ""): the descriptions the Pandera models carry, which the
#: Dagster UI shows in each frame's column schema.
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    LOCATION: ("configured location name", ""),
    TIME: ("start of the hour, UTC", ""),
    ISSUE_TIME: ("when the forecast was issued, UTC (a whole hour)", ""),
    LEAD: ("hours from the issue time to the target hour", "h"),
    "co": ("carbon monoxide", "ug/m3"),
    "no": ("nitrogen monoxide", "ug/m3"),
    "no2": ("nitrogen dioxide", "ug/m3"),
    "o3": ("ozone", "ug/m3"),
    "so2": ("sulphur dioxide", "ug/m3"),
    "pm2_5": ("fine particulate matter (PM2.5)", "ug/m3"),
    "pm10": ("coarse particulate matter (PM10)", "ug/m3"),
    "nh3": ("ammonia", "ug/m3"),
    AQI: ("OpenWeatherMap air-quality index, 1 (good) to 5 (very poor)", "index"),
    "temp": ("air temperature", "degC"),
    "feelslike": ("apparent temperature", "degC"),
    "humidity": ("relative humidity", "%"),
    "dew": ("dew point", "degC"),
    "precip": ("precipitation in the hour", "mm"),
    "precipprob": ("probability of precipitation", "%"),
    "snow": ("snowfall in the hour", "cm"),
    "snowdepth": ("snow depth", "cm"),
    "windgust": ("wind gust", "km/h"),
    "windspeed": ("wind speed", "km/h"),
    "winddir": ("wind direction (from)", "degrees"),
    "pressure": ("sea-level pressure", "hPa"),
    "visibility": ("visibility", "km"),
    "cloudcover": ("cloud cover", "%"),
    "solarradiation": ("solar radiation", "W/m2"),
    "solarenergy": ("solar energy in the hour", "MJ/m2"),
    "uvindex": ("UV index", "index"),
    "is_rain": ("rain in the hour (Visual Crossing preciptype)", "0/1"),
    "is_snow": ("snow in the hour (Visual Crossing preciptype)", "0/1"),
}


def column_description(column: str) -> str | None:
    """``"fine particulate matter (PM2.5), ug/m3"``; None for an undocumented column."""
    if column not in COLUMN_DOCS:
        return None
    what, unit = COLUMN_DOCS[column]
    return f"{what}, {unit}" if unit else what
