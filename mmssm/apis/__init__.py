from .data_check import check_data, check_samples, check_weights
from .resume import resume_checkpoint
from .runner import build_runner, load_config, parse_args, task_of, user_errors_reported

__all__ = ['build_runner', 'check_data', 'check_samples', 'check_weights', 'load_config',
           'parse_args', 'resume_checkpoint', 'task_of', 'user_errors_reported']
