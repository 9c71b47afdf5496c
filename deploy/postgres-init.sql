CREATE DATABASE mlflow OWNER airquality;
