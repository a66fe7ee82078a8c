"""The evaluator's report: PNG plots and an HTML page that shows them with the metrics table."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from hydranet_ros.bag.scores import DISTANCE_BINS, REL_ERROR_BINS, format_table


def _figure(width=7.0, height=4.0, ncols=1):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, ncols, figsize=(width, height), dpi=100)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def write_report(scores, summary: dict, out: Path) -> Path:
    """Writes the plots that have data and report.html into out; returns the HTML path."""
    out = Path(out)
    pages = []   # (title, file name)
    if scores.seg is not None and summary.get('segmentation'):
        names = list(summary['segmentation']['per_class_iou'])
        ious = [np.nan if v is None else v for v in summary['segmentation']['per_class_iou'].values()]
        plt, fig, ax = _figure(8, 4)
        ax.bar(range(len(ious)), np.nan_to_num(ious), color='tab:blue')
        ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
        ax.set_ylim(0, 1)
        ax.set_ylabel('IoU')
        ax.set_title(f"Per-class IoU (mIoU {summary['segmentation']['miou']:.3f})")
        pages.append(('Segmentation: per-class IoU', _save(plt, fig, out / 'segmentation_iou.png')))
        conf = scores.seg.confusion.astype(np.float64)
        norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        plt, fig, ax = _figure(7, 6)
        im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel('predicted')
        ax.set_ylabel('ground truth')
        ax.set_title('Confusion matrix (rows normalised)')
        fig.colorbar(im, ax=ax)
        pages.append(('Segmentation: confusion matrix', _save(plt, fig, out / 'segmentation_confusion.png')))
    if summary.get('depth'):
        plt, fig, (ax1, ax2) = _figure(10, 4, ncols=2)
        centers = (REL_ERROR_BINS[:-1] + REL_ERROR_BINS[1:]) / 2
        ax1.bar(centers, scores.depth_rel_hist, width=REL_ERROR_BINS[1] - REL_ERROR_BINS[0], color='tab:orange')
        ax1.set_xlabel('(predicted - true) / true  (clipped to [-1, 1])')
        ax1.set_ylabel('pixels')
        ax1.set_title('Depth relative error')
        s, n = scores.depth_by_distance[:, 0], scores.depth_by_distance[:, 1]
        labels = [f'{a:g}-{b:g}' for a, b in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:])]
        ax2.bar(range(len(s)), np.where(n > 0, s / np.maximum(n, 1), 0), color='tab:orange')
        ax2.set_xticks(range(len(s)), labels, rotation=45, ha='right')
        ax2.set_xlabel('true distance (m)')
        ax2.set_ylabel('AbsRel')
        ax2.set_title(f"Error vs distance (AbsRel {summary['depth']['abs_rel']:.3f})")
        pages.append(('Depth: error histogram and error vs distance', _save(plt, fig, out / 'depth_error.png')))
    if summary.get('flow') and scores.flow_epe_map is not None:
        epe = scores.flow_epe_map[..., 0] / np.maximum(scores.flow_epe_map[..., 1], 1)
        epe[scores.flow_epe_map[..., 1] == 0] = np.nan
        h, w = epe.shape
        plt, fig, ax = _figure(min(12, 2 + 8 * w / max(h, w) * 1.2), 4)
        top = max(np.nanpercentile(epe, 99), 1e-3) if np.isfinite(epe).any() else 1
        im = ax.imshow(epe, cmap='magma', vmin=0, vmax=top)
        ax.set_title(f"Mean flow EPE per pixel over the drive (EPE {summary['flow']['epe']:.2f} px); "
                     'blank: never valid')
        ax.axis('off')
        fig.colorbar(im, ax=ax, label='px')
        pages.append(('Flow: end-point error map', _save(plt, fig, out / 'flow_epe_map.png')))
    if scores.det is not None and summary.get('detection'):
        plt, fig, ax = _figure(6, 5)
        names = list(summary['detection']['per_class_ap50'])
        for c, name in enumerate(names):
            recall, precision = scores.det.precision_recall(c, 0.5)
            if recall.size:
                ap = summary['detection']['per_class_ap50'][name]
                ax.plot(recall, precision, label=f'{name} (AP50 {ap:.2f})' if ap is not None else name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel('recall')
        ax.set_ylabel('precision')
        ax.set_title(f"Detection PR at IoU 0.5 (mAP@0.5 {summary['detection']['map50']:.3f})")
        ax.legend(loc='lower left')
        pages.append(('Detection: precision-recall', _save(plt, fig, out / 'detection_pr.png')))
    if scores.latency:
        lat = np.array([r[1:] for r in scores.latency], np.float64)
        plt, fig, ax = _figure(8, 4)
        for col, label in ((1, 'receipt to outputs'), (2, 'inference'), (3, 'queue')):
            ax.plot(lat[:, 0], lat[:, col], '.-', ms=3, label=label)
        ax.set_xlabel('stream time (s)')
        ax.set_ylabel('ms')
        ax.set_title('Latency over time (from the node\'s stats topic)')
        ax.legend()
        pages.append(('Latency over time', _save(plt, fig, out / 'latency.png')))
    body = [f'<h1>hydranet_ros evaluation</h1><pre>{html.escape(format_table(summary))}</pre>',
            '<p>Bags: ' + ', '.join(html.escape(b) for b in summary['bags']) + '</p>']
    for title, name in pages:
        body.append(f'<h2>{html.escape(title)}</h2><img src="{html.escape(name)}" alt="{html.escape(title)}">')
    page = out / 'report.html'
    page.write_text('<!doctype html><html><head><meta charset="utf-8"><title>hydranet_ros evaluation</title>'
                    '<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}</style>'
                    '</head><body>' + '\n'.join(body) + '</body></html>\n')
    return page
