"""mmssm's Runner, chosen by ``runner_type`` in the ``_base_`` runtimes, so that a config runs
alike through tools/train.py and tools/test.py, mmseg's and mmdet's own scripts and ``mim``. It does
what a hook cannot: checks before anything is built, the CPU's distributed set-up and
weights-only reads whatever the process-wide setting. Everything else (seeded samplers, the
checkpoint fit and exact-resume hooks, the annotation check, atomic checkpoints, the collective
timeout) is stated in the config itself."""
import sys

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.runner import Runner

from mmssm.apis.config_check import (ConfigError, check_checkpoint_hook, check_command_line,
                                     check_lengths, check_test_time_augmentation)
from mmssm.apis.data_check import check_data, check_samples, check_weights, data_paths
from mmssm.apis.distributed import COLLECTIVE_TIMEOUT_S, init_cpu_process_group, watch_ranks
from mmssm.apis.errors import user_errors_reported
from mmssm.apis.resume import resume_checkpoint
from mmssm.checkpoints.reading import weights_only_checkpoints
from mmssm.datasets.checks import DataError
from mmssm.registry import register_runner


def _runs(cfg):
    """The data loaders that each kind of run of ``cfg`` reads: training (which validates as it
    goes), validation, testing."""
    runs = []
    if cfg.get('train_cfg'):
        runs.append(['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else []))
    if cfg.get('val_cfg'):
        runs.append(['val_dataloader'])
    if cfg.get('test_cfg'):
        runs.append(['test_dataloader'])
    return [[loader for loader in run if cfg.get(loader)] for run in runs]


def check_inputs(cfg, loaders, pretrained, only=None, whole=None):
    """The data paths of ``loaders`` (those in ``only``, if given), the data sets of ``whole``
    (default: ``loaders``) and the checkpoints the config loads (Pretrained init_cfg files too,
    with ``pretrained``): a problem stops the process with one line."""
    try:
        check_data(cfg, loaders, only=only)
        check_weights(cfg, pretrained=pretrained)
        check_samples(cfg, loaders if whole is None else whole)
    except (FileNotFoundError, DataError) as error:
        sys.exit(f'error: {error}')


def check_before_building(cfg):
    """What a run reads whichever it is (the Runner does not know yet whether it will train or
    test), checked before the Runner builds anything: the command line's keys, test-time
    augmentation, the data paths every kind of run reads (the data root, the split that training
    validates on and testing tests), the data sets read wholly by all of them and ``load_from``.
    What only one kind of run reads (the training split, a Pretrained file) is checked when that
    run starts."""
    check_command_line(cfg)
    check_test_time_augmentation(cfg)
    runs = _runs(cfg)
    paths = {loader: data_paths(cfg, loader) for run in runs for loader in run}
    shared = set.intersection(*[{p for loader in run for p in paths[loader]} for run in runs]
                              ) if runs else set()
    # one loader per data set (the test loader is often the validation one)
    loaders = {frozenset(paths[loader]): loader for loader in reversed(paths)
               if set(paths[loader]) <= shared}
    check_inputs(cfg, list(paths), pretrained=False, only=shared,
                 whole=list(reversed(loaders.values())))


@register_runner()
class CheckedRunner(Runner):
    """mmengine's Runner, plus:

    - before anything is built (:func:`check_before_building`): a setting that the command line
      (``--cfg-options``) put under a key the config does not have is refused with the closest
      key; the data every kind of run reads and ``load_from`` are checked;
    - as training or testing starts: the data only that run reads, the Pretrained files and the
      optimizer settings are checked. Each problem is one line (``error: ...``, exit code 1);
    - without a GPU, ``--launcher pytorch|slurm`` runs on gloo, DDP without device_ids, SyncBN as
      BN (mmengine's own set-up pins a CUDA device);
    - ``load_from``, ``resume`` (``--resume`` picks the newest readable checkpoint) and Pretrained
      weights are read weights-only.
    """

    @classmethod
    def from_cfg(cls, cfg):
        with user_errors_reported():
            check_before_building(cfg)
            return super().from_cfg(cfg)

    def _on_cpu_distributed(self):
        return self.distributed and not torch.cuda.is_available()

    def setup_env(self, env_cfg):
        if self._on_cpu_distributed():
            timeout = env_cfg.get('dist_cfg', {}).get('timeout', COLLECTIVE_TIMEOUT_S)
            init_cpu_process_group(self.launcher, timeout)
        super().setup_env(env_cfg)
        # made while every rank answers, to name a rank that stops answering later
        watch_ranks()

    def wrap_model(self, model_wrapper_cfg, model):
        if self._on_cpu_distributed():
            # DDP on the CPU takes no device_ids, and SyncBN only runs on GPUs
            model = revert_sync_batchnorm(model)
            model_wrapper_cfg = dict(model_wrapper_cfg or dict(
                type='MMDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False)),
                device_ids=None)
        return super().wrap_model(model_wrapper_cfg, model)

    def _check_inputs(self, loaders, pretrained):
        check_lengths(self.cfg, loaders)
        check_inputs(self.cfg, loaders, pretrained)

    def load_or_resume(self):
        if self._resume and self._load_from is None and not self._has_loaded:
            # mmengine would take last_checkpoint even when a kill cut that file short
            self._load_from = resume_checkpoint(self.work_dir)
        super().load_or_resume()

    def train(self):
        with user_errors_reported(), weights_only_checkpoints():
            self._check_inputs(['train_dataloader', 'val_dataloader'], pretrained=True)
            check_checkpoint_hook(self)
            # built now (train() keeps a built one), so that a wrong optimizer setting stops the
            # run before any data is loaded
            try:
                self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
            except (TypeError, KeyError) as error:  # an argument or type it does not have
                raise ConfigError(f'optim_wrapper: {error}') from error
            return super().train()

    def val(self):
        with user_errors_reported(), weights_only_checkpoints():
            self._check_inputs(['val_dataloader'], pretrained=False)
            return super().val()

    def test(self):
        with user_errors_reported(), weights_only_checkpoints():
            self._check_inputs(['test_dataloader'], pretrained=False)
            return super().test()
