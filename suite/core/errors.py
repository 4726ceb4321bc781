"""The errors a user can cause, in one leaf module that every command imports.

`suite.commands.cli.main` turns each of them into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback."""


class UsageError(Exception):
    """Bad input from the user: a flag, a value, a path that cannot be used."""


class PresetError(UsageError, ValueError):
    """A preset name, preset file or axis override that cannot describe a sweep."""


class ResultsError(UsageError, ValueError):
    """A results or metadata file that cannot be read as this suite's format."""
