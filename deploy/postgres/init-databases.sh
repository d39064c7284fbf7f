#!/bin/sh
# Runs once, on the first start of an empty PostgreSQL volume: one database per service.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname dagster <<SQL
CREATE DATABASE mlflow;
SQL
