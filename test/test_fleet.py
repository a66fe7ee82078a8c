"""One job per bag, here or on Ray (hydranet_ros/fleet.py) and `evaluate --ray`: same numbers as
the single-process path, failed bags named with their reason, and no Ray needed without --ray."""
import json
import subprocess
import sys

import pytest

from hydranet_ros.bag.evaluate import Options, evaluate_bags_report
from hydranet_ros.bag.make_bag import write_drive
from hydranet_ros.fleet import FleetError, run_jobs


def _square(x):
    if x == 3:
        raise ValueError('three is not allowed')
    return x * x


def _broken(x):
    return {}['missing']


def _leaves(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f'{prefix}{k}.'))
        else:
            out[prefix + k] = v
    return out


def test_local_jobs_keep_input_order_and_every_failure_reason():
    report = run_jobs(_square, [1, 2, 3, 4])
    assert report.engine == 'local' and report.results == [1, 4, 16]
    assert report.failures() == [{'item': '3', 'reason': 'three is not allowed'}]
    assert run_jobs(_broken, [1]).failures()[0]['reason'] == "KeyError: 'missing'"   # unexpected: typed
    assert [o.item for o in report.outcomes] == [1, 2, 3, 4]


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('fleet')
    paths = []
    for seed in (4242, 4243, 4244):
        write_drive(root / f'drive_{seed}', seed=seed, frames=3, size=(64, 160))
        paths.append(root / f'drive_{seed}')
    broken = root / 'broken'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('not: a bag\n')
    return paths, broken


@pytest.fixture(scope='module')
def ray_local():
    ray = pytest.importorskip('ray', reason='Ray is not installed (pip install ray)')
    yield ray
    if ray.is_initialized():
        ray.shutdown()


def test_ray_evaluate_matches_the_single_process_result_and_names_the_failed_bag(bags, ray_local):
    from hydranet_ros.model.registry import weights
    paths, broken = bags
    opts = Options(offline_model=str(weights().path()))
    local, local_report = evaluate_bags_report(paths, opts)
    remote, report = evaluate_bags_report([paths[0], broken, *paths[1:]], opts, jobs=2, ray='auto')
    assert report.engine.startswith('ray') and not local_report.failed
    assert [f['item'] for f in report.failures()] == [str(broken)]
    assert report.failures()[0]['reason']                                 # why, not just which
    # Merged exactly as here: every count equal; metrics equal up to float rounding (a Ray worker
    # runs torch with one thread, here two: the network's sums round differently).
    a, b = remote.summary(), local.summary()
    assert a['scored_frames'] == b['scored_frames'] == {'segmentation': 9, 'depth': 9, 'flow': 6, 'detection': 9,
                                                                 'instances': 9}
    assert a['bags'] == b['bags'] and a['depth']['pixels'] == b['depth']['pixels']
    assert a['flow']['pixels'] == b['flow']['pixels'] and a['flow']['fl_all'] == b['flow']['fl_all']
    for task in ('segmentation', 'depth', 'flow', 'detection'):
        fa, fb = _leaves(a[task]), _leaves(b[task])
        assert fa.keys() == fb.keys()
        for key in fa:
            assert fa[key] == (None if fb[key] is None else pytest.approx(fb[key], rel=1e-5)), (task, key)


def test_evaluate_cli_on_ray_exits_3_and_lists_the_failed_bag(bags, tmp_path):
    pytest.importorskip('ray', reason='Ray is not installed (pip install ray)')
    paths, broken = bags
    out = tmp_path / 'eval'
    proc = subprocess.run([sys.executable, '-m', 'hydranet_ros.bag.evaluate', str(paths[0]), str(broken),
                           '--offline', '--ray', 'auto', '-j', '2', '-o', str(out), '--no-report'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert f'bag failed: {broken}' in proc.stderr
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['failed_bags'][0]['item'] == str(broken) and summary['scored_frames']['segmentation'] == 3


_NO_RAY = ("import sys; sys.modules['ray'] = None; from hydranet_ros.bag.evaluate import main; "
           "sys.exit(main(sys.argv[1:]))")


def test_without_ray_installed_the_plain_path_works_and_ray_is_refused_clearly(bags, tmp_path):
    paths, _ = bags
    plain = subprocess.run([sys.executable, '-c', _NO_RAY, str(paths[0]), str(paths[1]), '--offline', '-j', '2',
                            '-o', str(tmp_path / 'a'), '--no-report'], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert 'Ray is not installed' in plain.stderr
    assert json.loads((tmp_path / 'a' / 'metrics.json').read_text())['scored_frames']['segmentation'] == 6
    asked = subprocess.run([sys.executable, '-c', _NO_RAY, str(paths[0]), '--offline', '--ray', 'auto',
                            '-o', str(tmp_path / 'b')], capture_output=True, text=True, timeout=120)
    assert asked.returncode == 2 and 'needs Ray' in asked.stderr


def test_an_unreachable_ray_address_is_a_clear_error():
    pytest.importorskip('ray', reason='Ray is not installed (pip install ray)')
    import ray
    if ray.is_initialized():
        ray.shutdown()
    with pytest.raises(FleetError, match='cannot start or reach Ray'):
        run_jobs(_square, [1], ray='127.0.0.1:1')
