from setuptools import find_packages, setup

setup(
    name='mmssm',
    version='0.1.0',
    description='State-space vision backbones (Vim, VMamba, MambaVision) for mmseg and mmdet',
    python_requires='>=3.10',
    # kernels/ imports nothing from OpenMMLab and installs as its own clash-free package
    packages=find_packages(include=['mmssm', 'mmssm.*']) + ['mmssm_kernels'],
    package_dir={'mmssm_kernels': 'kernels'},
    install_requires=['torch', 'triton', 'timm', 'onedl-mmengine', 'onedl-mmsegmentation',
                      'onedl-mmdetection'],
)
