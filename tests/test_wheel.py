"""The wheel a user installs: configs and tools inside the package (``mmssm/.mim``), the pinned
dependencies in its metadata, and a model built from an ``mmssm::`` config in an environment that
does not see the repository."""
import shutil
import subprocess
import sys

import pytest

from test_tools_e2e import REPO

CHECK = r'''
import importlib.metadata as metadata, os, sys
import mmssm
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmssm.apis.cli import config_path
assert mmssm.__file__.startswith(sys.prefix), mmssm.__file__
requires = metadata.requires('mmssm')
assert 'onedl-mmcv==2.3.6' in requires and 'onedl-mmsegmentation==1.4.2' in requires, requires
assert 'State-space vision backbones' in metadata.metadata('mmssm')['Description']
cfg = Config.fromfile(config_path('mmssm::upernet_vim-ti_ade20k.py'))
# mmengine's own resolution of PACKAGE::FOLDER/NAME.py (get_config, _base_), which wants a folder
from mmengine.hub import get_config, get_model
demo = get_config('mmssm::demo/upernet_vim-demo_synthetic-ade20k.py')
try:
    get_config('mmssm::upernet_vim-ti_ade20k.py')
except ValueError as error:
    assert 'relative config path' in str(error), error
else:
    raise AssertionError('mmengine now resolves a name without a folder: update the README')
with open('user.py', 'w') as f:
    f.write("_base_ = ['mmssm::demo/upernet_vim-demo_synthetic-ade20k.py']\n")
user = Config.fromfile('user.py')
# mmengine builds every object of an mmssm:: base in scope mmssm (mmssm.registry)
assert user.model.type == 'SSMEncoderDecoder' and user.model._scope_ == 'mmssm', user.model
init_default_scope('mmseg')
for model in [MODELS.build(c.model) for c in (cfg, demo, user)] + [
        get_model('mmssm::demo/upernet_vim-demo_synthetic-ade20k.py')]:
    print(type(model.backbone).__name__, sum(p.numel() for p in model.parameters()))
assert os.path.isfile(os.path.join(os.path.dirname(mmssm.__file__), '.mim/tools/train.py'))
'''


@pytest.mark.slow
def test_wheel_ships_configs_and_pins(tmp_path):
    source = tmp_path / 'source'
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', 'data', 'build', '*.egg-info', '__pycache__'))
    pip = [sys.executable, '-m', 'pip']
    subprocess.run([*pip, 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w',
                    tmp_path / 'dist', source], check=True, cwd=tmp_path)
    wheel, = (tmp_path / 'dist').glob('mmssm-*.whl')

    # a scratch environment that sees the installed dependencies but not the repository
    scratch = tmp_path / 'scratch'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', scratch], check=True)
    python = scratch / 'bin/python'
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                           '["purelib"])'], check=True, text=True, capture_output=True).stdout
    # this interpreter's site-packages folders as plain paths: their .pth files, which put the
    # repository's editable install on the path, are not read from there
    dependencies = [p for p in sys.path if p.endswith('site-packages')]
    (scratch / site.strip() / 'zz_dependencies.pth').write_text('\n'.join(dependencies) + '\n')
    subprocess.run([*pip, '--python', python, 'install', '-q', '--no-deps', wheel], check=True)
    out = subprocess.run([python, '-c', CHECK], cwd=tmp_path, text=True, capture_output=True,
                         env={'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    built = [line.split() for line in out.stdout.splitlines() if line.startswith('VisionMamba')]
    assert len(built) == 4 and built[1] == built[2] == built[3]
    assert round(int(built[0][1]) / 1e6, 2) == 12.31  # UperNet + Vim-Ti, as in the README
