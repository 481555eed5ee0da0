from .cli import build_runner, load_config, parse_args
from .data_check import check_data, check_samples, check_weights
from .errors import user_errors_reported
from .resume import resume_checkpoint

__all__ = ['build_runner', 'check_data', 'check_samples', 'check_weights', 'load_config',
           'parse_args', 'resume_checkpoint', 'user_errors_reported']
