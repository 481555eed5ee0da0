"""Errors in what a user fed a run, reported as one line."""
import contextlib
import sys

from mmssm.checkpoints import CheckpointError, CheckpointWriteError
from mmssm.datasets.checks import DataError

from .config_check import ConfigError
from .distributed import lost_ranks_message

# errors in what the user fed the tool, or its disk: one line, without a traceback
USER_ERRORS = (CheckpointError, CheckpointWriteError, ConfigError, DataError)


@contextlib.contextmanager
def user_errors_reported():
    """Turns an error in the user's input, or a rank that stopped answering, into one line and
    exit code 1. An error raised in a data-loader worker comes back with the worker's traceback in
    its message: only its last line is shown."""
    try:
        yield
    except USER_ERRORS as error:
        message = str(error)
        if 'Traceback' in message:
            message = message.strip().splitlines()[-1].split(': ', 1)[-1]
        sys.exit(f'error: {message}')
    except RuntimeError as error:
        message = lost_ranks_message(error)
        if message is None:
            raise
        sys.exit(message)
