"""One restore drill, stage by stage: fetch, decrypt, decompress, restore, check.

Everything a drill writes stays in its own work folder (mode 0700, deleted at the
end whatever happened): the fetched copy, the plaintext, the tools' output.
``pg_dump`` backups are restored into a scratch database on the restore target
(:mod:`.drill_target`); ``tar`` and ``wal`` backups are read and checked here. Every
way a drill can end, including a bug, becomes its outcome: ``passed``, ``failed``
(the tools rejected the catalog's bytes) or ``error`` (the environment failed).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.drill_settings import PASSPHRASE_ENV
from include.backup_integrity.domain import restore_formats as formats
from include.backup_integrity.domain.drills import (
    CHECK,
    DECOMPRESS,
    DECRYPT,
    ERROR,
    FETCH,
    PASSED,
    PG_DUMP,
    RESTORE,
    TAR,
    WAL,
    DrillItem,
    DrillOutcome,
    DrillStop,
    copy_order,
    environment_failed,
    environment_problem,
    rejected,
    tail_of,
)
from include.backup_integrity.stores.fetch import CopyUnusable, TooLarge, fetch_copy
from include.backup_integrity.tasks.drill_target import (
    RestoreTarget,
    create_scratch_database,
    drop_leftovers,
    drop_scratch_database,
    load_restore_target,
    reachable,
    refuse_catalog_database,
    run_checks,
)
from include.backup_integrity.tasks.drill_tools import (
    Deadline,
    ToolRun,
    minimal_env,
    out_of_space,
    private_opener,
    run_tool,
    work_folder_full,
)

if TYPE_CHECKING:
    from include.backup_integrity.config.drill_settings import DrillSettings
    from include.backup_integrity.config.settings import Settings

log = logging.getLogger(__name__)

#: Work folders are named so, under ``work_dir``; older ones than a drill may last are a crash's.
WORK_PREFIX = "restore_drill_work_"
BLOCK = 1024 * 1024


@dataclass
class DrillContext:
    """What every drill of a run shares."""

    settings: Settings
    drill: DrillSettings
    run_id: str
    catalog_identity: tuple[str, str] | None
    passphrase: str | None = None
    target: RestoreTarget | None = None
    target_loader: Any = load_restore_target


@dataclass
class Progress:
    """Where a drill has got to: the last stage reached, the copy used, what was learned."""

    stage: str = FETCH
    source_backend: str | None = None
    bytes_fetched: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def run_drill(item: DrillItem, context: DrillContext) -> DrillOutcome:
    """Drill one backup; every way it can end becomes the outcome, never an exception."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    deadline = Deadline(context.drill.timeout_minutes)
    progress = Progress()
    status, message = ERROR, ""
    work_root = context.drill.work_dir or tempfile.gettempdir()
    work: str | None = None
    try:
        work = _make_work_folder(work_root, context.drill.timeout_minutes)
        message = _drill_in(work, item, context, deadline, progress)
        status = PASSED
    except DrillStop as stop:
        status, message = stop.status, stop.message
        progress.stage = stop.stage
    except OSError as exc:
        status = ERROR
        message = (
            f"no space left in the work folder {work_root!r}"
            if out_of_space(exc)
            else f"the worker failed: {exc}"
        )
    except Exception as exc:  # a drill must always end as a recorded outcome
        log.exception("restore drill of %s broke at stage %s", item["backup_id"], progress.stage)
        status, message = ERROR, f"the drill broke: {type(exc).__name__}: {exc}"
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    finished = datetime.now(UTC)
    outcome = DrillOutcome(
        backup_id=item["backup_id"],
        backup_type=item["backup_type"],
        format=item["format"],
        status=status,
        stage=progress.stage,
        source_backend=progress.source_backend,
        message=message,
        started_at=started.isoformat(timespec="microseconds"),
        finished_at=finished.isoformat(timespec="microseconds"),
        duration_seconds=round(time.monotonic() - clock, 3),
        bytes_fetched=progress.bytes_fetched,
        details=progress.details,
    )
    log.log(
        logging.INFO if status == PASSED else logging.ERROR,
        "restore drill of %s (%s): %s at %s: %s",
        item["backup_id"],
        item["backup_type"],
        status,
        progress.stage,
        message,
    )
    return outcome


def _make_work_folder(work_root: str, timeout_minutes: float) -> str:
    if not os.path.isdir(work_root):
        raise environment_failed(
            FETCH, f"the work folder {work_root!r} (restore_drill.work_dir) does not exist"
        )
    _remove_stale_work_folders(work_root, timedelta(minutes=timeout_minutes))
    return tempfile.mkdtemp(prefix=WORK_PREFIX, dir=work_root)


def _remove_stale_work_folders(work_root: str, timeout: timedelta) -> None:
    """Work folders older than a drill may last were left by a crash: their bytes go."""
    cutoff = time.time() - timeout.total_seconds()
    with contextlib.suppress(OSError), os.scandir(work_root) as entries:
        for entry in entries:
            if entry.name.startswith(WORK_PREFIX) and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        shutil.rmtree(entry.path, ignore_errors=True)


def _drill_in(
    work: str, item: DrillItem, context: DrillContext, deadline: Deadline, progress: Progress
) -> str:
    fetched = fetch(work, item, context, deadline, progress)
    progress.stage = DECRYPT
    plaintext = decrypt(work, fetched, context, deadline)
    progress.stage = DECOMPRESS
    plaintext = decompress(work, plaintext, deadline, progress)
    progress.stage = RESTORE
    if item["format"] == PG_DUMP:
        summary = restore_pg_dump(work, plaintext, item, context, deadline, progress)
    elif item["format"] == TAR:
        summary = check_tar(plaintext, deadline, progress)
    elif item["format"] == WAL:
        summary = check_wal(plaintext, context.settings.wal_segment_bytes, progress)
    else:
        raise environment_failed(RESTORE, f"backup type {item['backup_type']!r} has no drill format")
    progress.stage = CHECK
    return f"restored from {progress.source_backend}: {summary}"


# ----------------------------------------------------------------------------- stages


def fetch(work: str, item: DrillItem, context: DrillContext, deadline: Deadline, progress: Progress) -> str:
    """A copy that is the catalog's bytes (SHA-256 and size), in the work folder.

    Only copies whose last integrity check passed are tried, in the stores' order; one
    that cannot be fetched, differs from the catalog or grows past ``max_bytes`` while
    fetched is set aside for the next.
    """
    size, checksum = item["size_bytes"], (item["checksum"] or "").lower()
    if size is None or len(checksum) != 64:
        raise environment_failed(FETCH, "the catalog records no size or SHA-256 for this backup")
    if size > context.drill.max_bytes:
        raise environment_failed(
            FETCH,
            f"the backup is {size} bytes, more than restore_drill.max_bytes ({context.drill.max_bytes})",
        )
    copies = copy_order(item["copies"], context.settings.store_names)
    if not copies:
        listed = ", ".join(f"{c['backend']}: last check {c['last_check']}" for c in item["copies"]) or "none"
        raise environment_failed(
            FETCH, f"no copy matching the catalog: none whose last integrity check passed ({listed})"
        )
    problems = []
    for index, copy in enumerate(copies):
        destination = os.path.join(work, f"fetched.{index}")
        try:
            got = fetch_copy(
                copy["backend"],
                copy["path"],
                context.settings,
                destination,
                max_bytes=context.drill.max_bytes,
                on_block=lambda: deadline.check(FETCH),
            )
        except (CopyUnusable, TooLarge) as exc:
            # A copy grown past max_bytes is not the catalog's size (checked against it above).
            problems.append(f"{copy['backend']}: {exc}")
            _remove(destination)
            continue
        if got.sha256 == checksum and got.size == size:
            progress.source_backend = copy["backend"]
            progress.bytes_fetched = got.size
            return destination
        problems.append(f"{copy['backend']}: {got.size} bytes with SHA-256 {got.sha256}")
        _remove(destination)
    raise environment_failed(
        FETCH,
        f"no copy matches the catalog ({size} bytes, SHA-256 {checksum}): " + "; ".join(problems),
    )


def decrypt(work: str, source: str, context: DrillContext, deadline: Deadline) -> str:
    """The plaintext of the fetched copy: ``decrypt_command`` from stdin to stdout, or the copy itself."""
    argv = context.drill.decrypt_command
    if not argv:
        return source
    extra = {PASSPHRASE_ENV: context.passphrase} if context.passphrase is not None else {}
    destination = os.path.join(work, "decrypted")
    run = run_tool(
        argv,
        stage=DECRYPT,
        env=minimal_env(work, **extra),
        cwd=work,
        deadline=deadline,
        stdin_path=source,
        stdout_path=destination,
    )
    _remove(source)
    if run.returncode != 0:
        if work_folder_full(work):
            raise environment_failed(DECRYPT, f"no space left in the work folder while {argv[0]} decrypted")
        raise rejected(
            DECRYPT, f"{argv[0]} exited with status {run.returncode}: {tail_of(run.output) or 'no output'}"
        )
    return destination


def decompress(work: str, source: str, deadline: Deadline, progress: Progress) -> str:
    """gzip data (by its magic number) decompressed; anything else as it is."""
    with open(source, "rb") as handle:
        head = handle.read(2)
    if not formats.is_gzip(head):
        return source
    progress.details["gzip"] = True
    destination = os.path.join(work, "plaintext")
    try:
        with gzip.open(source, "rb") as compressed, open(destination, "xb", opener=private_opener) as out:
            while block := compressed.read(BLOCK):
                out.write(block)
                deadline.check(DECOMPRESS)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise rejected(DECOMPRESS, f"the gzip data is damaged: {exc}") from None
    _remove(source)
    return destination


def restore_pg_dump(
    work: str, dump: str, item: DrillItem, context: DrillContext, deadline: Deadline, progress: Progress
) -> str:
    """Restore into a fresh scratch database, run the checks, drop it whatever happened."""
    with open(dump, "rb") as handle:
        archive = formats.pg_dump_archive_format(handle)
        handle.seek(max(os.path.getsize(dump) - formats.TAIL_BYTES, 0))
        tail = handle.read()
    progress.details["archive_format"] = archive
    if archive == formats.FOREIGN_TAR:
        raise rejected(
            RESTORE,
            f"a tar archive that is not pg_dump's tar format (no member is {formats.PG_DUMP_TOC}); "
            "a directory-format dump is not a single file and is not supported",
        )
    if archive == formats.PLAIN_SQL and not formats.plain_dump_is_complete(tail):
        raise rejected(
            RESTORE,
            f"the plain SQL dump does not end with pg_dump's completion trailer "
            f"({formats.COMPLETION_TRAILER!r}): it was cut short",
        )
    target = context.target or context.target_loader()
    context.target = target
    refuse_catalog_database(target, context.catalog_identity)
    leftovers = drop_leftovers(target, timedelta(minutes=context.drill.timeout_minutes))
    if leftovers:
        progress.details["leftovers_dropped"] = leftovers
    scratch = create_scratch_database(target, context.run_id)
    progress.details["scratch_database"] = scratch
    try:
        if archive == formats.PLAIN_SQL:
            argv = [
                "psql",
                "--no-psqlrc",
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                *target.tool_arguments(scratch),
            ]
            argv += ["--file", dump]
        else:
            argv = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
            argv += [*target.tool_arguments(scratch), dump]
        run = run_tool(argv, stage=RESTORE, env=target.tool_env(work), cwd=work, deadline=deadline)
        if run.returncode != 0:
            _raise_tool_failure(argv[0], run, target, work)
        progress.stage = CHECK
        checks = context.drill.checks_for(item["backup_type"])
        run_checks(target, scratch, checks, deadline)
    finally:
        progress.details["scratch_dropped"] = drop_scratch_database(target, scratch)
    restored = "plain SQL dump replayed by psql" if archive == formats.PLAIN_SQL else f"{archive} archive"
    return f"{restored} into a scratch database, {len(checks)} check(s) true"


def _raise_tool_failure(tool: str, run: ToolRun, target: RestoreTarget, work: str) -> None:
    output = tail_of(run.output) or "no output"
    problem = environment_problem(run.output)
    if problem is None and work_folder_full(work):
        problem = "no space left in the work folder"
    if problem is None and not reachable(target):
        problem = "the target server stopped answering"
    if problem is not None:
        raise environment_failed(RESTORE, f"{tool} could not finish: {problem}: {output}")
    raise rejected(RESTORE, f"{tool} exited with status {run.returncode}: {output}")


def check_tar(archive_path: str, deadline: Deadline, progress: Progress) -> str:
    """Every member readable to its end, then: at least one member, and none absolute or with ``..``."""
    names: list[str] = []
    try:
        with tarfile.open(archive_path, mode="r:") as archive:
            for member in archive:
                names.append(member.name)
                if member.isfile():
                    source = archive.extractfile(member)
                    assert source is not None
                    while source.read(BLOCK):
                        deadline.check(RESTORE)
            end = archive.offset
    except (tarfile.TarError, EOFError) as exc:
        raise rejected(RESTORE, f"the tar archive cannot be read to its end: {exc}") from None
    with open(archive_path, "rb") as handle:
        handle.seek(end)
        marker = handle.read(tarfile.BLOCKSIZE)
    if names and (len(marker) < tarfile.BLOCKSIZE or marker.strip(b"\0")):
        raise rejected(
            RESTORE, f"the tar archive stops after member {names[-1]!r} without tar's end-of-archive blocks"
        )
    progress.stage = CHECK
    progress.details["members"] = len(names)
    if not names:
        raise rejected(CHECK, "the tar archive holds no member")
    for name in names:
        problem = formats.tar_member_problem(name)
        if problem:
            raise rejected(CHECK, f"the tar archive is unsafe to extract: {problem}")
    return f"a tar archive of {len(names)} member(s), each read to its end"


def check_wal(segment_path: str, segment_bytes: int, progress: Progress) -> str:
    """Exactly ``wal_segment_bytes`` long, and a valid long page header on the first page."""
    size = os.path.getsize(segment_path)
    if size != segment_bytes:
        raise rejected(RESTORE, f"the WAL segment is {size} bytes, not wal_segment_bytes ({segment_bytes})")
    with open(segment_path, "rb") as handle:
        first_page = handle.read(formats.WAL_HEADER_BYTES)
    progress.stage = CHECK
    problem = formats.wal_segment_problem(size, first_page, segment_bytes)
    if problem:
        raise rejected(CHECK, f"not a valid WAL segment: {problem}")
    version = formats.wal_version(first_page)
    progress.details["postgresql_version"] = version
    return f"a WAL segment of {size} bytes with a valid long page header (PostgreSQL {version})"


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
