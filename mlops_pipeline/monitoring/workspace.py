"""Where monitoring snapshots live: an evidently workspace, local (embedded) or behind `evidently ui`.

:class:`LocalWorkspace` writes evidently's own on-disk layout (``<project>/metadata.json``,
``dashboard.json``, ``snapshots/<id>.json``) that ``evidently ui --workspace`` serves and watches;
every file is written whole in a staging folder next to the workspace and renamed into it, so the
UI (and a crash) never sees half a file, and the UI's file watcher sees the rename as a new file
(a rename inside the workspace would go unnoticed until the UI restarts). A project's metadata is
written last, after its dashboard. Reading the workspace does not load its other snapshots, as
evidently's ``Workspace`` object does on creation.
:class:`RemoteWorkspace` writes through evidently's remote workspace API with timeouts.

Both keep one project per team, under a stable id (found again by id, then by name, created only
when neither exists) with its dashboard rewritten only when it changed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.monitoring.dashboard import build_dashboard, project_id, project_name
from mlops_pipeline.monitoring.results import ModelKind

if TYPE_CHECKING:
    import pandas as pd
    from evidently.core.report import Snapshot
    from evidently.sdk.models import DashboardModel

    from mlops_pipeline.config.settings import PlatformSettings

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0
GET_ATTEMPTS = 3


class WorkspaceError(RuntimeError):
    """The evidently workspace could not be read or written; the message names it."""


def _same(left: DashboardModel, right: DashboardModel) -> bool:
    return json.loads(left.json()) == json.loads(right.json())


class MonitoringWorkspace(ABC):
    """One team project per team; snapshots added, replaced and exported by id."""

    def __init__(self, ui_url: str) -> None:
        self.ui_url = ui_url.rstrip("/")

    @property
    @abstractmethod
    def location(self) -> str:
        """The workspace's folder or URL (for messages)."""

    def dashboard_url(self, project: str) -> str:
        return f"{self.ui_url}/projects/{project}"

    def snapshot_url(self, project: str, snapshot: str) -> str:
        return f"{self.ui_url}/projects/{project}/reports/{snapshot}"

    def ensure_project(self, team: str, tickers: list[str], kind: ModelKind) -> str:
        """The team's project id: found by id, then by name, else created with its dashboard."""
        desired = build_dashboard(team, tickers, kind)
        stable = str(project_id(team))
        if self._has_project(stable):
            found = stable
        else:
            named = self._find_project(project_name(team))
            found = named if named is not None else self._create_project(stable, team, desired)
        if not _same(self._dashboard(found), desired):
            self._save_dashboard(found, desired)
        return found

    @abstractmethod
    def _has_project(self, project: str) -> bool: ...

    @abstractmethod
    def _find_project(self, name: str) -> str | None: ...

    @abstractmethod
    def _create_project(self, project: str, team: str, dashboard: DashboardModel) -> str: ...

    @abstractmethod
    def _dashboard(self, project: str) -> DashboardModel: ...

    @abstractmethod
    def _save_dashboard(self, project: str, dashboard: DashboardModel) -> None: ...

    @abstractmethod
    def add_snapshot(self, project: str, snapshot: Snapshot) -> str:
        """Store ``snapshot`` in ``project``; return its id."""

    @abstractmethod
    def delete_snapshot(self, project: str, snapshot: str) -> None:
        """Remove a snapshot (a superseded run of the same session); absent ones are ignored."""

    @abstractmethod
    def snapshot_html(self, project: str, snapshot: str) -> str:
        """evidently's self-contained HTML rendering of a stored snapshot."""

    @abstractmethod
    def ensure_dataset(self, project: str, name: str, frame: pd.DataFrame, description: str) -> str:
        """The id of the project's dataset called ``name``, uploading ``frame`` if there is none."""


def _dataset(frame: pd.DataFrame) -> Any:
    from evidently import DataDefinition, Dataset

    numeric = [column for column in frame.columns if column != "date"]
    return Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=numeric))


class LocalWorkspace(MonitoringWorkspace):
    """evidently's local workspace layout under ``path`` (served by ``evidently ui --workspace``)."""

    def __init__(self, path: Path, ui_url: str) -> None:
        super().__init__(ui_url)
        self.path = path
        self.staging = path.parent / f".{path.name}.staging"  # same file system, outside the watched tree

    @property
    def location(self) -> str:
        return str(self.path)

    def _state(self) -> Any:
        from evidently.ui.storage.local.base import LocalState

        return LocalState(str(self.path))

    def _write(self, target: Path, payload: Any) -> None:
        from evidently.legacy.utils import NumpyEncoder

        target.parent.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.staging, suffix=".partial")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(payload, out, cls=NumpyEncoder)
            os.chmod(temporary, 0o644)  # readable by an `evidently ui` running as another user
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _metadata_path(self, project: str) -> Path:
        from evidently.ui.storage.local.base import PROJECT_FILE_NAME

        return self.path / project / PROJECT_FILE_NAME

    def _snapshot_path(self, project: str, snapshot: str) -> Path:
        from evidently.ui.storage.local.base import SNAPSHOTS_DIR_NAME

        return self.path / project / SNAPSHOTS_DIR_NAME / f"{snapshot}.json"

    def _has_project(self, project: str) -> bool:
        return self._metadata_path(project).is_file()

    def _find_project(self, name: str) -> str | None:
        if not self.path.is_dir():
            return None
        for metadata in sorted(self.path.glob("*/metadata.json")):
            try:
                if json.loads(metadata.read_text(encoding="utf-8")).get("name") == name:
                    return metadata.parent.name
            except (OSError, json.JSONDecodeError):
                continue
        return None

    def _create_project(self, project: str, team: str, dashboard: DashboardModel) -> str:
        from evidently.sdk.models import ProjectModel
        from evidently.ui.storage.local.base import SNAPSHOTS_DIR_NAME

        self._save_dashboard(project, dashboard)
        (self.path / project / SNAPSHOTS_DIR_NAME).mkdir(parents=True, exist_ok=True)
        model = ProjectModel(
            id=uuid.UUID(project), name=project_name(team), description=f"Monitoring of team {team}"
        )
        self._write(self._metadata_path(project), json.loads(model.json()))  # last: the project now exists
        return project

    def _dashboard(self, project: str) -> DashboardModel:
        return self._state().read_dashboard(project)

    def _save_dashboard(self, project: str, dashboard: DashboardModel) -> None:
        from evidently.ui.storage.local.base import DASHBOARD_FILE_NAME

        self._write(self.path / project / DASHBOARD_FILE_NAME, json.loads(dashboard.json()))

    def add_snapshot(self, project: str, snapshot: Snapshot) -> str:
        import uuid6

        snapshot_id = str(uuid6.uuid7())
        self._write(self._snapshot_path(project, snapshot_id), snapshot.to_snapshot_model().dict())
        return snapshot_id

    def delete_snapshot(self, project: str, snapshot: str) -> None:
        self._snapshot_path(project, snapshot).unlink(missing_ok=True)

    def snapshot_html(self, project: str, snapshot: str) -> str:
        from evidently.core.report import Snapshot

        if not self._snapshot_path(project, snapshot).is_file():
            raise WorkspaceError(
                f"snapshot {snapshot} is not in {self._snapshot_path(project, snapshot).parent}"
            )
        model = self._state().read_snapshot(project, snapshot)
        return Snapshot.load_model(model).get_html_str(as_iframe=False)

    def ensure_dataset(self, project: str, name: str, frame: pd.DataFrame, description: str) -> str:
        # evidently's Workspace object manages datasets; it loads every snapshot when created,
        # which is why it is only opened for this rare write.
        from evidently.ui.workspace import Workspace

        workspace = Workspace(str(self.path))
        for info in workspace.list_datasets(project).datasets:
            if info.name == name:
                return str(info.id)
        return str(workspace.add_dataset(project, _dataset(frame), name, description))


class RemoteWorkspace(MonitoringWorkspace):
    """A running ``evidently ui``, written through evidently's remote workspace API."""

    def __init__(self, url: str, ui_url: str, secret: str | None = None) -> None:
        super().__init__(ui_url)
        self.url = url.rstrip("/")
        self.client = _timed_client(self.url, secret)

    @property
    def location(self) -> str:
        return self.url

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self.client._request(path, method, **kwargs)
        except Exception as exc:  # requests and evidently errors alike: name the server and the call
            raise WorkspaceError(f"evidently UI at {self.url}: {what} failed: {exc}") from exc

    def _has_project(self, project: str) -> bool:
        from evidently.errors import EvidentlyError

        try:
            self.client._request(f"/api/projects/{project}/info", "GET")
        except EvidentlyError as exc:
            if "not found" in str(exc):
                return False
            raise WorkspaceError(
                f"evidently UI at {self.url}: reading project {project} failed: {exc}"
            ) from exc
        except Exception as exc:
            raise WorkspaceError(
                f"evidently UI at {self.url}: reading project {project} failed: {exc}"
            ) from exc
        return True

    def _find_project(self, name: str) -> str | None:
        found = self._call("searching projects", "GET", f"/api/projects/search/{name}").json()
        return str(found[0]["id"]) if found else None

    def _create_project(self, project: str, team: str, dashboard: DashboardModel) -> str:
        from evidently.sdk.models import ProjectModel

        model = ProjectModel(
            id=uuid.UUID(project), name=project_name(team), description=f"Monitoring of team {team}"
        )
        self._call("creating the project", "POST", "/api/v2/projects", body=json.loads(model.json()))
        try:
            self._save_dashboard(project, dashboard)
        except WorkspaceError:
            self._call("removing the half-created project", "DELETE", f"/api/v2/projects/{project}")
            raise
        return project

    def _dashboard(self, project: str) -> DashboardModel:
        from evidently.sdk.models import DashboardModel

        return DashboardModel.parse_obj(
            self._call("reading the dashboard", "GET", f"/api/v2/dashboards/{project}").json()
        )

    def _save_dashboard(self, project: str, dashboard: DashboardModel) -> None:
        self._call(
            "saving the dashboard", "POST", f"/api/v2/dashboards/{project}", body=json.loads(dashboard.json())
        )

    def add_snapshot(self, project: str, snapshot: Snapshot) -> str:
        response = self._call(
            "adding the snapshot", "POST", f"/api/v2/snapshots/{project}", body=snapshot.dump_dict()
        )
        return str(response.json()["snapshot_id"])

    def delete_snapshot(self, project: str, snapshot: str) -> None:
        self._call("deleting a superseded snapshot", "DELETE", f"/api/projects/{project}/{snapshot}")

    def snapshot_html(self, project: str, snapshot: str) -> str:
        response = self._call(
            f"exporting snapshot {snapshot}",
            "GET",
            f"/api/projects/{project}/{snapshot}/download",
            query_params={"report_format": "html"},
        )
        return response.content.decode("utf-8")

    def ensure_dataset(self, project: str, name: str, frame: pd.DataFrame, description: str) -> str:
        try:
            for info in self.client.list_datasets(project).datasets:
                if info.name == name:
                    return str(info.id)
            return str(self.client.add_dataset(project, _dataset(frame), name, description))
        except Exception as exc:
            raise WorkspaceError(
                f"evidently UI at {self.url}: storing dataset {name!r} failed: {exc}"
            ) from exc


def _timed_client(url: str, secret: str | None) -> Any:
    """evidently's RemoteWorkspace with a timeout on every request and bounded retries of reads."""
    import requests
    from evidently._pydantic_compat import parse_obj_as
    from evidently.errors import EvidentlyError
    from evidently.ui.workspace import RemoteWorkspace as EvidentlyRemoteWorkspace

    class TimedRemoteWorkspace(EvidentlyRemoteWorkspace):
        def _request(  # type: ignore[override]
            self,
            path: str,
            method: str,
            query_params: dict | None = None,
            body: dict | None = None,
            response_model: Any = None,
            cookies: Any = None,
            headers: dict[str, str] | None = None,
            form_data: bool = False,
        ) -> Any:
            prepared = self._prepare_request(
                path, method, query_params, body, cookies, headers, form_data=form_data
            ).prepare()
            attempts = GET_ATTEMPTS if method == "GET" else 1
            with requests.Session() as session:
                for attempt in range(1, attempts + 1):
                    try:
                        response = session.send(prepared, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
                        break
                    except (requests.ConnectionError, requests.Timeout):
                        if attempt == attempts:
                            raise
                        time.sleep(0.5 * attempt)
            if response.status_code >= 400:
                try:
                    detail = response.json().get("detail")
                except ValueError:
                    detail = None
                if detail:
                    raise EvidentlyError(str(detail))
            response.raise_for_status()
            if response_model is not None:
                return parse_obj_as(response_model, response.json())
            return response

    try:
        return TimedRemoteWorkspace(url, secret=secret)
    except Exception as exc:
        raise WorkspaceError(f"no evidently UI answers at {url} (MLOPS_EVIDENTLY_URL): {exc}") from exc


def workspace_from_settings(settings: PlatformSettings) -> MonitoringWorkspace:
    """The remote workspace when ``MLOPS_EVIDENTLY_URL`` is set, else the local one."""
    ui_url = str(settings.evidently_ui_url)
    if settings.evidently_url:
        secret = settings.evidently_secret.get_secret_value() if settings.evidently_secret else None
        return RemoteWorkspace(settings.evidently_url, ui_url, secret)
    return LocalWorkspace(settings.evidently_workspace_path, ui_url)
