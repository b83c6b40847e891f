"""Which workflows run for which event: a plain table, read top to bottom.

An event whose (provider, type) is not here is stored and marked `ignored`."""

from __future__ import annotations

from collections.abc import Mapping

from handlers import system
from handlers.context import Workflow

Routes = Mapping[tuple[str, str], tuple[Workflow, ...]]

ROUTES: Routes = {
    ("github", "ping"): (system.acknowledge_ping,),
}
