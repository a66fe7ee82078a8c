"""Reliability of the node over real DDS: malformed input, fuzzing, time jumps, parameters,
device trouble and lifecycle churn. docs/RELIABILITY.md maps each guarantee to its test.

CI-sized by default; HYDRANET_FULL_RELIABILITY=1 runs the full counts (10,000 fuzz messages,
200 lifecycle cycles).
"""
import os
import threading
import time

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hydranet_ros.image_codec import rgb_to_compressed
from hydranet_ros.msg import InferenceStats, OpticalFlow
from hydranet_ros.ros.parameters import PARAMETERS
from node_harness import RELIABLE, NodeHarness, rgb_image
from rostest_util import png_claiming_size

FULL = os.environ.get('HYDRANET_FULL_RELIABILITY') == '1'
FUZZ_MESSAGES = 10_000 if FULL else 1_000
CHURN_CYCLES = 200 if FULL else 15
OK, FAIL = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def _active(checkpoint, namespace='hydranet', **params):
    """An active node with a peer that publishes its inputs (h.image_pub, h.info_pub) and keeps
    its stats (h.stats). Each test's node has its own namespace: a module-scoped node alive in the
    background must not hear another test's frames (nor publish into its topics)."""
    h = NodeHarness(checkpoint, namespace=namespace, always_run=True, input_reliability='reliable', qos_depth=1000,
                    **params)
    h.configure_activate()
    h.ns = f'/{namespace}'
    h.subscribe(InferenceStats, f'{h.ns}/stats')
    h.stats = h.received[f'{h.ns}/stats']
    compressed = params.get('input_transport') == 'compressed'
    h.image_pub = h.publisher(CompressedImage if compressed else Image,
                              f'{h.ns}/input/image/compressed' if compressed else f'{h.ns}/input/image', RELIABLE)
    h.info_pub = h.publisher(CameraInfo, f'{h.ns}/input/camera_info', RELIABLE)
    assert h.wait_matched(h.image_pub) and h.wait_matched(h.info_pub)
    return h


def _processed(h, stamp, timeout=30.0) -> bool:
    """Whether the node's stats for the frame with this stamp arrive in time."""
    return h.wait_for(lambda: any(s.header.stamp == stamp for s in reversed(h.stats)), timeout=timeout)


def _send_valid(h, t) -> bool:
    msg = _stamp(rgb_image(32, 48), t)
    h.image_pub.publish(msg)
    return _processed(h, msg.header.stamp)


def _stamp(msg, t: float):
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = int(round((t - int(t)) * 1e9))
    return msg


# --- 1. malformed images -----------------------------------------------------------------------
def _malformed():
    cases = {}
    m = rgb_image(32, 48)
    m.encoding = 'bayer_rggb8'
    cases['unknown encoding'] = (m, 'unsupported input encoding')
    m = rgb_image(32, 48)
    m.step = 48 * 3 - 1
    cases['step < width x channels'] = (m, 'step')
    m = rgb_image(32, 48)
    m.data = bytes(m.data)[:-7]
    cases['data shorter than height x step'] = (m, 'expected step')
    m = rgb_image(32, 48)
    m.data = bytes(m.data) + bytes(5)
    cases['data longer than height x step'] = (m, 'expected step')
    m = rgb_image(32, 48)
    m.height, m.width, m.step, m.data = 0, 0, 0, b''
    cases['zero size'] = (m, 'empty image')
    m = Image(height=20000, width=20, step=60, encoding='rgb8')
    cases['enormous height'] = (m, 'max_input_side')
    m = Image(height=32, width=47, step=94, encoding='yuv422', data=bytes(32 * 94))
    cases['odd width yuv422'] = (m, 'even width')
    m = Image(height=32, width=48, step=48 * 4, encoding='32FC1',
              data=np.full((32, 48), np.nan, np.float32).tobytes())
    cases['float image with NaN'] = (m, 'unsupported input encoding')
    m = Image(height=32, width=48, step=96, encoding='mono16', is_bigendian=1, data=bytes(32 * 96))
    cases['big-endian 16-bit'] = (m, 'unsupported input encoding')
    return cases


MALFORMED = _malformed()


@pytest.fixture(scope='module')
def active(tiny_checkpoint):
    h = _active(tiny_checkpoint)
    yield h
    h.close()


@pytest.mark.parametrize('case', list(MALFORMED))
def test_malformed_image_is_rejected_counted_and_the_next_frame_processed(active, case):
    h = active
    msg, words = MALFORMED[case]
    before = h.node.counters['rejected']
    h.image_pub.publish(msg)
    assert h.wait_for(lambda: h.node.counters['rejected'] == before + 1, timeout=10), case
    assert words in h.node.last_error and 'rejected input on input/image' in h.node.last_error
    assert h.node.state_label == 'active'
    assert _send_valid(h, 100.0 + len(h.stats))
    assert h.stats[-1].frames_rejected == before + 1


@pytest.mark.parametrize('mutation,words', [
    ('zero K', 'focal lengths'), ('NaN K', 'finite'), ('empty size', 'empty'), ('size mismatch', 'but the image is')])
def test_bad_camera_info_is_rejected_and_counted(active, mutation, words):
    h = active
    info = CameraInfo(width=48, height=32, k=[40.0, 0, 24, 0, 40.0, 16, 0, 0, 1])
    if mutation == 'zero K':
        info.k = [0.0] * 9
    elif mutation == 'NaN K':
        info.k[0] = float('nan')
    elif mutation == 'empty size':
        info.width = 0
    else:
        info.width, info.height = 640, 480
    before = h.node.counters['camera_info_rejected']
    h.info_pub.publish(info)
    if mutation == 'size mismatch':     # only known once an image of another size arrives
        assert h.wait_for(lambda: h.node._camera_infos.has(''), timeout=10)
        assert _send_valid(h, 200.0 + len(h.stats))
    assert h.wait_for(lambda: h.node.counters['camera_info_rejected'] == before + 1, timeout=10)
    assert words in h.node.last_error
    assert _send_valid(h, 300.0 + len(h.stats))
    assert h.stats[-1].camera_info_rejected == before + 1


# --- 2. fuzzing over DDS -----------------------------------------------------------------------
class Fuzzer:
    """Seeded generator of valid and mutated Image and CameraInfo messages; each message is
    labelled valid or invalid by construction (the mutations always break a rule)."""

    IMAGE_MUTATIONS = ('encoding', 'step_short', 'data_short', 'data_long', 'zero', 'huge', 'odd_yuv', 'float')

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def image(self, valid=False):
        # Valid frames have the camera_info's size (48x32), so a valid camera_info always fits;
        # the ones to be mutated vary in size.
        h, w = (32, 48) if valid else (int(self.rng.integers(32, 72)), int(self.rng.integers(32, 96)) // 2 * 2)
        enc = str(self.rng.choice(['rgb8', 'bgr8', 'mono8', 'rgba8', 'yuv422']))
        ch = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'yuv422': 2}[enc]
        pad = int(self.rng.integers(0, 8))
        step = w * ch + pad
        return Image(height=h, width=w, encoding=enc, step=step,
                     data=self.rng.integers(0, 256, h * step, dtype=np.uint8).tobytes())

    def mutate(self, m):
        kind = str(self.rng.choice(self.IMAGE_MUTATIONS))
        if kind == 'encoding':
            m.encoding = str(self.rng.choice(['bayer_rggb8', '', 'RGB8', 'jpeg', '8UC5']))
        elif kind == 'step_short':
            m.step = int(self.rng.integers(0, m.width))   # < width x channels for every encoding
            m.data = bytes(m.step * m.height)
        elif kind == 'data_short':
            m.data = bytes(m.data)[: -int(self.rng.integers(1, len(m.data)))]
        elif kind == 'data_long':
            m.data = bytes(m.data) + bytes(int(self.rng.integers(1, 100)))
        elif kind == 'zero':
            m.height = 0 if self.rng.random() < 0.5 else m.height
            m.width = 0 if m.height else m.width
        elif kind == 'huge':
            m.height = int(self.rng.integers(8193, 2**31 - 1))
        elif kind == 'odd_yuv':
            m.encoding, m.width, m.step = 'yuv422', m.width + 1, (m.width + 1) * 2
            m.data = bytes(m.step * m.height)
        elif kind == 'float':
            m.encoding = '32FC1'
            m.step = m.width * 4
            m.data = np.full((m.height, m.width), float(self.rng.choice([np.nan, np.inf])), np.float32).tobytes()
        return m

    def camera_info(self, valid):
        info = CameraInfo(width=48, height=32, k=[40.0, 0, 24, 0, 40.0, 16, 0, 0, 1])
        if not valid:
            which = int(self.rng.integers(0, 3))
            if which == 0:
                info.k = [0.0] * 9
            elif which == 1:
                info.k[4] = float(self.rng.choice([np.nan, np.inf, -5.0]))
            else:
                info.height = 0
        return info


@pytest.mark.timeout(1800 if FULL else 300)
def test_fuzz_stream_keeps_the_node_active_and_counts_every_rejection(tiny_checkpoint):
    h = _active(tiny_checkpoint, namespace='fuzz')
    img_pub, info_pub = h.image_pub, h.info_pub
    try:
        fuzz = Fuzzer(seed=20261122)
        sent_bad_images = sent_bad_infos = 0
        valid_stamps = []
        t = 1000.0
        for i in range(FUZZ_MESSAGES):
            roll = fuzz.rng.random()
            if roll < 0.1:          # a valid frame: it must get its outputs
                t += 0.05
                msg = _stamp(fuzz.image(valid=True), t)
                img_pub.publish(msg)
                valid_stamps.append(msg.header.stamp)
                assert _processed(h, msg.header.stamp), f'valid frame {len(valid_stamps)} (message {i}) got no outputs'
            elif roll < 0.85:
                img_pub.publish(_stamp(fuzz.mutate(fuzz.image()), t))
                sent_bad_images += 1
            else:
                valid = fuzz.rng.random() < 0.5
                info_pub.publish(fuzz.camera_info(valid))
                sent_bad_infos += 0 if valid else 1
            if i % 200 == 199:      # keep the reliable queues short: let the node catch up
                assert h.wait_for(lambda: h.node.counters['rejected'] == sent_bad_images
                                  and h.node.counters['camera_info_rejected'] == sent_bad_infos, timeout=30), \
                    (h.node.counters, sent_bad_images, sent_bad_infos)
        assert h.wait_for(lambda: h.node.counters['rejected'] == sent_bad_images
                          and h.node.counters['camera_info_rejected'] == sent_bad_infos, timeout=30)
        assert h.node.state_label == 'active' and h.node.counters['errors'] == 0
        got = {(s.header.stamp.sec, s.header.stamp.nanosec) for s in h.stats}
        assert all((s.sec, s.nanosec) in got for s in valid_stamps)
        assert sent_bad_images > 0.6 * FUZZ_MESSAGES
    finally:
        h.close()


def test_fuzzed_compressed_images_are_rejected_and_counted(tiny_checkpoint):
    h = _active(tiny_checkpoint, namespace='fuzz_compressed', input_transport='compressed')
    pub = h.image_pub
    try:
        rng = np.random.default_rng(7)
        bad = 0
        for i in range(max(FUZZ_MESSAGES // 5, 100)):
            rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
            msg = _stamp(rgb_to_compressed(rgb, str(rng.choice(['jpeg', 'png']))), 50.0 + i * 0.05)
            kind = int(rng.integers(0, 6))
            if kind == 1:
                msg.data = bytes(msg.data)[: int(rng.integers(1, len(msg.data) - 12))]   # truncated
            elif kind == 2:
                msg.data = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()           # garbage
            elif kind == 3:
                msg.format = str(rng.choice(['bmp', 'tiff', '']))
            elif kind == 4:
                msg.data = b''
            elif kind == 5:
                msg.format, msg.data = 'png', png_claiming_size(60000, 60000)         # decompression bomb
            pub.publish(msg)
            if kind:
                bad += 1
            else:
                assert _processed(h, msg.header.stamp)
        assert h.wait_for(lambda: h.node.counters['rejected'] == bad, timeout=30), (h.node.counters, bad)
        assert h.node.counters['errors'] == 0 and h.node.state_label == 'active'
    finally:
        h.close()


# --- 4. time -------------------------------------------------------------------------------------
def test_out_of_order_duplicate_and_backwards_stamps_reset_flow(tiny_checkpoint):
    h = _active(tiny_checkpoint, namespace='timing')
    pub, stats = h.image_pub, h.stats
    try:
        flows = h.subscribe(OpticalFlow, '/timing/flow') and h.received['/timing/flow']
        # A loop (back to 10.0), a duplicate (10.1 twice), out of order (10.3 before 10.2).
        times = [10.0, 10.1, 10.2, 10.0, 10.1, 10.1, 10.3, 10.2, 10.4]
        for t in times:
            msg = _stamp(rgb_image(32, 48, seed=int(t * 10)), t)
            n = len(stats)
            pub.publish(msg)
            assert h.wait_for(lambda: len(stats) > n, timeout=20)
        assert h.node.state_label == 'active' and h.node.counters['errors'] == 0
        # flow after: 10.1, 10.2 | reset at 10.0 | 10.1 | reset at 10.1 dup | 10.3 | reset at 10.2 | 10.4
        assert h.wait_for(lambda: len(flows) >= 5, timeout=10), len(flows)
        time.sleep(0.3)
        for f in flows:
            gap = (f.header.stamp.sec + f.header.stamp.nanosec * 1e-9) - (
                f.previous_stamp.sec + f.previous_stamp.nanosec * 1e-9)
            assert gap > 0, f'flow over a non-positive gap {gap}'
        assert len(flows) == 5
        assert h.node.counters['flow_resets'] == 3 and stats[-1].flow_resets == 3
    finally:
        h.close()


# --- 6. parameters -------------------------------------------------------------------------------
def _bad_values(spec):
    """Values outside each parameter's type, range or choices, from the table itself."""
    wrong_type = {'bool': 'yes', 'int': 'many', 'double': 'far', 'string': 5, 'string_array': 3}[spec.type]
    out = [('type', wrong_type)]
    if spec.choices:
        out.append(('choices', 'not_a_choice'))
    if spec.min is not None:
        out.append(('below min', int(spec.min) - 1 if spec.type == 'int' else spec.min - 0.5))
    if spec.max is not None:
        out.append(('above max', int(spec.max) + 1 if spec.type == 'int' else spec.max + 0.5))
    return out


CASES = [(spec.name, what, value) for spec in PARAMETERS for what, value in _bad_values(spec)]


@pytest.mark.parametrize('name,what,value', CASES, ids=[f'{n}-{w}' for n, w, _ in CASES])
def test_bad_start_up_value_fails_configure_with_the_reason(tiny_checkpoint, name, what, value):
    h = NodeHarness(tiny_checkpoint, **{name.replace('.', '__'): value})
    try:
        assert h.node.trigger_configure() == FAIL
        assert h.node.state_label == 'unconfigured'
        assert name in h.node.last_error
    finally:
        h.close()


@pytest.fixture(scope='module')
def configured_and_unconfigured(tiny_checkpoint):
    a = _active(tiny_checkpoint, namespace='params')
    b = NodeHarness(tiny_checkpoint, namespace='other')
    yield a, b
    a.close()
    b.close()


def _value(node, name):
    return node.get_parameter(name).value        # every parameter has a value (an empty list too)


@pytest.mark.parametrize('name,what,value', CASES, ids=[f'{n}-{w}' for n, w, _ in CASES])
def test_bad_runtime_value_is_rejected_and_changes_nothing(configured_and_unconfigured, name, what, value):
    for h in configured_and_unconfigured:
        before = _value(h.node, name)
        before_params = h.node._params            # immutable view (None while unconfigured)
        try:
            results = h.node.set_parameters([Parameter(name, value=value)])
            ok, reason = results[0].successful, results[0].reason
        except Exception as exc:     # rclpy refuses a type change before the node sees it
            ok, reason = False, str(exc)
        assert not ok
        assert name in reason or 'type' in reason.lower(), reason
        assert _value(h.node, name) == before
        assert h.node._params == before_params


# --- 7. device -----------------------------------------------------------------------------------
@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='checks the no-GPU path')
def test_cuda_without_gpu_fails_configure_clearly_and_auto_falls_back(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, device='cuda')
    try:
        assert h.node.trigger_configure() == FAIL
        assert 'cuda' in h.node.last_error.lower() and h.node.state_label == 'unconfigured'
        assert h.node.set_parameters([Parameter('device', value='auto')])[0].successful
        assert h.node.trigger_configure() == OK
        assert str(h.node._predictor.device) == 'cpu'
    finally:
        h.close()


def test_out_of_memory_drops_the_frame_and_the_node_keeps_running(tiny_checkpoint):
    import torch
    h = _active(tiny_checkpoint, namespace='oom')
    try:
        predictor = h.node._predictor
        real = predictor.runner.run
        calls = {'n': 0}

        def out_of_memory_once(*args, **kwargs):   # fault injection into the network call only
            calls['n'] += 1
            if calls['n'] == 1:
                raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
            return real(*args, **kwargs)
        predictor.runner.run = out_of_memory_once
        h.image_pub.publish(_stamp(rgb_image(32, 48), 5.0))
        assert h.wait_for(lambda: h.node.counters['oom'] == 1, timeout=20)
        assert 'out of memory' in h.node.last_error
        assert _send_valid(h, 5.1)
        assert h.node.state_label == 'active' and h.node.counters['processed'] == 1
    finally:
        h.close()


# --- 3. lifecycle churn --------------------------------------------------------------------------
def _rss_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


@pytest.mark.timeout(1800 if FULL else 300)
def _own_threads() -> int:
    """Live threads, less the executor's pool: ThreadPoolExecutor starts its (bounded) workers
    lazily, so the pool may grow by one late in the run without anything leaking."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith('ThreadPoolExecutor'))


def test_lifecycle_churn_leaks_nothing(tiny_checkpoint):
    ns = '/churn'
    h = NodeHarness(tiny_checkpoint, namespace='churn', always_run=True)
    stop = threading.Event()
    pub = h.publisher(Image, f'{ns}/input/image', RELIABLE)

    def feed():     # frames keep flowing through every state
        i = 0
        while not stop.is_set():
            pub.publish(_stamp(rgb_image(32, 48, seed=i % 4), 1.0 + i * 0.033))
            i += 1
            time.sleep(0.01)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    samples = []
    try:
        for cycle in range(CHURN_CYCLES):
            assert h.node.trigger_configure() == OK, cycle
            assert h.node.trigger_activate() == OK, cycle
            time.sleep(0.05)
            assert h.node.trigger_deactivate() == OK, cycle
            assert h.node.trigger_cleanup() == OK, cycle
            samples.append((_rss_mb(), _own_threads(), len(list(h.node.subscriptions)),
                            len(list(h.node.publishers)), h.node.count_subscribers(f'{ns}/depth')))
    finally:
        stop.set()
        feeder.join(timeout=5)
        h.close()
    warm = samples[min(3, len(samples) - 1)]
    last = samples[-1]
    # Threads may only not grow: one that an earlier test (or the xdist worker's channel) left
    # running can end during the churn, which is not this node's doing.
    assert last[1] <= warm[1], f'threads grew: {warm[1]} -> {last[1]}'
    assert last[2:] == warm[2:], f'subscriptions/publishers/subscribers changed: {warm[2:]} -> {last[2:]}'
    assert last[0] - warm[0] < 40, f'memory grew {last[0] - warm[0]:.1f} MB over {CHURN_CYCLES} cycles'
