"""The ``litefaas`` command: :mod:`litefaas.cli.main` builds the parser and runs a command.

One module per command group; each defines ``register(commands)``, which adds its parsers and sets
each one's ``handler``. Command modules import nothing heavy at module level, so ``--help`` is
instant. Only this package turns tool errors into messages and exit codes.
"""
