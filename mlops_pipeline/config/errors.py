"""Configuration errors that name the file, the key path and the problem."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one file at one key path (``key`` is dotted, ``tickers[2]`` for list items)."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """One or more configuration problems; ``str()`` lists every one on its own line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @classmethod
    def single(cls, file: str, key: str, message: str) -> ConfigError:
        return cls([ConfigIssue(file, key, message)])
