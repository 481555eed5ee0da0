"""Convert a VMamba release checkpoint (MzeroMiko/VMamba, {'model': state_dict}, any of its
layouts: the final models, the first version's names, the single-file model's grouped layers) to
mmssm's backbone layout (mmssm.checkpoints.converting says how it is saved). Loading the release
file directly works too; this saves the conversion.

    python tools/model_converters/vmamba2mmssm.py vssm1_tiny_0230s_ckpt_epoch_264.pth \
        checkpoints/vmamba-t.pth
"""
from mmssm.checkpoints.converting import convert_release
from mmssm.models.backbones.vmamba import convert_official


def main(argv=None):
    convert_release(__doc__, 'VMamba', convert_official, 'layers.0.blocks.0.op.A_logs', argv)


if __name__ == '__main__':
    main()
