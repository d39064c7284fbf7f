"""Team overlays read from git refs in a temporary repository (no checkout of the working tree)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.git_source import CONFIG_COMMIT_TAG, parse_git_source
from mlops_pipeline.config.teams import load_teams


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repo(project: Path) -> Path:
    """The project copy as a git repository: main as copied, branch team/red with a changed overlay,
    branch team/broken with an invalid one. The working tree stays on main."""
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "main")
    red = project / "teams/red.yaml"
    original = red.read_text()
    _git(project, "checkout", "-q", "-b", "team/red")
    red.write_text(original + "costs: {slippage_bps: 9}\n")
    _git(project, "commit", "-q", "-am", "red: more slippage")
    _git(project, "checkout", "-q", "-b", "team/broken", "main")
    red.write_text(original.replace("return_window_timeseries.yaml", "lstm.yaml"))
    _git(project, "commit", "-q", "-am", "red: missing ludwig config")
    _git(project, "checkout", "-q", "main")
    assert red.read_text() == original
    return project


def _load(project: Path, **kwargs):
    return load_teams(project / "teams", project / "ludwig_configs", **kwargs)


def test_overlay_from_branch_records_commit_and_leaves_worktree(repo: Path) -> None:
    sha = _git(repo, "rev-parse", "team/red")
    teams = _load(repo, sources={"red": "git:team/red:teams/red.yaml"})
    assert teams["red"].costs.slippage_bps == 9
    assert teams["red"].source is not None and teams["red"].source.commit == sha
    assert teams["red"].source.tags()[CONFIG_COMMIT_TAG] == sha
    assert teams["blue"].source is not None and teams["blue"].source.commit is None
    # the working tree is untouched and still resolves to main's overlay
    assert _git(repo, "status", "--porcelain") == ""
    assert _load(repo)["red"].costs.slippage_bps == 5
    # the config hash describes the content, not where it came from
    assert teams["red"].config_hash != _load(repo)["red"].config_hash


def test_path_defaults_to_the_teams_overlay(repo: Path) -> None:
    assert _load(repo, only=["red"], sources={"red": "git:team/red"})["red"].costs.slippage_bps == 9


def test_source_in_base_yaml(repo: Path) -> None:
    base = repo / "teams/base.yaml"
    base.write_text(base.read_text() + 'teams:\n  red: {source: "git:team/red:teams/red.yaml"}\n')
    teams = _load(repo)
    assert teams["red"].costs.slippage_bps == 9
    assert teams["blue"].costs.slippage_bps == 5


def test_invalid_branch_blocks_only_its_team(repo: Path) -> None:
    errors: dict[str, ConfigError] = {}
    teams = _load(repo, sources={"red": "git:team/broken"}, source_errors=errors)
    assert set(teams) == {"blue"}
    (line,) = str(errors["red"]).splitlines()
    sha = _git(repo, "rev-parse", "team/broken")
    assert line.startswith(f"git:team/broken:teams/red.yaml@{sha[:8]}: model.ludwig_config: ")
    assert "'lstm.yaml' not found" in line
    # without somewhere to put per-team errors, loading fails as a whole
    with pytest.raises(ConfigError, match=r"git:team/broken:teams/red\.yaml"):
        _load(repo, sources={"red": "git:team/broken"})


def test_missing_ref_and_missing_file(repo: Path) -> None:
    errors: dict[str, ConfigError] = {}
    teams = _load(
        repo, sources={"red": "git:team/nope", "blue": "git:team/red:teams/green.yaml"}, source_errors=errors
    )
    assert teams == {}
    assert (
        str(errors["red"]) == f"git:team/nope:teams/red.yaml: unknown git ref 'team/nope' in {repo.resolve()}"
    )
    assert "file 'teams/green.yaml' not found at ref 'team/red'" in str(errors["blue"])


def test_team_only_on_a_branch(repo: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "team/green")
    (repo / "teams/green.yaml").write_text("tickers: [IBM]\n")
    _git(repo, "add", "teams/green.yaml")
    _git(repo, "commit", "-q", "-m", "green")
    _git(repo, "checkout", "-q", "main")
    teams = _load(repo, only=["green"], sources={"green": "git:team/green"})
    assert teams["green"].tickers == ["IBM"]


def test_bad_source_entries_name_the_key(repo: Path) -> None:
    base = repo / "teams/base.yaml"
    base.write_text(base.read_text() + "teams:\n  red: {src: x}\n")
    with pytest.raises(ConfigError) as err:
        _load(repo)
    assert str(err.value).startswith("teams/base.yaml: teams.red: must be")
    with pytest.raises(ValueError, match="invalid git ref '--upload-pack=x'"):
        parse_git_source("git:--upload-pack=x", "teams/red.yaml")
    with pytest.raises(ValueError, match=r"relative \.yaml path"):
        parse_git_source("git:main:../secrets.yaml", "teams/red.yaml")


def test_not_a_repository(project: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a git repository"):
        _load(project, sources={"red": "git:main"})
