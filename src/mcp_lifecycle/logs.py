"""configure_logging: stdlib logging, optionally JSON lines and size-rotated files."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

LOGGER_NAME = "mcp_lifecycle"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_MARK = "_mcp_lifecycle_handler"
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "server"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, server, pid, and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "server": getattr(record, "server", None),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _ServerName(logging.Filter):
    def __init__(self, server_name: str | None) -> None:
        super().__init__()
        self.server_name = server_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.server = self.server_name
        return True


def configure_logging(
    level: str = "INFO",
    log_file: Path | str | None = None,
    json_format: bool = False,
    *,
    max_bytes: int = 10_485_760,
    backup_count: int = 3,
    server_name: str | None = None,
    output_log: Path | str | None = None,
) -> logging.Logger:
    """Configure the root logger and return the library's logger.

    Logs go to stderr, or, with `output_log`, to that file (which stdout and stderr already
    point at) rotated by size; `log_file` adds a size-rotated file. Calling it again replaces
    the handlers it installed before, so reloads do not duplicate output.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter: logging.Formatter = (
        JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s")
    )
    handlers: list[logging.Handler] = []
    if output_log is not None:
        # Imported only here: the CLI's fast path never pays for file handlers.
        from mcp_lifecycle.files.log_files import OutputLogHandler

        handlers.append(
            OutputLogHandler(
                output_log, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        )
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        from mcp_lifecycle.files.log_files import PrivateLogHandler
        from mcp_lifecycle.files.private import check_log_folder, ensure_private_folder

        path = Path(log_file)
        check_log_folder(path)
        ensure_private_folder(path.parent)
        handlers.append(
            PrivateLogHandler(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_ServerName(server_name))
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    return logging.getLogger(LOGGER_NAME)


def configure_for_command() -> None:
    """Set up logging for the command running now if nothing has: a hot command (`cli.fast`)
    leaves it alone until something logs. As the root callback would without --log-level or
    -v (with either, the hot command set it up at once): WARNING. Outside a command, or once
    handlers are in place (ours, a server's, the author's own), it does nothing."""
    from mcp_lifecycle.settings.flags import current_invocation

    if current_invocation() is None or logging.getLogger().handlers:
        return
    configure_logging("WARNING")


def anchor_output_log(folder: Path) -> None:
    """Rotate the detached server's log inside `folder` from now on: the server calls it with
    its held cache root, so a swap of that path for a link cannot take the next log file."""
    for handler in logging.getLogger().handlers:
        anchor = getattr(handler, "anchor", None)
        if getattr(handler, _MARK, False) and anchor is not None:
            anchor(folder)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
