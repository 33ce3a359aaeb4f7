"""Run the `roadswarm` command as on a dashcam that installed only `roadswarm[edge]`.

The server's libraries are installed in the test environment, so they are hidden instead: the
modules of every distribution the `server` extra needs and the `edge` extra does not (found from
the installed package metadata, transitively) fail to import in the child process.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from functools import cache

from packaging.requirements import Requirement

PRELUDE = """
import importlib.abc, sys
HIDDEN = frozenset(sys.argv.pop(1).split(","))
class HideServerLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, HideServerLibraries())
from roadswarm.cli import main
main(sys.argv[1:])
"""


def _requirements(distribution: str, extras: frozenset[str]) -> set[tuple[str, frozenset[str]]]:
    """The distributions `distribution[extras]` requires directly, with the extras they ask for."""
    found = set()
    for line in metadata.distribution(distribution).requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
            found.add((requirement.name, frozenset(requirement.extras)))
    return found


def _closure(distribution: str, extras: frozenset[str]) -> set[str]:
    """Every distribution `distribution[extras]` needs, transitively (normalised names)."""
    seen: set[str] = set()
    todo = [(distribution, extras)]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in done:
            continue
        done.add((name, wanted))
        try:
            todo += sorted(_requirements(name, wanted), key=str)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here
        seen.add(_normal(name))
    return seen


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@cache
def server_only_modules() -> frozenset[str]:
    """Top-level modules of the distributions only the server extra brings."""
    server_only = _closure("roadswarm", frozenset({"server"})) - _closure(
        "roadswarm", frozenset({"edge"})
    )
    return frozenset(
        module
        for module, owners in metadata.packages_distributions().items()
        if any(_normal(owner) in server_only for owner in owners)
    )


def edge_only_command(*args: str) -> list[str]:
    """`roadswarm ARGS` in a Python that cannot import the server's libraries."""
    hidden = ",".join(sorted(server_only_modules()))
    return [sys.executable, "-c", PRELUDE, hidden, *args]
