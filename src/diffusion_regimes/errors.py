"""Errors a user can act on.  The CLI prints their message (no traceback) and exits with status 2."""


class PipelineError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(PipelineError, ValueError):
    """An invalid configuration value; the message names the key and the valid choices."""


class DataError(PipelineError):
    """Missing, corrupt or insufficient input data; the message names the file and where to get it."""


class TrainingError(PipelineError):
    """Training cannot continue (e.g. a non-finite loss); the message says what was kept."""


class OutputError(PipelineError):
    """An output cannot be written (e.g. a folder without write permission); the message names the folder."""
