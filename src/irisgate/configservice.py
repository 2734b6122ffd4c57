"""Config versions at run time: load at start, follow the database, accept admin changes.

Versions live in the database with a content hash, so every instance sharing it converges on
the newest version (polled every `config_poll_seconds`, well inside the 2 s promise). A new
version is validated and turned into a `Snapshot` before it is swapped in; an invalid one never
replaces the running config. Requests in flight keep the snapshot they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from irisgate.access.grants import GrantIndex
from irisgate.config.defaults import DEFAULT_CONFIG_TEXT
from irisgate.config.hujson import HuJSONSyntaxError
from irisgate.config.hujson_edit import edit
from irisgate.config.model import ConfigError, ConfigIssue
from irisgate.config.schema import build_config, parse_capability, syntax_issue
from irisgate.config.schema_connectors import save_errors
from irisgate.config.secrets import SecretSource, mask_text, unmask
from irisgate.identity import Identity
from irisgate.settings import Settings
from irisgate.snapshot import Snapshot
from irisgate.store import configs
from irisgate.store.availability import unavailable
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.config")


class StaleHash(Exception):
    """The change was based on a version that is no longer the newest."""


class WouldLockOut(Exception):
    """The change would remove the caller's own admin role."""


@dataclass(frozen=True)
class Applied:
    version: int
    hash: str
    warnings: list[ConfigIssue]


class ConfigService:
    """The current config version (`snapshot`, swapped whole) and the versions to come: an
    admin's `put`, and every `--config-poll-seconds` another instance's. Built by `open`,
    which has loaded the first version, so a snapshot is there from construction on."""

    def __init__(
        self, db: Database, settings: Settings, secrets: SecretSource, snapshot: Snapshot
    ) -> None:
        self._db = db
        self._settings = settings
        self._secrets = secrets
        self.snapshot = snapshot
        self._lock = asyncio.Lock()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    @classmethod
    async def open(cls, db: Database, settings: Settings) -> ConfigService:
        """Load the newest version, importing `--config` (when changed) or the default, and
        start following the database for newer ones."""
        secrets = SecretSource(settings.env, settings.secrets_dir)
        latest = await configs.latest(db)
        path = settings.config_file
        if path is not None:
            latest = await _import_file(db, secrets, path, latest)
        elif latest is None:
            build_config(DEFAULT_CONFIG_TEXT, secrets)
            latest = await _insert_first(db, DEFAULT_CONFIG_TEXT, "default")
        return cls(db, settings, secrets, build_snapshot(latest, secrets))

    def build(self, version: configs.ConfigVersion) -> Snapshot:
        return build_snapshot(version, self._secrets)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._settings.config_poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # keep following: a DB hiccup must not stop config updates
                if unavailable(exc):  # logged once per outage, not once a poll
                    self._db.availability.failed(exc)
                    continue
                log.exception(
                    "config refresh failed; keeping version", version=self.snapshot.version
                )
            else:
                self._db.availability.answered()

    async def refresh(self) -> None:
        newest = await configs.latest_summary(self._db)
        if newest is None or newest.id == self.snapshot.version:
            return
        async with self._lock:
            latest = await configs.latest(self._db)
            if latest is None or latest.id == self.snapshot.version:
                return
            try:
                self.snapshot = self.build(latest)
            except ConfigError as exc:
                log.error(
                    "newer config version is invalid; keeping the running one",
                    version=latest.id,
                    errors=[str(i) for i in exc.issues],
                )
                return
            log.info("config version applied", version=latest.id)

    def masked_text(self) -> str:
        return mask_text(self.snapshot.text)

    async def put(
        self, text: str, base_hash: str, identity: Identity, who: str, *, source: str = "api"
    ) -> Applied:
        """Store a new version made by an admin through the API (`source`: "api", or
        "rollback" for an old version's stored text saved again).

        Raises StaleHash (409), ConfigError (400, every error) or WouldLockOut (403)."""
        return await self._save(lambda _latest: text, base_hash, identity, who, source)

    async def put_value(
        self, value: dict[str, Any], base_hash: str, identity: Identity, who: str
    ) -> Applied:
        """Store a new version holding `value`, written into the stored text in place (only
        the values that changed; comments, order and layout kept). `value` is the config as
        `GET /api/config` shows it: a `"[redacted]"` secret keeps the stored one.

        Raises as `put` does, and TooManyChanges."""

        def text_for(latest: configs.ConfigVersion) -> str:
            return edit(mask_text(latest.content or "{}"), value)

        return await self._save(text_for, base_hash, identity, who, "api")

    async def _save(
        self,
        text_for: Callable[[configs.ConfigVersion], str],
        base_hash: str,
        identity: Identity,
        who: str,
        source: str,
    ) -> Applied:
        async with self._lock:
            latest = await configs.latest(self._db)
            if latest is None or latest.hash != base_hash:
                raise StaleHash
            try:
                full = unmask(text_for(latest), latest.content or "")
            except HuJSONSyntaxError as exc:  # a 400 listing the syntax error, not a 500
                raise ConfigError([syntax_issue(exc)]) from None
            config, warnings = build_config(full, self._secrets)
            refused = save_errors(warnings, allow_local=self._settings.allow_local_connectors)
            if refused:
                raise ConfigError(refused)
            access = GrantIndex(config, parse_capability).access_for(identity)
            if not access.is_admin:
                raise WouldLockOut
            try:
                version = await configs.insert(
                    self._db, full, created_by=who, source=source, parent_id=latest.id
                )
            except configs.StaleVersion:
                raise StaleHash from None
            self.snapshot = self.build(version)
            log.info("config version saved", version=version.id, by=who)
            return Applied(version.id, version.hash, warnings)


def build_snapshot(version: configs.ConfigVersion, secrets: SecretSource) -> Snapshot:
    text = version.content or ""
    config, warnings = build_config(text, secrets)
    for issue in warnings:
        log.warning("config warning", version=version.id, issue=str(issue))
    return Snapshot(
        version=version.id,
        hash=version.hash,
        text=text,
        config=config,
        created_at=version.created_at,
    )


async def _import_file(
    db: Database, secrets: SecretSource, path: Path, latest: configs.ConfigVersion | None
) -> configs.ConfigVersion:
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    build_config(text, secrets)  # raises ConfigError: refuse to start on it
    source = f"file:{await asyncio.to_thread(path.resolve)}"
    digest = configs.content_hash(text)
    history = await configs.history(db, limit=1000)
    imported = next((v.hash for v in history if v.source == source), None)
    if latest is not None and digest in (latest.hash, imported):
        return latest  # unchanged since it was last imported: keep later API edits
    try:
        version = await configs.insert(
            db,
            text,
            created_by="irisgate",
            source=source,
            parent_id=latest.id if latest else None,
        )
    except configs.StaleVersion:
        # another instance stored a version meanwhile (typically the same file, started
        # together): decide again against the newest
        newest = await configs.latest(db)
        assert newest is not None
        if newest.hash == digest:
            return newest
        return await _import_file(db, secrets, path, newest)
    log.info("imported config file", path=str(path), version=version.id)
    return version


async def _insert_first(db: Database, text: str, source: str) -> configs.ConfigVersion:
    try:
        return await configs.insert(db, text, created_by="irisgate", source=source, parent_id=None)
    except configs.StaleVersion:  # another instance stored the first version just now
        latest = await configs.latest(db)
        assert latest is not None
        return latest
