"""Convert an official MambaVision checkpoint (NVIDIA's release ``mambavision_*.pth.tar``, or a
dense model trained with the official mmseg/mmdet code) to mmssm's backbone layout
(mmssm.checkpoints.converting says how it is saved). Loading the release file directly works
too; this saves the conversion.

    python tools/model_converters/mambavision2mmssm.py mambavision_tiny_1k.pth.tar \
        checkpoints/mambavision-t.pth
"""
from mmssm.checkpoints.converting import convert_release
from mmssm.models.backbones.mambavision import convert_official


def main(argv=None):
    convert_release(__doc__, 'MambaVision', convert_official, 'patch_embed.conv_down.', argv)


if __name__ == '__main__':
    main()
