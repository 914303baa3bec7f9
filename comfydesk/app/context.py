"""The one place everything is built: stores, app-state models, and how they are wired together.

`build_context(server=..., data_dir=...)` makes an `AppContext`; the main window takes it and binds its views
to the models in it. Nothing here is a module-level singleton: two windows on two data dirs do not meet.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, Signal

from comfydesk.app.catalog import CatalogModel
from comfydesk.app.connection import GATEWAY_KIND, BackendFactory, ConnectionModel
from comfydesk.app.controller import FormMemory, RunController
from comfydesk.app.demo import DEMO_LABEL, DemoEngine, list_samples_on_demo_servers
from comfydesk.app.gallery import GalleryModel
from comfydesk.app.gateway import GatewayState
from comfydesk.app.journal import JournalModel
from comfydesk.app.journal_runs import RunRecorder
from comfydesk.app.library import CurrentWorkflow, LibraryModel
from comfydesk.app.library_thumbs import LIBRARY_THUMB_SIZE, LibraryThumbnails
from comfydesk.app.local_server import LocalServer, LocalServerConfig, ServerState
from comfydesk.app.publish import PublishModel
from comfydesk.app.run_state import RunState
from comfydesk.app.tasks import AppError, ErrorModel, TaskRunner
from comfydesk.app.thumbnails import ThumbnailCache
from comfydesk.backends.base import Backend
from comfydesk.core.errors import AuthenticationError, ComfyDeskError, ServerUnreachable
from comfydesk.store.catalog_cache import CatalogCache, catalogs_dir
from comfydesk.store.paths import AppPaths, resolve_paths
from comfydesk.store.profiles import MANAGED_KIND, Profile, ProfileStore, profile_for_url
from comfydesk.store.secrets import SecretStore
from comfydesk.store.settings import Settings

if TYPE_CHECKING:  # made when first used (the template browser), not at start-up
    from comfydesk.app.templates import TemplateCatalogModel

__all__ = ["SHUTDOWN_TIMEOUT", "AppContext", "build_context", "default_backend_factory", "profile_for_url"]

log = logging.getLogger(__name__)
DEMO_PROFILE_ID = "demo"
SHUTDOWN_TIMEOUT = 3.0
"""Seconds closing may take (network close, demo engine stop); the app quits after them regardless."""


@contextmanager
def _httpx_without_cli() -> Iterator[None]:
    """httpx's first import also imports its command-line client (click, rich, pygments: tens of ms before
    the first request), which the app never runs: kept out of that import. `httpx.main` then says the
    client's dependencies are missing; a later `import httpx._main` loads it as usual."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        yield
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # `from ._main import main` raises ImportError
    try:
        yield
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]


def _exit_over_unreachable(
    local_server: LocalServer, errors: ErrorModel
) -> Callable[[AppError, BaseException | None], AppError]:
    """While the ComfyUI comfydesk started has exited on its own, a request that could not reach it says
    why (the exit reported last, with its code and last lines) instead of "can't reach the server": the
    requests under way when it crashed fail a moment after it is reported, and would otherwise replace it."""

    def translate(error: AppError, exc: BaseException | None) -> AppError:
        if not isinstance(exc, ServerUnreachable) or local_server.state is not ServerState.EXITED:
            return error
        return next((e for e in reversed(errors.history) if e.exception_type == "ServerExited"), error)

    return translate


def default_backend_factory(profile: Profile, secret: str | None) -> Backend:
    """The backend for a profile: native ComfyUI for local/remote, the /api/v1 backend for a gateway."""
    with _httpx_without_cli():
        return _make_backend(profile, secret)


def _make_backend(profile: Profile, secret: str | None) -> Backend:
    if profile.kind == GATEWAY_KIND:
        if not secret:
            raise AuthenticationError(profile.url, 401)  # a gateway always wants a token: say so now
        try:
            from comfydesk.backends.v1 import V1Backend
        except ImportError as exc:  # a build without it
            raise ComfyDeskError(
                "this comfydesk has no /api/v1 gateway backend", hint="Use a ComfyUI profile."
            ) from exc

        backend: Backend = V1Backend(
            profile.url, token=secret, ca_file=profile.ca_file or None, verify_tls=profile.verify_tls
        )
        return backend
    from comfydesk.backends.comfyui import ComfyUIBackend

    return ComfyUIBackend(
        profile.url,
        token=secret if profile.auth == "token" and secret else None,
        basic_auth=(profile.username, secret or "") if profile.auth == "basic" else None,
        ca_file=profile.ca_file or None,
        verify_tls=profile.verify_tls,
    )


class ProfilesModel(QObject):
    """The saved profiles as app state (the dialog binds to it)."""

    profiles_changed = Signal(object)  # list[Profile]

    def __init__(
        self, store: ProfileStore, secrets: SecretStore, settings: Settings, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.secrets = secrets
        self.settings = settings

    def profiles(self) -> list[Profile]:
        return self.store.all()

    def secret(self, profile: Profile) -> str | None:
        return self.secrets.get(profile.secret_key) if profile.auth != "none" else None

    def save(self, profile: Profile, secret: str | None = None) -> None:
        """Save a profile; `secret` None keeps the stored one, "" removes it. A gateway signs in by token."""
        if profile.kind == GATEWAY_KIND and profile.auth != "token":
            profile = profile.with_changes(auth="token", username="")
        self.store.save(profile)
        if profile.auth == "none":
            self.secrets.delete(profile.secret_key)
        elif secret is not None:
            self.secrets.set(profile.secret_key, secret)
        self.profiles_changed.emit(self.store.all())

    def delete(self, profile_id: str) -> None:
        profile = self.store.get(profile_id)
        if profile is not None:
            self.secrets.delete(profile.secret_key)
        self.store.delete(profile_id)
        self.profiles_changed.emit(self.store.all())

    def use_secret_file(self, enabled: bool) -> None:
        """The user's explicit choice: keep tokens in a 0600 file when there is no keyring."""
        self.secrets.use_file(enabled)
        self.settings.secrets_in_file = self.secrets.uses_file


@dataclass
class AppContext:
    """Everything one window uses, built by `build_context`."""

    paths: AppPaths
    settings: Settings
    profiles: ProfilesModel
    secrets: SecretStore
    errors: ErrorModel
    tasks: TaskRunner
    connection: ConnectionModel
    catalog: CatalogModel
    library: LibraryModel
    run_state: RunState
    controller: RunController
    memory: FormMemory
    demo: DemoEngine
    gateway: GatewayState
    publisher: PublishModel
    journal: JournalModel
    recorder: RunRecorder
    gallery: GalleryModel
    server: str | None = None
    local_server: LocalServer | None = None  # a ComfyUI on this computer that comfydesk starts (managed)
    parent: QObject | None = None  # of the models made later (`templates`)
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    _templates: TemplateCatalogModel | None = field(default=None, init=False)
    _closing: bool = field(default=False, init=False)
    _close_requested: bool = field(default=False, init=False)  # close() ran; aclose may not have yet
    _closed: bool = field(default=False, init=False)
    _closed_future: asyncio.Future[None] | None = field(default=None, init=False)

    @property
    def closing(self) -> bool:
        """The window closed (or is closing): nothing new should start."""
        return self._closing or self._close_requested

    @property
    def closed(self) -> bool:
        """True once shutdown has finished (connection closed, demo engine stopped, settings written)."""
        return self._closed

    @property
    def templates(self) -> TemplateCatalogModel:
        """The server's template catalogue, made when first asked for (the template browser): it follows
        the connection's backend and the node catalog from then on, as if it had been there from the start
        (it only remembers them until asked)."""
        if self._templates is None:
            from comfydesk.app.templates import TemplateCatalogModel

            connection, catalog = self.connection, self.catalog
            templates = TemplateCatalogModel(
                self.tasks, self.paths.data_dir / "cache" / "templates", self.parent
            )
            templates.set_backend(connection.backend, connection.url)
            templates.set_catalog(catalog.catalog)
            connection.backend_changed.connect(lambda b: templates.set_backend(b, connection.url))
            catalog.catalog_changed.connect(templates.set_catalog)
            self._templates = templates
        return self._templates

    # -- start-up ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Scan the library and connect to the given server or the last profile; all in the background."""
        if self._closing or self._close_requested:
            return  # the window closed before its deferred start ran
        self.library.refresh()
        # Earlier versions kept results in dated folders: into the journal once (it remembers).
        self.tasks.start(
            self.journal.import_results_dir(self.paths.results_dir), what="Importing earlier results"
        )
        if self.settings.last_workflow:
            self.library.select(self.settings.last_workflow)
        if self.connection.profile is None and not self.demo.starting and not self.demo.running:
            # Not when the user chose a server (or the demo engine) before this deferred start ran.
            self.connect_profile(self.initial_profile(), remember=self.server is None)

    def initial_profile(self) -> Profile:
        return self.profiles.store.starting(self.server, self.settings.last_profile)

    # -- actions the views call --------------------------------------------------------------------
    def connect_profile(self, profile: Profile, *, remember: bool = True) -> None:
        if self._closing or self._close_requested:
            return
        if remember and profile.id not in ("cli", DEMO_PROFILE_ID):
            self.settings.last_profile = profile.id
        if profile.kind == MANAGED_KIND and self.local_server is not None:
            self.tasks.start(self._start_managed(profile), what="Starting ComfyUI on this computer")
            return
        if self.local_server is not None and self.local_server.state is not ServerState.STOPPED:
            self.tasks.start(self.local_server.stop(), what="Stopping the ComfyUI server")
        self.connection.connect_to(profile, self.profiles.secret(profile))

    def _on_local_url(self, url: object) -> None:
        """The managed server answers again (Restart server): reconnect now, not at the next retry."""
        profile = self.connection.profile
        if (
            isinstance(url, str)
            and profile is not None
            and profile.kind == MANAGED_KIND
            and not self._closing
            and profile.url.rstrip("/") == url.rstrip("/")
        ):
            self.connection.reconnect()

    async def _start_managed(self, profile: Profile) -> None:
        """Start the profile's ComfyUI (or find it already answering on its port), then connect to it."""
        assert self.local_server is not None
        port = urlsplit(profile.url).port or 0
        config = LocalServerConfig.from_strings(profile.comfyui_dir, profile.python, profile.extra_args)
        config = LocalServerConfig(config.comfyui_dir, config.python, config.extra_args, port=port)
        url = await self.local_server.start(config)
        if not self._closing:
            self.connection.connect_to(profile.with_changes(url=url), None)

    def retry(self) -> None:
        if self.connection.profile is None:
            self.connect_profile(self.initial_profile())
        else:
            self.connection.reconnect()

    def start_demo(self) -> None:
        """Start the demo engine and connect to it once it listens."""
        self.demo.start()

    def _on_demo_url(self, url: object) -> None:
        if isinstance(url, str) and not self._closing:
            self.library.set_samples_dir(self.demo.samples_dir())
            profile = Profile(id=DEMO_PROFILE_ID, name=DEMO_LABEL, kind="comfyui-local", url=url)
            self.connect_profile(profile, remember=False)

    def _on_current(self, current: object) -> None:
        if isinstance(current, CurrentWorkflow):
            self.settings.last_workflow = current.key
        self.controller.set_current(current if isinstance(current, CurrentWorkflow) else None)

    def _on_renamed(self, old: str, new: str) -> None:
        self.settings.rename_workflow_prefs(old, new)

    # -- shutdown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """The window closes: write the settings now, then shut down on the running loop (`aclose`), or
        right here when no loop runs. Returns at once when a loop runs; `closed` says when it is over."""
        self._close_requested = True
        self.memory.flush()
        self.settings.flush()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.shutdown()
            return
        if not self._closing:
            self.tasks.start(self.aclose(), what="Closing")

    def shutdown(self) -> None:
        """Shut down without a loop: blocking for a moment on the demo engine's thread."""
        self._closing = True
        self.memory.flush()
        if self.local_server is not None:
            self.local_server.kill_now()
        self.demo.stop()
        self.gallery.thumbnails.close()
        self.library.close()
        self.journal.close()
        self._finish()

    async def aclose(self, *, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Shut down in order: stop listening to the backend, let the other tasks end (cancelled when they
        take long), close the backend, stop the demo engine's server thread, write the settings. Given up
        after `timeout` seconds (what still runs is cancelled), but the settings are written and `closed`
        is set either way. A second call waits for the first one."""
        if self._closing:
            if self._closed_future is not None:
                await asyncio.shield(self._closed_future)
            return
        self._closing = True
        self._closed_future = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._shutdown_steps(timeout)
        except TimeoutError:
            log.warning("closing took longer than %.0f s; quitting anyway", timeout)
            self.tasks.cancel_pending()
        finally:
            self.memory.flush()
            self._finish()
            self._closed_future.set_result(None)

    async def _shutdown_steps(self, timeout: float) -> None:
        self.memory.flush()
        await self.connection.stop_listening()
        # Requests in flight end on the open connection (closed or cancelled under one, a pooled socket can be
        # left open), a demo engine that is starting finishes; what takes too long is cancelled.
        await self.tasks.finish_all(grace=timeout * 2 / 3)
        await self.connection.aclose()
        if self.local_server is not None:  # Ctrl+C to the ComfyUI we started, killed if it lingers
            await self.local_server.stop(timeout=timeout / 4)
        await self.demo.astop()
        self.gallery.thumbnails.close()
        self.library.close()
        await self.journal.aclose()
        if self.settings.writer is not None:
            await self.settings.writer.aflush()
        await asyncio.sleep(0)  # closed transports run their last callbacks

    def _finish(self) -> None:
        self.settings.close()  # whatever is still pending is written here, then the writer thread ends
        self.journal.close(wait=False)  # when closing gave up early: the worker finishes it before exit
        for undo in self._cleanups:
            undo()
        self._cleanups.clear()
        self._closed = True


def build_context(
    server: str | None = None,
    data_dir: Path | None = None,
    *,
    backend_factory: BackendFactory | None = None,
    parent: QObject | None = None,
    settings: Settings | None = None,
    profile_store: ProfileStore | None = None,
) -> AppContext:
    """Build every store and model and wire them; no I/O beyond reading the small settings files.

    `settings`: the settings file of this data dir as already read (the window's first frame reads it for
    its size, place and theme); its changes are written in the background from now on. `profile_store`: the
    profiles file of this data dir as already read (the window's start reads it to list the nodes it keeps
    of the server it connects to first).
    """
    paths = resolve_paths(data_dir).ensure()
    errors = ErrorModel(parent)

    def settings_failed(exc: Exception) -> None:
        errors.report_exception(
            ComfyDeskError(f"could not save the settings: {exc}", hint=f"Check {paths.settings_file}."),
            what="Saving settings",
        )

    # Read here, on the UI thread, before the window shows (a few small files); written in the background.
    if settings is None or settings.path != paths.settings_file:
        settings = Settings(paths.settings_file, background=True, on_error=settings_failed)
    else:
        settings.write_in_background(settings_failed)
    secrets = SecretStore(paths.secrets_file, use_file=settings.secrets_in_file)
    if profile_store is None or profile_store.path != paths.profiles_file:
        profile_store = ProfileStore(paths.profiles_file)
    profiles = ProfilesModel(profile_store, secrets, settings, parent)
    for notice in (settings.notice, profile_store.notice):  # a damaged file was set aside: say so once
        if notice:
            errors.report_exception(ComfyDeskError(notice), what="Reading your settings")
    tasks = TaskRunner(errors)
    connection = ConnectionModel(tasks, backend_factory or default_backend_factory, parent)
    catalog = CatalogModel(tasks, parent, cache=CatalogCache(catalogs_dir(paths.data_dir)))
    library = LibraryModel(tasks, paths.library_dir, parent)
    run_state = RunState(parent)
    memory = FormMemory(settings, parent)
    journal = JournalModel(paths.journal_file, paths.blobs_dir, parent)  # opened on its worker thread
    recorder = RunRecorder(journal, connection, tasks, parent)
    # Thumbnails are made on their own pool; the grid pages in from the journal as it scrolls.
    thumbnails = ThumbnailCache(paths.data_dir / "cache" / "thumbnails", parent=parent)
    # The library's own (one thread, small): the gallery's cancels its queue when its filter changes.
    library_cache = ThumbnailCache(thumbnails.cache_dir, size=LIBRARY_THUMB_SIZE, threads=1, parent=parent)
    library.attach_thumbnails(LibraryThumbnails(tasks, journal, library_cache, parent))
    gallery = GalleryModel(journal, thumbnails, tasks, parent=parent)
    controller = RunController(
        tasks,
        connection,
        run_state,
        errors,
        paths.results_dir,
        memory=memory,
        recorder=recorder,
        parent=parent,
    )
    demo = DemoEngine(tasks, paths.demo_dir, parent)
    gateway = GatewayState(connection, errors, parent=parent)
    publisher = PublishModel(tasks, connection, library, errors, parent)
    local_server = LocalServer(tasks, parent)
    # The process ended on its own: say so with its exit code and last lines (not a network blip).
    local_server.exited.connect(lambda exc: errors.report_exception(exc, what="ComfyUI on this computer"))
    errors.translators.append(_exit_over_unreachable(local_server, errors))
    ctx = AppContext(
        paths=paths,
        settings=settings,
        profiles=profiles,
        secrets=secrets,
        errors=errors,
        tasks=tasks,
        connection=connection,
        catalog=catalog,
        library=library,
        run_state=run_state,
        controller=controller,
        memory=memory,
        demo=demo,
        gateway=gateway,
        publisher=publisher,
        journal=journal,
        recorder=recorder,
        gallery=gallery,
        server=server,
        local_server=local_server,
        parent=parent,
    )
    connection.profile_changed.connect(catalog.server_changed)  # the cached catalog at once
    connection.backend_changed.connect(catalog.load_from)
    connection.backend_changed.connect(library.set_backend)
    catalog.catalog_changed.connect(library.set_catalog)
    library.current_changed.connect(ctx._on_current)
    library.renamed.connect(ctx._on_renamed)
    demo.url_changed.connect(ctx._on_demo_url)
    local_server.url_changed.connect(ctx._on_local_url)
    list_samples_on_demo_servers(connection, library)  # in-process or `comfydesk demo-server`
    return ctx
