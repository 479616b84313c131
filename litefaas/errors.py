"""The one base class of every error the litefaas tools raise.

Library code (the client, local serving, packaging, deployment, the benchmarks, the simulator)
raises its own :class:`ToolError` subclass, defined beside it, with a message fit to show a person;
only :mod:`litefaas.cli` turns these into messages and exit codes. This module imports nothing, so
every part of the project may import it.
"""

from __future__ import annotations


class ToolError(Exception):
    """A litefaas tool cannot go on; the message says why."""


class CommandError(ToolError):
    """A command's arguments or inputs are wrong (raised by :mod:`litefaas.cli` only). Exit code 2."""
