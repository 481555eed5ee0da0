from .data_check import check_data, check_weights
from .runner import build_runner, load_config, parse_args, task_of

__all__ = ['build_runner', 'check_data', 'check_weights', 'load_config', 'parse_args', 'task_of']
