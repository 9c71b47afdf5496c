"""Column names shared by every frame, the model and the service (one place, no drift).

Units (documented once, here): pollutants in ug/m3, ``aqi`` OWM index 1-5; ``temp``/``dew``/
``feelslike`` degC, ``humidity``/``cloudcover``/``precipprob`` %, ``precip`` mm, ``snow``/
``snowdepth`` cm, ``windspeed``/``windgust`` km/h, ``winddir`` degrees (from), ``pressure``
hPa, ``visibility`` km, ``solarradiation`` W/m2, ``solarenergy`` MJ/m2; ``is_rain``/``is_snow``
0/1 flags derived from Visual Crossing's ``preciptype``.
"""

LOCATION = "location"
TIME = "time"  # tz-aware UTC, on the whole hour

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
