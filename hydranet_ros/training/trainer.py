"""The multi-task training loop: config in, checkpoint out (CPU, CUDA with AMP, DDP)."""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hydranet_ros import TASKS
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.training import losses as L
from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.evaluation import evaluate, headline
from hydranet_ros.training.generalisation import EncoderRecipe
from hydranet_ros.training.settings import TrainConfig, _architecture
from hydranet_ros.training.sources import augmentation_from, make_datasets
from hydranet_ros.world.camera import checkpoint_focal_px


def _dist():
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _weights(batch, key):
    """A batch's label weights, or None when every one is 1 (real labels: the unweighted losses)."""
    w = batch.get(key)
    if w is None or bool((w == 1).all()):
        return None
    return w


def compute_losses(model, batch, tasks, cfg: HydraNetConfig, ssl=None):
    """({task: loss} for the tasks labelled in the batch, the extra terms added to the balanced
    total (weighted self-supervision) or None, {self-supervised term: unweighted value}). A task
    no sample of the batch labels is left out of the dict, so it neither counts as a zero loss in
    the running means (DWA) nor moves its learned weight. (Cross-task consistency terms were
    measured and removed: docs/MODEL.md, "Cross-task consistency".)"""
    out = model(batch['image'], tasks, previous_images=batch['prev_image'] if 'flow' in tasks else None)
    losses = {}
    if 'segmentation' in tasks:
        losses['segmentation'] = L.segmentation_loss(out['segmentation'], batch['segmentation'],
                                                     batch['has_segmentation'], weight=_weights(batch, 'seg_weight'))
    if 'depth' in tasks:
        losses['depth'] = L.depth_loss(out['depth'], batch['depth'], batch['has_depth'], cfg.depth_min, cfg.depth_max,
                                       weight=_weights(batch, 'depth_weight'))
    if 'flow' in tasks:
        losses['flow'] = L.flow_loss(out['flow'], batch['flow'], batch['has_flow'])
    if 'detection' in tasks:
        losses['detection'] = L.detection_loss(out['detection'], batch['det_heat'], batch['det_size'],
                                               batch['det_offset'], batch['det_mask'], batch['has_detection'],
                                               cfg.num_detection_classes, ignore=batch.get('det_ignore'),
                                               weight=_weights(batch, 'det_weight'))
    labelled = {t: bool(batch[f'has_{t}'].any()) for t in losses}
    # the unlabelled tasks' zero terms (0 x the outputs) stay in the total: a batch that labels
    # nothing still has a graph to step through, and every DDP process the same parameters in it
    unlabelled = [v for t, v in losses.items() if not labelled[t]]
    losses = {t: v for t, v in losses.items() if labelled[t]}
    extra = sum(unlabelled) if unlabelled else None
    terms = {}
    if ssl is not None:
        terms = ssl.terms(getattr(model, 'module', model), batch, out)
        if terms:
            extra = ssl.total(terms) if extra is None else extra + ssl.total(terms)
    return losses, extra, terms


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


def _model_config(config: TrainConfig, dcfg: dict) -> tuple[HydraNetConfig, list]:
    """The network's configuration and the dataset's segmentation classes ({name, color}), checked
    against each other before any step (the checkpoint records these names)."""
    seg_classes = [c if isinstance(c, dict) else {'name': str(c), 'color': [128, 128, 128]}
                   for c in dcfg.segmentation_classes]
    mcfg = HydraNetConfig.from_dict({'num_classes': len(seg_classes),
                                     'num_detection_classes': len(dcfg.detection_classes),
                                     **_architecture(config.model)})
    if mcfg.num_classes != len(seg_classes) or mcfg.num_detection_classes != len(dcfg.detection_classes):
        raise ValueError(f'model: {mcfg.num_classes} segmentation / {mcfg.num_detection_classes} detection classes, '
                         f'but data names {len(seg_classes)} / {len(dcfg.detection_classes)} '
                         f'(data.segmentation_classes, data.detection_classes)')
    return mcfg, seg_classes


def _class_indices(names, seg_classes: list, key: str) -> list[int]:
    """Segmentation class names -> the model's class indices; an unknown name is refused with the list."""
    known = [c['name'] for c in seg_classes]
    unknown = [str(n) for n in names if n not in known]
    if unknown:
        raise ValueError(f'{key}: {unknown} are not segmentation classes of this model; they are {known}')
    return [known.index(n) for n in names]


def _seed_and_device(tcfg: dict, rank: int) -> torch.device:
    seed = int(tcfg.seed) + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(int(tcfg.seed))     # same initial weights on every rank
    if tcfg.threads:
        torch.set_num_threads(int(tcfg.threads))
    if torch.cuda.is_available():
        return torch.device('cuda', rank % max(torch.cuda.device_count(), 1))
    return torch.device('cpu')


def _optimizer(model: HydraNet, balancer: LossBalancer, tcfg: dict) -> torch.optim.Optimizer:
    """AdamW with one group for the shared encoder + decoder, one per head (head_lr), one for the
    balancer's learned weights (no decay)."""
    head_lr = tcfg.head_lr or {}
    encoder_lr = tcfg.lr if tcfg.encoder_lr is None else float(tcfg.encoder_lr)
    groups = [{'params': list(model.encoder.parameters()), 'lr': encoder_lr},
              {'params': list(model.decoder.parameters()), 'lr': tcfg.lr}]
    for t in TASKS:
        groups.append({'params': list(model.heads[t].parameters()), 'lr': float(head_lr.get(t, tcfg.lr))})
    groups.append({'params': list(balancer.parameters()), 'lr': tcfg.lr, 'weight_decay': 0.0})
    return torch.optim.AdamW(groups, weight_decay=tcfg.weight_decay)


def _learning_rate_scale(step: int, total_steps: int, warmup_steps: int = 50) -> float:
    """Cosine decay over the run, linear warm-up over its first steps."""
    return 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1))) * min(1.0, (step + 1) / warmup_steps)


def _state_path(tcfg: dict) -> Path:
    return Path(tcfg.output).with_suffix('.state.pt')


def _data_rngs(train_set) -> list:
    """The random generators that decide what the next batches are: the sampler's is passed
    separately; these are the datasets' own (augmentation), mixtures' parts included."""
    parts = getattr(train_set, 'parts', [train_set])
    return [p.rng for p in parts if isinstance(getattr(p, 'rng', None), np.random.Generator)]


def _save_state(path: Path, model, optimizer, balancer, step: int, history: list, rng=None, scaler=None,
                running=None, train_set=None, ssl=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rngs = ([rng] if rng is not None else []) + (_data_rngs(train_set) if train_set is not None else [])
    torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                'balancer': balancer.state_dict(), 'step': step, 'history': history,
                'data_rng': json.dumps([g.bit_generator.state for g in rngs]),
                'scaler': scaler.state_dict() if scaler is not None else None,
                'running': json.dumps(running) if running is not None else None,
                'self_supervision': ssl.state_dict() if ssl is not None else None}, path)


def _resume(path, device, model, optimizer, balancer, rng=None, scaler=None, running=None,
            train_set=None, ssl=None) -> tuple[int, list]:
    """Everything a run needs to go on as if it never stopped, from a .state.pt: model, optimiser,
    balancing state (DWA history included), the data position (the sampler's random state), the
    loss scaler and the running losses (DWA's epochs)."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    balancer.load_state_dict(state['balancer'])
    rngs = ([rng] if rng is not None else []) + (_data_rngs(train_set) if train_set is not None else [])
    saved = json.loads(state['data_rng']) if state.get('data_rng') else []
    for generator, saved_state in zip(rngs, saved):
        generator.bit_generator.state = saved_state
    if scaler is not None and state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    if running is not None and state.get('running'):
        running.update(json.loads(state['running']))
    if ssl is not None and state.get('self_supervision'):
        ssl.load_state_dict(state['self_supervision'])
    return int(state['step']), list(state.get('history', []))


def _train_step(net, model, batch, tasks, mcfg, tcfg, balancer, optimizer, scaler, use_amp, device,
                ssl=None, recipe=None) -> dict:
    """One optimisation step; the per-task losses and the self-supervised terms."""
    dtype = torch.bfloat16 if tcfg.amp_dtype == 'bf16' else torch.float16
    with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
        losses, extra, terms = compute_losses(net, batch, tasks, mcfg, ssl)
        distance = recipe.feature_distance(batch) if recipe is not None else None
        if distance is not None:
            extra = distance if extra is None else extra + distance
            terms = {**terms, 'feature_distance': distance.detach()}
        total = balancer({k: v.float() for k, v in losses.items()})
        if extra is not None:
            total = total + extra
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    scaler.step(optimizer)
    scaler.update()
    return {**losses, **terms}


def _save_checkpoint(config, model, mcfg, tasks, seg_classes, tcfg, dcfg, summary, focal=None) -> str:
    # real datasets mix cameras: not one focal length (docs/TRAINING.md), unless fine-tuned from a
    # checkpoint that has one, or mixed with the synthetic world
    focal = focal or dcfg.training_focal_px()
    meta = CheckpointMetadata(
        architecture=mcfg.to_dict(), tasks=tasks, camera_focal_px=focal,
        segmentation_classes=seg_classes, detection_classes=[str(n) for n in dcfg.detection_classes],
        input_size=list(dcfg.input_size), name=config.name, training=json.loads(json.dumps(summary, default=str)))
    return save_checkpoint(tcfg.output, model.cpu(), meta)


@dataclass
class _Run:
    """What the phases of one train() call share."""
    config: TrainConfig
    tcfg: object
    dcfg: object
    mcfg: HydraNetConfig
    seg_classes: list
    tasks: list
    rank: int
    world: int
    device: torch.device
    focal: float | None
    log: object
    train_set: object = None
    val_set: object = None
    data_s: float = 0.0
    model: HydraNet = None
    recipe: EncoderRecipe = None
    balancer: LossBalancer = None
    optimizer: object = None
    ssl: object = None
    pools: dict = None                  # train.sampler task_balanced: task -> indices of its labelled samples


def _settings_phase(config: TrainConfig, log) -> _Run:
    """Settings checked (class names included) before anything is rendered; the device."""
    rank, world = _dist()
    tcfg, dcfg = config.resolved()
    mcfg, seg_classes = _model_config(config, dcfg)
    tasks = [t for t in TASKS if t in tcfg.tasks]
    device = _seed_and_device(tcfg, rank)
    focal = dcfg.training_focal_px()
    if focal is None and tcfg.init_from and not tcfg.resume:
        from hydranet_ros.model.checkpoint import load_checkpoint
        focal = checkpoint_focal_px(load_checkpoint(tcfg.init_from).metadata)   # fine-tuning keeps its lens
    return _Run(config, tcfg, dcfg, mcfg, seg_classes, tasks, rank, world, device, focal,
                log if rank == 0 else (lambda *_: None))


def _data_phase(run: _Run):
    """The training and validation sets, with the run's augmentation."""
    tcfg = run.tcfg
    t_data = time.time()
    augmentation, targets = augmentation_from(tcfg)
    run.train_set, run.val_set = make_datasets(run.dcfg, run.mcfg, run.rank, augment=bool(tcfg.augment),
                                               focal_px=run.focal, augmentation=augmentation, look_targets=targets)
    with_look = [p for p in getattr(run.train_set, 'parts', [run.train_set]) if p.augmentation.has_look]
    if with_look:
        run.log(f'look augmentation: {len(with_look)} labelled source(s)'
                + (f', the look of {len(augmentation.appearance.files)} target images (beta {tcfg.appearance_beta})'
                   if augmentation.appearance else '')
                + (f', sensor {augmentation.sensor}' if augmentation.sensor else ''))
    run.data_s = time.time() - t_data
    run.log(f'data: {len(run.train_set)} training pairs, {len(run.val_set) if run.val_set else 0} validation pairs '
            f'({run.data_s:.0f} s to render)')


def _task_pools(run: _Run) -> dict:
    """train.sampler task_balanced: each trained task's labelled samples (indices into the training set)."""
    pools = {t: np.asarray(run.train_set.labelled_indices(t)) for t in run.tasks}
    empty = [t for t, p in pools.items() if not len(p)]
    if empty:
        raise ValueError(f'train.sampler task_balanced: no training sample labels {empty}')
    run.log('task-balanced sampling: ' + ', '.join(f'{t} {len(p)}' for t, p in pools.items())
            + f' labelled samples of {len(run.train_set)}')
    return pools


def _network_phase(run: _Run, movers, things, resuming: bool):
    """The network and where its weights start, the encoder recipe, loss balancing, the optimiser
    and the self-supervised terms."""
    tcfg, config = run.tcfg, run.config
    model = run.model = HydraNet(run.mcfg).to(run.device)
    if tcfg.init_from and not resuming:
        run.log(init_from_checkpoint(model, tcfg.init_from))
    elif config.model.get('encoder_weights') and not resuming:
        from hydranet_ros.model.imagenet import load_encoder_weights
        run.log(load_encoder_weights(model.encoder, config.model['encoder_weights']))
    run.recipe = EncoderRecipe(model, tcfg.freeze_encoder_blocks, tcfg.freeze_encoder_bn, tcfg.feature_distance,
                               things, keep=tuple(tcfg.keep))
    if tcfg.keep:
        run.log(f'keep {list(tcfg.keep)}: encoder, decoder and their heads frozen; training {run.tasks}')
    run.balancer = LossBalancer(run.tasks, tcfg.balancing, tcfg.weights).to(run.device)
    run.optimizer = _optimizer(model, run.balancer, tcfg)
    if tcfg.photometric > 0 or tcfg.flow_photometric > 0:
        from hydranet_ros.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD
        from hydranet_ros.training.self_supervised import SelfSupervision
        run.ssl = SelfSupervision(model.encoder.channels[32], float(tcfg.photometric), float(tcfg.flow_photometric),
                                  float(tcfg.smoothness), IMAGENET_MEAN, IMAGENET_STD,
                                  training_focal_px=run.focal, use_odometry=tcfg.pose_source == 'auto',
                                  rigid_flow=float(tcfg.rigid_flow), scales=int(tcfg.photometric_scales),
                                  rigid_flow_movers=movers).to(run.device)
        if list(run.ssl.parameters()):
            run.optimizer.add_param_group({'params': list(run.ssl.parameters()), 'lr': tcfg.lr})


def _draw_batch(run: _Run, rng) -> dict:
    """This process's share of the next global batch (every process draws the same indices)."""
    train_set, tcfg = run.train_set, run.tcfg
    if run.pools:                               # task-balanced: a task for each slot, then one of its samples
        tasks = sorted(run.pools)
        indices = [int(rng.choice(run.pools[tasks[int(rng.integers(0, len(tasks)))]]))
                   for _ in range(int(tcfg.batch_size))]
    elif hasattr(train_set, 'sample_index'):     # a mixture draws each dataset by its weight
        indices = [train_set.sample_index(rng) for _ in range(int(tcfg.batch_size))]
    else:
        indices = rng.integers(0, len(train_set), int(tcfg.batch_size))
    items = [train_set[int(i) % len(train_set)] for i in indices[run.rank::run.world]]
    batch = {k: torch.stack([it[k] for it in items]).to(run.device) for k in items[0]}
    if run.device.type == 'cuda' and tcfg.channels_last:
        for key in ('image', 'prev_image'):
            batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
    return batch


def _evaluation(run: _Run, step: int, started: float) -> dict:
    """One periodic evaluation on the validation set (its history entry)."""
    tcfg, tasks = run.tcfg, run.tasks
    head = headline(evaluate(run.model, run.val_set, tasks, max_samples=int(tcfg.eval_samples)))
    if run.ssl is not None and 'depth' in tasks and 'depth' not in run.dcfg.labels:
        # depth learned from video alone is known up to scale: its curve is median-scaled
        scaled = evaluate(run.model, run.val_set, ['depth'], max_samples=int(tcfg.eval_samples), median_scaled=True)
        head['abs_rel_median_scaled'] = scaled['depth']['abs_rel']
    run.log(f'step {step}: ' + ', '.join(f'{k} {v:.3f}' for k, v in head.items()))
    return {'step': step, **head, 'weights': run.balancer.current_weights(), 'elapsed_s': time.time() - started}


def _finish(run: _Run, step: int, history: list, elapsed: float) -> dict:
    """The checkpoint with its training summary (rank 0)."""
    tcfg, dcfg = run.tcfg, run.dcfg
    summary = {'data': {k: getattr(dcfg, k) for k in ('type', 'camera', 'input_size', 'frames_per_seed')}
               | {'train_seeds': f"{len(dcfg.train_seeds)} seeds", 'val_seeds': dcfg.val_seeds},
               'steps': step, 'batch_size': tcfg.batch_size, 'balancing': tcfg.balancing,
               'train_seconds': round(elapsed, 1), 'render_seconds': round(run.data_s, 1),
               'device': str(run.device), 'world_size': run.world, 'final': history[-1] if history else {}}
    tasks = [t for t in TASKS if t in run.tasks or t in tcfg.keep]     # the kept tasks are the model's too
    sha = _save_checkpoint(run.config, run.model, run.mcfg, tasks, run.seg_classes, tcfg, dcfg, summary,
                           run.focal)
    run.log(f'saved {tcfg.output} (sha256 {sha[:12]}) after {step} steps in {elapsed:.0f} s')
    return {'sha256': sha, 'output': tcfg.output}


def train(config: TrainConfig, progress: bool = True, log=print) -> dict:
    """Train (or resume, or grow from init_from) a HydraNet as the config says; the checkpoint
    is written by rank 0. Phases: settings, data, network, resume, the loop (step, balancing
    epochs, evaluation + state), the checkpoint."""
    run = _settings_phase(config, log)
    tcfg = run.tcfg
    movers = _class_indices(tcfg.rigid_flow_movers, run.seg_classes, 'train.rigid_flow_movers')   # before any render
    things = _class_indices(tcfg.feature_distance_classes, run.seg_classes, 'train.feature_distance_classes') \
        if tcfg.feature_distance > 0 else []
    _data_phase(run)
    if tcfg.sampler == 'task_balanced':
        run.pools = _task_pools(run)
    resuming = bool(tcfg.resume and Path(tcfg.resume).is_file())
    _network_phase(run, movers, things, resuming)
    model, optimizer, balancer, ssl, device = run.model, run.optimizer, run.balancer, run.ssl, run.device
    base_lrs = [g['lr'] for g in optimizer.param_groups]
    step, history = 0, []
    use_amp = bool(tcfg.amp) and device.type == 'cuda'
    # bf16 keeps fp32's range: no loss scaling; fp16 needs it
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp and tcfg.amp_dtype == 'fp16')
    # Every process draws the same global batch and trains on its share of it, so N processes
    # with batch_size B step like one process with B (BatchNorm statistics aside: per process
    # on CPU, synchronised on CUDA).
    rng = np.random.default_rng(int(tcfg.seed))
    if int(tcfg.batch_size) % run.world:
        raise ValueError(f'train.batch_size {tcfg.batch_size} is the global batch: it must divide by the '
                         f'{run.world} processes')
    running = {t: [] for t in run.tasks}
    if ssl is not None:
        running.update({k: [] for k, w in (('photometric', tcfg.photometric),
                                            ('flow_photometric', tcfg.flow_photometric)) if w > 0})
    if resuming:
        step, history = _resume(tcfg.resume, device, model, optimizer, balancer, rng, scaler, running, run.train_set,
                                ssl)
        run.log(f'resumed from {tcfg.resume} at step {step}')
    if device.type == 'cuda' and tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if run.world > 1 and device.type == 'cuda':
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    run.model = model
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if run.world > 1 else model
    total_steps = int(tcfg.steps)
    bar = None
    if progress and run.rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, desc='train', dynamic_ncols=True)
    started = time.time()
    epoch_len = max(len(run.train_set) // int(tcfg.batch_size), 1)
    model.train()
    while step < total_steps:
        scale = _learning_rate_scale(step, total_steps)
        run.recipe.train_mode()      # after evaluation too: frozen BatchNorm stays in eval mode
        for g, base in zip(optimizer.param_groups, base_lrs):
            g['lr'] = base * scale
        batch = _draw_batch(run, rng)
        losses = _train_step(net, model, batch, run.tasks, run.mcfg, tcfg, balancer, optimizer, scaler, use_amp,
                             device, ssl, run.recipe)
        step += 1
        for t, v in losses.items():
            running.setdefault(t, []).append(float(v.detach()))
        if bar is not None:
            bar.update(1)
            if step % int(tcfg.log_every) == 0:
                bar.set_postfix({{'flow_photometric': 'fph'}.get(t, t[:3]): f'{np.mean(v[-20:]):.3f}'
                                 for t, v in running.items() if v})
        if step % epoch_len == 0:
            balancer.end_epoch({t: float(np.mean(running[t][-epoch_len:])) for t in run.tasks if running.get(t)})
        checkpoint_now = step % int(tcfg.eval_every) == 0 or step == total_steps
        if run.rank == 0 and run.val_set is not None and checkpoint_now:
            history.append(_evaluation(run, step, started))
        if run.rank == 0 and checkpoint_now:
            _save_state(_state_path(tcfg), model, optimizer, balancer, step, history, rng, scaler, running,
                        run.train_set, ssl)
    if bar is not None:
        bar.close()
    elapsed = time.time() - started
    result = {'steps': step, 'train_seconds': elapsed, 'history': history, 'losses': running}
    if run.rank == 0:
        result.update(_finish(run, step, history, elapsed))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result
