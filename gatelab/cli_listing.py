"""The commands that list what is registered: ``mixers`` (token mixers, channel mixers, residuals) and ``tasks``."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from .registry import CHANNEL_MIXERS, MIXERS, RESIDUALS
from .train.tasks import TASKS


def cmd_mixers(args: argparse.Namespace, console: Console) -> None:
    for registry, title in ((MIXERS, "token mixers (model.mixer)"), (CHANNEL_MIXERS, "channel mixers (model.channel)"),
                            (RESIDUALS, "residual connections (model.residual)")):
        table = Table(title=f"registered {title}")
        for col in ("key", "class", "description", "paper"):
            table.add_column(col)
        for key in registry.names():
            cls = registry.get(key)
            table.add_row(key, cls.__name__, cls.description, cls.paper)
        console.print(table)


def cmd_tasks(args: argparse.Namespace, console: Console) -> None:
    table = Table(title="tasks (--task)")
    for col in ("key", "config", "metric", "description", "paper"):
        table.add_column(col)
    for key, cls in TASKS.items():
        table.add_row(key, cls.field or "", cls.metric, cls.description, cls.paper)
    console.print(table)
