"""The test loop of mmssm's configs (``test_cfg``), for the one OpenMMLab script that builds
mmengine's own Runner whatever ``runner_type`` says: mmseg's test.py (``mim test mmseg``)."""
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop

from mmssm.apis.config_check import check_command_line, check_lengths
from mmssm.apis.errors import user_errors_reported

from .runner import CheckedRunner, check_inputs


@LOOPS.register_module()
class CheckedTestLoop(TestLoop):
    """mmengine's TestLoop. Under a Runner other than CheckedRunner it does CheckedRunner's checks
    of a test run as it is built, before the data set is (the model already is): the command
    line's keys, the batch size, the test data, the checkpoint file. Under any Runner it reports
    an error in the data (e.g. a label value that is no class) as one line (``error: ...``, exit
    code 1)."""

    def __init__(self, runner, dataloader, evaluator, fp16=False):
        if not isinstance(runner, CheckedRunner):  # which has checked all this already
            with user_errors_reported():
                check_command_line(runner.cfg)
                check_lengths(runner.cfg, ['test_dataloader'])
                check_inputs(runner.cfg, ['test_dataloader'], pretrained=False)
        super().__init__(runner, dataloader, evaluator, fp16)

    def run(self):
        with user_errors_reported():
            return super().run()
