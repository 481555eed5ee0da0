"""The benchmark's outputs: a Markdown table (console and README alike), a JSON file with every
repeat and the environment, and a plot of img/s and memory against resolution."""
import json
from dataclasses import asdict
import platform

import torch

MIB = 2**20


def _ratio(value):
    return '–' if value is None else f'{value:.2f}x'


def table(results, reference):
    """Markdown table, one row per (mode, shape, model); ratios are to ``reference``."""
    lines = [
        f'| mode | shape | batch | model | img/s | spread | vs {reference} | extra MiB | '
        f'vs {reference} |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        shape = f'{r.shape[0]}x{r.shape[1]}'
        if r.error:
            lines.append(f'| {r.mode} | {shape} | {r.batch} | {r.model} | {r.error} | | | | |')
            continue
        memory = '–' if r.peak_bytes is None else f'{r.peak_bytes / MIB:.1f}'
        lines.append(f'| {r.mode} | {shape} | {r.batch} | {r.model} | {r.img_per_s:.3g} | '
                     f'±{100 * r.spread / 2:.0f}% | {_ratio(r.speed_ratio)} | {memory} | '
                     f'{_ratio(r.memory_ratio)} |')
    return '\n'.join(lines)


def environment(device):
    device = torch.device(device)
    env = dict(torch=torch.__version__, python=platform.python_version(), device=str(device),
               cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    return env


def write_json(path, results, settings, command, config, reference, saved=None):
    payload = dict(
        command=command, config=config, reference=reference, settings=vars(settings),
        environment=environment(settings.device),
        memory_measure=('torch.cuda.max_memory_allocated during one step minus what was '
                        'allocated before it' if settings.device.startswith('cuda') else
                        'running maximum of the CPU allocator\'s allocations and frees during one '
                        'step (torch.profiler, profile_memory=True), from what was allocated '
                        'before it'),
        results=[r.to_dict() for r in results])
    if saved is not None:
        payload['saved_activations'] = {shape: [asdict(b) for b in blocks]
                                        for shape, blocks in saved.items()}
    with open(path, 'w') as f:
        json.dump(payload, f, indent=1)


def plot(path, results, title):
    """img/s and extra memory against the image side, one line per model, a column per mode."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    modes = sorted({r.mode for r in results})
    fig, axes = plt.subplots(2, len(modes), figsize=(5 * len(modes), 7), squeeze=False)
    for col, mode in enumerate(modes):
        rows = [r for r in results if r.mode == mode and not r.error]
        for model in dict.fromkeys(r.model for r in rows):
            mine = sorted((r for r in rows if r.model == model), key=lambda r: r.shape[0] * r.shape[1])
            sides = [(r.shape[0] * r.shape[1])**0.5 for r in mine]
            axes[0][col].plot(sides, [r.img_per_s for r in mine], marker='o', label=model)
            if all(r.peak_bytes is not None for r in mine):
                axes[1][col].plot(sides, [r.peak_bytes / MIB for r in mine], marker='o',
                                  label=model)
        axes[0][col].set_title(f'{mode}')
        axes[0][col].set_ylabel('img/s')
        axes[1][col].set_ylabel('peak MiB above weights')
        for ax in axes[:, col]:
            ax.set_xlabel('image side (sqrt(H*W))')
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
