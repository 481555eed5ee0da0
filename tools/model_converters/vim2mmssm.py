"""Convert an official Vim checkpoint (hustvl/Vim release, {'model': state_dict}) to mmssm's
backbone layout (mmssm.checkpoints.converting says how it is saved). Loading the release file
directly works too; this saves the conversion.

    python tools/model_converters/vim2mmssm.py vim_t_midclstok_76p1acc.pth checkpoints/vim-ti.pth
"""
from mmssm.checkpoints.converting import convert_release
from mmssm.models.backbones.vim import convert_official


def main(argv=None):
    convert_release(__doc__, 'Vim', convert_official, 'patch_embed.weight', argv)


if __name__ == '__main__':
    main()
