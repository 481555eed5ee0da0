from setuptools import find_packages, setup


def requirements():
    """requirements.txt's pins, less what only the tests need."""
    with open('requirements.txt') as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return [line for line in lines if not line.startswith('pytest')]


with open('README.md', encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmssm',
    version='0.1.0',
    description='State-space vision backbones (Vim, VMamba, MambaVision) for mmseg and mmdet',
    long_description=long_description,
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    # kernels/ imports nothing from OpenMMLab and installs as its own clash-free package
    packages=find_packages(include=['mmssm', 'mmssm.*']) + ['mmssm_kernels'],
    package_dir={'mmssm_kernels': 'kernels'},
    # configs and tools inside the package, where OpenMMLab's packages keep theirs (mmssm/.mim/
    # links to the repo's folders): mmssm::NAME.py and mim find them in an installed wheel
    package_data={'mmssm': ['.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/tools/*.py',
                            '.mim/tools/*.sh', '.mim/tools/**/*.py']},
    install_requires=requirements(),
)
