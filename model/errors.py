"""The one error the build raises: a clear message, exit code 2."""


class BuildError(Exception):
    """The build cannot go on; the message names the problem."""

    exit_code = 2
