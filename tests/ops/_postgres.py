"""A PostgreSQL server the tests started, and how to reach it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self._execute(f'CREATE DATABASE "{name}"')

    def sessions_opened(self, database: str) -> int:
        """How many connections to ``database`` the server has accepted since it started."""
        return int(self._execute(f"SELECT sessions FROM pg_stat_database WHERE datname = '{database}'")[0][0])

    def terminate_backend(self, pid: int) -> None:
        self._execute(f"SELECT pg_terminate_backend({int(pid)})")

    def _execute(self, statement: str) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()
