"""The multi-task training loop: config in, checkpoint out (CPU, CUDA with AMP, DDP)."""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from hydranet_ros import TASKS
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.training import losses as L
from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.datasets import FolderDataset, SyntheticDataset
from hydranet_ros.training.evaluation import evaluate, headline
from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES


@dataclass
class TrainConfig:
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = 'hydranet'

    @classmethod
    def load(cls, path) -> 'TrainConfig':
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(raw) - {'model', 'data', 'train', 'name'})
        if unknown:
            raise ValueError(f'{path}: unknown sections {unknown}')
        return cls(**raw)

    def resolved(self) -> tuple[dict, dict]:
        """(train, data) settings: the defaults with this config's values merged in, nested
        dicts key by key (`weights: {segmentation: 2}` keeps the other tasks' weights); an
        unknown key is a ValueError naming it."""
        return _merged(DEFAULT_TRAIN, self.train, 'train'), _merged(DEFAULT_DATA, self.data, 'data')


DEFAULT_TRAIN = dict(steps=1000, batch_size=8, lr=2e-3, weight_decay=1e-4, head_lr={}, balancing='fixed',
                     weights={'segmentation': 1.0, 'depth': 1.0, 'flow': 0.2, 'detection': 1.0},
                     consistency=0.0, eval_every=250, eval_samples=64, seed=0, amp=True, tasks=list(TASKS),
                     output='models/hydranet_trained.pt', resume=None, init_from=None, log_every=10, augment=True,
                     threads=0)
DEFAULT_DATA = dict(type='synthetic', camera='kitti', input_size=[128, 416], train_seeds=list(range(20)),
                    frames_per_seed=40, val_seeds=[1000, 1001], val_frames_per_seed=20, root=None,
                    # The dataset's classes, recorded in the checkpoint: [{name, color}] and [name].
                    segmentation_classes=[{'name': n, 'color': list(c)} for n, c in SEGMENTATION_CLASSES],
                    detection_classes=list(DETECTION_CLASSES))
#: Settings whose value is a table of the user's own keys (merged key by key, any key allowed).
_OPEN_TABLES = {'weights', 'head_lr'}


def _merged(defaults: dict, given: dict, section: str) -> dict:
    unknown = sorted(set(given or {}) - set(defaults))
    if unknown:
        raise ValueError(f'{section}: unknown keys {unknown}; known: {sorted(defaults)}')
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key in _OPEN_TABLES and isinstance(value, dict):
            out[key] = {**(defaults[key] or {}), **value}
        else:
            out[key] = value
    return out


def _dist():
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_datasets(data: dict, model_cfg: HydraNetConfig, rank: int = 0, augment: bool = True):
    if data['type'] == 'synthetic':
        train = SyntheticDataset(data['train_seeds'][rank::max(1, int(os.environ.get('WORLD_SIZE', '1')))]
                                 or data['train_seeds'], data['frames_per_seed'], data['input_size'],
                                 data['camera'], model_cfg.num_detection_classes, augment=augment)
        val = SyntheticDataset(data['val_seeds'], data['val_frames_per_seed'], data['input_size'],
                               data['camera'], model_cfg.num_detection_classes)
        return train, val
    if data['type'] == 'folder':
        return (FolderDataset(data['root'], data['input_size'], model_cfg.num_detection_classes, augment=augment),
                None)
    raise ValueError(f"data.type must be 'synthetic' or 'folder', got '{data['type']}'")


def compute_losses(model, batch, tasks, cfg: HydraNetConfig, consistency: float):
    out = model(batch['image'], tasks, previous_images=batch['prev_image'] if 'flow' in tasks else None)
    losses = {}
    if 'segmentation' in tasks:
        losses['segmentation'] = L.segmentation_loss(out['segmentation'], batch['segmentation'],
                                                     batch['has_segmentation'])
    if 'depth' in tasks:
        losses['depth'] = L.depth_loss(out['depth'], batch['depth'], batch['has_depth'], cfg.depth_min, cfg.depth_max)
    if 'flow' in tasks:
        losses['flow'] = L.flow_loss(out['flow'], batch['flow'], batch['has_flow'])
    if 'detection' in tasks:
        losses['detection'] = L.detection_loss(out['detection'], batch['det_heat'], batch['det_size'],
                                               batch['det_offset'], batch['det_mask'], batch['has_detection'],
                                               cfg.num_detection_classes)
    extra = None
    if consistency > 0 and 'depth' in tasks:
        extra = consistency * L.depth_edge_consistency(out['depth'], batch['segmentation'],
                                                       batch['has_segmentation'] & batch['has_depth'])
    return losses, extra


class InitFromError(ValueError):
    """The init_from checkpoint cannot start this network (missing, unreadable or another network)."""


def init_from_checkpoint(model: HydraNet, path) -> str:
    """Start from a trained HydraNet checkpoint: copy every tensor whose name and shape match,
    keep the new modules' initial weights (e.g. a flow level added to a trained model).
    Raises InitFromError when the file is not a readable checkpoint or fewer than half of its
    tensors fit (another network, not a fine-tuning start)."""
    from hydranet_ros.model.checkpoint import CheckpointError, load_checkpoint
    try:
        source = load_checkpoint(path).model.state_dict()
    except (CheckpointError, OSError) as exc:
        raise InitFromError(f'init_from: {exc}') from exc
    own = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if 2 * len(loaded) < len(source):
        raise InitFromError(f'init_from {path}: only {len(loaded)} of its {len(source)} tensors fit this '
                         'architecture; it is not a start for this network')
    mismatched = sorted(k for k in source if k in own and own[k].shape != source[k].shape)
    model.load_state_dict(loaded, strict=False)
    new = sorted(set(own) - set(loaded))
    return (f'init_from {path}: {len(loaded)} tensors loaded, {len(new)} new'
            + (f', {len(mismatched)} with other shapes kept new' if mismatched else '')
            + (f' (first new: {new[0]})' if new else ''))


def train(config: TrainConfig, progress: bool = True, log=print) -> dict:
    rank, world = _dist()
    tcfg, dcfg = config.resolved()
    seg_classes = [c if isinstance(c, dict) else {'name': str(c), 'color': [128, 128, 128]}
                   for c in dcfg['segmentation_classes']]
    mcfg = HydraNetConfig.from_dict({'num_classes': len(seg_classes),
                                     'num_detection_classes': len(dcfg['detection_classes']), **config.model})
    # Checked before any step: the checkpoint records these names (a mismatch used to fail at saving).
    if mcfg.num_classes != len(seg_classes) or mcfg.num_detection_classes != len(dcfg['detection_classes']):
        raise ValueError(f'model: {mcfg.num_classes} segmentation / {mcfg.num_detection_classes} detection classes, '
                         f'but data names {len(seg_classes)} / {len(dcfg["detection_classes"])} '
                         f'(data.segmentation_classes, data.detection_classes)')
    tasks = [t for t in TASKS if t in tcfg['tasks']]
    seed = int(tcfg['seed']) + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(int(tcfg['seed']))     # same initial weights on every rank
    if tcfg['threads']:
        torch.set_num_threads(int(tcfg['threads']))
    if torch.cuda.is_available():
        device = torch.device('cuda', rank % max(torch.cuda.device_count(), 1))
    else:
        device = torch.device('cpu')
    t_data = time.time()
    train_set, val_set = make_datasets(dcfg, mcfg, rank, augment=bool(tcfg['augment']))
    data_s = time.time() - t_data
    if rank == 0:
        log(f'data: {len(train_set)} training pairs, {len(val_set) if val_set else 0} validation pairs '
            f'({data_s:.0f} s to render)')
    model = HydraNet(mcfg).to(device)
    if tcfg['init_from'] and not (tcfg['resume'] and Path(tcfg['resume']).is_file()):
        report = init_from_checkpoint(model, tcfg['init_from'])
        if rank == 0:
            log(report)
    balancer = LossBalancer(tasks, tcfg['balancing'], tcfg['weights']).to(device)
    head_lr = tcfg['head_lr'] or {}
    groups = [{'params': list(model.encoder.parameters()) + list(model.decoder.parameters()), 'lr': tcfg['lr']}]
    for t in TASKS:
        groups.append({'params': list(model.heads[t].parameters()), 'lr': float(head_lr.get(t, tcfg['lr']))})
    groups.append({'params': list(balancer.parameters()), 'lr': tcfg['lr'], 'weight_decay': 0.0})
    optimizer = torch.optim.AdamW(groups, weight_decay=tcfg['weight_decay'])
    base_lrs = [g['lr'] for g in optimizer.param_groups]
    step = 0
    history = []
    if tcfg['resume'] and Path(tcfg['resume']).is_file():
        state = torch.load(tcfg['resume'], map_location=device, weights_only=True)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        balancer.load_state_dict(state['balancer'])
        step, history = int(state['step']), list(state.get('history', []))
        if rank == 0:
            log(f'resumed from {tcfg["resume"]} at step {step}')
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    use_amp = bool(tcfg['amp']) and device.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
    rng = np.random.default_rng(seed)
    total_steps = int(tcfg['steps'])
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, desc='train', dynamic_ncols=True)
    started = time.time()
    running = {t: [] for t in tasks}
    model.train()
    while step < total_steps:
        lr_scale = 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1)))
        warm = min(1.0, (step + 1) / 50)
        for g, base in zip(optimizer.param_groups, base_lrs):
            g['lr'] = base * lr_scale * warm
        idx = rng.integers(0, len(train_set), int(tcfg['batch_size']))
        items = [train_set[int(i)] for i in idx]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        with torch.autocast(device.type, enabled=use_amp):
            losses, extra = compute_losses(net if world > 1 else model, batch, tasks, mcfg, float(tcfg['consistency']))
            total = balancer({k: v.float() for k, v in losses.items()})
            if extra is not None:
                total = total + extra
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        for t, v in losses.items():
            running[t].append(float(v.detach()))
        if bar is not None:
            bar.update(1)
            if step % int(tcfg['log_every']) == 0:
                bar.set_postfix({t[:3]: f'{np.mean(v[-20:]):.3f}' for t, v in running.items() if v})
        epoch_len = max(len(train_set) // int(tcfg['batch_size']), 1)
        if step % epoch_len == 0:
            balancer.end_epoch({t: float(np.mean(v[-epoch_len:])) for t, v in running.items() if v})
        if rank == 0 and val_set is not None and (step % int(tcfg['eval_every']) == 0 or step == total_steps):
            metrics = evaluate(model, val_set, tasks, max_samples=int(tcfg['eval_samples']))
            head = headline(metrics)
            history.append({'step': step, **head, 'weights': balancer.current_weights(),
                            'elapsed_s': time.time() - started})
            log(f'step {step}: ' + ', '.join(f'{k} {v:.3f}' for k, v in head.items()))
        if rank == 0 and (step % int(tcfg['eval_every']) == 0 or step == total_steps):
            state_path = Path(tcfg['output']).with_suffix('.state.pt')
            state_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                        'balancer': balancer.state_dict(), 'step': step, 'history': history}, state_path)
    if bar is not None:
        bar.close()
    elapsed = time.time() - started
    result = {'steps': step, 'train_seconds': elapsed, 'history': history}
    if rank == 0:
        summary = {'data': {k: dcfg[k] for k in ('type', 'camera', 'input_size', 'frames_per_seed')}
                   | {'train_seeds': f"{len(dcfg['train_seeds'])} seeds", 'val_seeds': dcfg['val_seeds']},
                   'steps': step, 'batch_size': tcfg['batch_size'], 'balancing': tcfg['balancing'],
                   'train_seconds': round(elapsed, 1), 'render_seconds': round(data_s, 1),
                   'device': str(device), 'world_size': world, 'final': history[-1] if history else {}}
        meta = CheckpointMetadata(
            architecture=mcfg.to_dict(), tasks=tasks,
            segmentation_classes=seg_classes, detection_classes=[str(n) for n in dcfg['detection_classes']],
            input_size=list(dcfg['input_size']),
            name=config.name, training=json.loads(json.dumps(summary, default=str)))
        sha = save_checkpoint(tcfg['output'], model.cpu(), meta)
        result['sha256'] = sha
        result['output'] = tcfg['output']
        log(f'saved {tcfg["output"]} (sha256 {sha[:12]}) after {step} steps in {elapsed:.0f} s')
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result
