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
                                     check_lengths)
from mmssm.apis.data_check import check_data, check_samples, check_weights
from mmssm.apis.distributed import COLLECTIVE_TIMEOUT_S, init_cpu_process_group, watch_ranks
from mmssm.apis.errors import user_errors_reported
from mmssm.apis.resume import resume_checkpoint
from mmssm.checkpoints.reading import weights_only_checkpoints
from mmssm.datasets.checks import DataError
from mmssm.registry import register_runner


@register_runner()
class CheckedRunner(Runner):
    """mmengine's Runner, plus:

    - before anything is built: a setting that the command line (``--cfg-options``) put under a
      key the config does not have is refused with the closest key;
    - before training or testing: the data the loaders read, the checkpoints loaded and the
      optimizer settings are checked; each problem is one line (``error: ...``, exit code 1);
    - without a GPU, ``--launcher pytorch|slurm`` runs on gloo, DDP without device_ids, SyncBN as
      BN (mmengine's own set-up pins a CUDA device);
    - ``load_from``, ``resume`` (``--resume`` picks the newest readable checkpoint) and Pretrained
      weights are read weights-only.
    """

    @classmethod
    def from_cfg(cls, cfg):
        with user_errors_reported():
            check_command_line(cfg)
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
        try:
            check_data(self.cfg, loaders)
            check_weights(self.cfg, pretrained=pretrained)
            check_samples(self.cfg, loaders)
        except (FileNotFoundError, DataError) as error:
            sys.exit(f'error: {error}')

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
