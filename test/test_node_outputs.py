"""What the active perception node publishes per input frame, over real DDS."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from hydranet_ros.msg import InferenceStats, OpticalFlow
from hydranet_ros.image_codec import image_to_numpy, rgb_to_compressed
from node_harness import LATCHED, TINY, NodeHarness, rgb_image

NS = '/hydranet'


def _start(checkpoint, **params):
    h = NodeHarness(checkpoint, **params)
    h.configure_activate()
    return h


@pytest.fixture(params=['onnxruntime', 'torch'])
def backend(request):
    """Both inference backends for the tests that check what the node publishes."""
    return request.param


@pytest.fixture
def active(tiny_checkpoint, backend):
    h = _start(tiny_checkpoint, detection__score_threshold=0.0, detection__max_detections=3, backend=backend)
    yield h
    h.close()


def test_every_output_per_frame_with_the_input_header(active):
    h = active
    subs = {'segmentation': Image, 'depth': Image, 'flow': OpticalFlow, 'detections': Detection2DArray,
            'camera_info': CameraInfo, 'stats': InferenceStats}
    for name, typ in subs.items():
        h.subscribe(typ, f'{NS}/{name}')
    info_pub = h.publisher(CameraInfo, f'{NS}/input/camera_info')
    img_pub = h.publisher(Image, f'{NS}/input/image')
    assert h.wait_matched(img_pub)
    info = CameraInfo(width=200, height=120, k=[100.0, 0, 100, 0, 100, 60, 0, 0, 1])
    info_pub.publish(info)
    # Each frame is sent until processed, then the next (latest-frame policy may drop repeats).
    frames = [rgb_image(120, 200, seed=i, stamp=(10, i * 100_000_000), frame_id='cam_front') for i in range(2)]
    for i, frame in enumerate(frames):
        def done(i=i):
            return len({m.header.stamp.nanosec for m in h.received[f'{NS}/depth']}) > i
        for _ in range(50):
            img_pub.publish(frame)
            info_pub.publish(info)
            if h.wait_for(done, timeout=0.3):
                break
        assert done()
    last_stamp = frames[1].header.stamp
    # each output has its own topic: wait for the last frame's on each, not assume them
    for topic in ('segmentation', 'flow'):
        assert h.wait_for(lambda t=topic: any(m.header.stamp == last_stamp for m in h.received[f'{NS}/{t}']),
                          timeout=10), topic
    seg = next(m for m in h.received[f'{NS}/segmentation'] if m.header.stamp == last_stamp)
    assert (seg.encoding, seg.width, seg.height, seg.header.frame_id) == ('mono8', 200, 120, 'cam_front')
    assert image_to_numpy(seg).max() < TINY.num_classes
    depth = next(m for m in h.received[f'{NS}/depth'] if m.header.stamp == last_stamp)
    assert (depth.encoding, depth.width, depth.height) == ('32FC1', 200, 120)
    d = image_to_numpy(depth)
    assert d.dtype == np.float32 and np.isfinite(d).all()
    assert TINY.depth_min <= d.min() and d.max() <= TINY.depth_max      # metres in the model's range
    flow = h.received[f'{NS}/flow'][-1]
    assert flow.header.stamp == last_stamp and flow.header.frame_id == 'cam_front'
    assert flow.previous_stamp == frames[0].header.stamp
    assert (flow.flow.encoding, flow.flow.width, flow.flow.height) == ('32FC2', 200, 120)
    assert (flow.scale_x, flow.scale_y) == (1.0, 1.0)
    assert image_to_numpy(flow.flow).shape == (120, 200, 2)
    assert h.wait_for(lambda: any(m.header.stamp == last_stamp for m in h.received[f'{NS}/detections']))
    dets = next(m for m in h.received[f'{NS}/detections'] if m.header.stamp == last_stamp)
    assert len(dets.detections) == 3 and dets.header.frame_id == 'cam_front'
    for det in dets.detections:
        assert det.results[0].hypothesis.class_id in ('0', '1')
        assert 0 <= det.results[0].hypothesis.score <= 1
        assert 0 <= det.bbox.center.position.x <= 200 and 0 <= det.bbox.center.position.y <= 120
    # camera_info and stats follow the frame's other outputs: wait for the last frame's, not assume them
    for topic in ('camera_info', 'stats'):
        assert h.wait_for(lambda t=topic: any(m.header.stamp == last_stamp for m in h.received[f'{NS}/{t}'])), topic
    cam = next(m for m in h.received[f'{NS}/camera_info'] if m.header.stamp == last_stamp)
    assert (cam.width, cam.height, list(cam.k)) == (200, 120, list(info.k))
    stats = next(m for m in h.received[f'{NS}/stats'] if m.header.stamp == last_stamp)
    assert set(stats.tasks_run) == {'segmentation', 'depth', 'flow', 'detection'}
    assert stats.device == 'cpu' and stats.model_id.startswith('tiny@')
    assert stats.frames_processed >= 2 and stats.total_ms >= stats.inference_ms > 0


def test_lazy_heads_run_only_for_subscribed_outputs(active):
    h = active
    img_pub = h.publisher(Image, f'{NS}/input/image')
    h.subscribe(InferenceStats, f'{NS}/stats')
    assert h.wait_matched(img_pub)
    for i in range(10):
        img_pub.publish(rgb_image(64, 96, stamp=(1, i)))
    h.wait_for(lambda: False, timeout=1.0)
    assert h.node.counters['processed'] == 0          # no output subscribed: nothing ran
    h.subscribe(Image, f'{NS}/depth')
    assert h.wait_for(lambda: h.node._pubs[('', 'depth')].get_subscription_count() > 0)
    assert h.wait_for(lambda: (img_pub.publish(rgb_image(64, 96, stamp=(2, 0))) or
                               bool(h.received[f'{NS}/stats'])), timeout=20)
    assert list(h.received[f'{NS}/stats'][-1].tasks_run) == ['depth']


def test_flood_keeps_the_latest_frame_and_counts_drops(tiny_checkpoint):
    # Reliable, deep input queue: DDS delivers every frame, so drops happen in the node only.
    h = _start(tiny_checkpoint, always_run=True, input_reliability='reliable', qos_depth=100)
    try:
        img_pub = h.publisher(Image, f'{NS}/input/image')
        assert h.wait_matched(img_pub)
        frames = [rgb_image(96, 160, seed=i % 3, stamp=(3, i * 1000)) for i in range(60)]
        for f in frames:
            img_pub.publish(f)
        assert h.wait_for(lambda: h.node._frames.received == 60, timeout=20)
        assert h.wait_for(lambda: h.node.counters['processed'] + h.node.counters['dropped'] == 60, timeout=30)
        counts = h.node.counters
        assert counts['dropped'] > 0 and counts['processed'] < 60
        assert h.node._frames.take(timeout=0) == []    # nothing left waiting
    finally:
        h.close()


def test_label_info_is_latched_for_late_subscribers(active):
    h = active
    h.subscribe(LabelInfo, f'{NS}/segmentation/label_info', LATCHED)
    h.subscribe(LabelInfo, f'{NS}/detections/label_info', LATCHED)
    assert h.wait_for(lambda: h.received[f'{NS}/segmentation/label_info']
                      and h.received[f'{NS}/detections/label_info'])
    seg = h.received[f'{NS}/segmentation/label_info'][0]
    assert [(c.class_id, c.class_name) for c in seg.class_map] == [(0, 'road'), (1, 'car'), (2, 'person'), (3, 'sky')]
    det = h.received[f'{NS}/detections/label_info'][0]
    assert [(c.class_id, c.class_name) for c in det.class_map] == [(0, 'car'), (1, 'person')]


def test_detection_label_info_follows_a_runtime_score_threshold(active):
    h = active
    h.subscribe(LabelInfo, f'{NS}/detections/label_info', LATCHED)
    assert h.wait_for(lambda: h.received[f'{NS}/detections/label_info'])
    assert h.received[f'{NS}/detections/label_info'][-1].threshold == 0.0
    assert h.node.set_parameters([Parameter('detection.score_threshold', value=0.45)])[0].successful
    assert h.wait_for(lambda: abs(h.received[f'{NS}/detections/label_info'][-1].threshold - 0.45) < 1e-6)


def _image_transport_camera_info(image_topic):
    """image_transport's rule (getCameraInfoTopic): the image topic's namespace + 'camera_info'."""
    return image_topic[:image_topic.rfind('/') + 1] + 'camera_info'


@pytest.mark.parametrize('cameras', [[], ['front']])
def test_dense_outputs_pair_with_a_camera_info_of_their_own_size(tiny_checkpoint, cameras):
    """A consumer of /hydranet/depth (depth_image_proc, RViz DepthCloud) reads the sibling
    /hydranet/camera_info: it must carry the outputs' size and scaled intrinsics, not the input's."""
    h = _start(tiny_checkpoint, output_resolution='model', **({'cameras': cameras} if cameras else {}))
    base = f'{NS}/front' if cameras else NS
    try:
        dense = [f'{base}/segmentation', f'{base}/depth']
        for topic in dense:
            h.subscribe(Image, topic)
        sibling = {_image_transport_camera_info(t) for t in dense}
        assert len(sibling) == 1, 'all dense outputs share one camera_info'
        sibling = sibling.pop()
        h.subscribe(CameraInfo, sibling)
        img_pub = h.publisher(Image, f'{base}/input/image')
        info_pub = h.publisher(CameraInfo, f'{base}/input/camera_info')
        assert h.wait_matched(img_pub)
        info = CameraInfo(width=1242, height=375, k=[721.5, 0, 609.6, 0, 721.5, 172.9, 0, 0, 1],
                          p=[721.5, 0, 609.6, 44.9, 0, 721.5, 172.9, 0.2, 0, 0, 1, 0.003])
        assert h.wait_for(lambda: (info_pub.publish(info), img_pub.publish(rgb_image(375, 1242)))
                          and h.received[sibling] and all(h.received[t] for t in dense), timeout=20)
        out = h.received[sibling][-1]
        # 1242x375 letterboxed into 160x96: scale 160/1242, content 160x48
        for topic in dense:
            image = next(m for m in h.received[topic] if m.header.stamp == out.header.stamp)
            assert (image.width, image.height) == (out.width, out.height) == (160, 48), topic
        sx, sy = 160 / 1242, 48 / 375
        np.testing.assert_allclose(out.k, [721.5 * sx, 0, 609.6 * sx, 0, 721.5 * sy, 172.9 * sy, 0, 0, 1], rtol=1e-9)
        np.testing.assert_allclose(out.p[3], 44.9 * sx)
        assert h.peer.count_publishers(f'{base}/input/camera_info') == 1, 'the node publishes on its input'
    finally:
        h.close()


def test_compressed_input(tiny_checkpoint):
    h = _start(tiny_checkpoint, input_transport='compressed')
    try:
        h.subscribe(Image, f'{NS}/depth')
        pub = h.publisher(CompressedImage, f'{NS}/input/image/compressed')
        assert h.wait_matched(pub)
        rgb = np.random.default_rng(0).integers(0, 256, (90, 150, 3), dtype=np.uint8)
        for fmt in ('jpeg', 'png'):
            msg = rgb_to_compressed(rgb, fmt)
            msg.header.frame_id, msg.header.stamp.sec = fmt, 7
            assert h.wait_for(lambda: (pub.publish(msg) or True) and any(
                m.header.frame_id == fmt for m in h.received[f'{NS}/depth']), timeout=20)
        assert all((m.width, m.height) == (150, 90) for m in h.received[f'{NS}/depth'])
    finally:
        h.close()


def test_two_cameras_batched_each_with_its_own_outputs_and_flow(tiny_checkpoint, backend):
    h = _start(tiny_checkpoint, cameras=['front', 'left'], backend=backend)
    try:
        for cam in ('front', 'left'):
            h.subscribe(OpticalFlow, f'{NS}/{cam}/flow')
            h.subscribe(Image, f'{NS}/{cam}/depth')
        pubs = {cam: h.publisher(Image, f'{NS}/{cam}/input/image') for cam in ('front', 'left')}
        assert all(h.wait_matched(p) for p in pubs.values())
        sizes = {'front': (100, 180), 'left': (80, 120)}
        for step in range(40):
            for cam, pub in pubs.items():
                pub.publish(rgb_image(*sizes[cam], seed=step, stamp=(20, step * 50_000_000), frame_id=cam))
            if h.wait_for(lambda: all(h.received[f'{NS}/{c}/flow'] for c in pubs), timeout=0.25):
                break
        for cam, (hh, ww) in sizes.items():
            flow = h.received[f'{NS}/{cam}/flow'][-1]
            assert flow.header.frame_id == cam and (flow.flow.height, flow.flow.width) == (hh, ww)
            assert all(m.header.frame_id == cam for m in h.received[f'{NS}/{cam}/depth'])
    finally:
        h.close()


def test_dynamic_parameters_accepted_or_rejected_with_a_reason(active):
    node = active.node
    ok = node.set_parameters([Parameter('detection.score_threshold', value=0.6)])[0]
    assert ok.successful and node._predictor.score_threshold == 0.6
    assert node.set_parameters([Parameter('detection.classes', Parameter.Type.STRING_ARRAY, ['person'])])[0].successful
    assert node._params.detection_classes == ('person',)
    bad = node.set_parameters([Parameter('detection.score_threshold', value=1.5)])[0]
    assert not bad.successful and 'score_threshold' in bad.reason and '1.5' in bad.reason
    assert node._predictor.score_threshold == 0.6                          # nothing changed
    bad = node.set_parameters([Parameter('detection.classes', Parameter.Type.STRING_ARRAY, ['unicorn'])])[0]
    assert not bad.successful and 'unicorn' in bad.reason
    static = node.set_parameters([Parameter('model_path', value='/other.pt')])[0]
    assert not static.successful and 'takes effect at configure' in static.reason
    wrong_type = node.set_parameters([Parameter('max_rate_hz', value='fast')])[0]
    assert not wrong_type.successful
    assert node.get_parameter('max_rate_hz').value == 0.0


def test_bad_messages_are_rejected_and_counted_without_stopping(tiny_checkpoint):
    h = _start(tiny_checkpoint, always_run=True, input_reliability='reliable')
    try:
        h.subscribe(Image, f'{NS}/depth')
        h.subscribe(DiagnosticArray, '/diagnostics')
        pub = h.publisher(Image, f'{NS}/input/image')
        assert h.wait_matched(pub)
        bad = [rgb_image(64, 64), rgb_image(64, 64), rgb_image(64, 64), rgb_image(20, 20)]
        bad[0].encoding = 'bayer_rggb8'
        bad[1].data = bytes(10)                       # truncated
        bad[2].step = 5                               # step shorter than a row
        for i, msg in enumerate(bad):
            pub.publish(msg)   # once each, reliably: every one must be counted exactly once
            assert h.wait_for(lambda: h.node.counters['rejected'] == i + 1, timeout=10)
        good = rgb_image(64, 64, frame_id='after_bad')
        assert h.wait_for(lambda: (pub.publish(good) or True) and any(
            m.header.frame_id == 'after_bad' for m in h.received[f'{NS}/depth']), timeout=20)
        assert h.node.counters['rejected'] == 4 and h.node.counters['errors'] == 0
        assert h.wait_for(lambda: any(s.message.startswith('rejected inputs') for a in h.received['/diagnostics']
                                      for s in a.status), timeout=5)
        diag = h.received['/diagnostics'][-1].status[0]
        values = {kv.key: kv.value for kv in diag.values}
        assert values['frames_rejected'] == '4' and values['device'] == 'cpu'
    finally:
        h.close()


def test_depth_limits_follow_rep_118(tiny_checkpoint):
    h = _start(tiny_checkpoint, depth__min_m=5.0, depth__max_m=6.0)
    try:
        h.subscribe(Image, f'{NS}/depth')
        pub = h.publisher(Image, f'{NS}/input/image')
        assert h.wait_matched(pub)
        assert h.wait_for(lambda: (pub.publish(rgb_image(64, 64)) or True) and h.received[f'{NS}/depth'])
        d = image_to_numpy(h.received[f'{NS}/depth'][-1])
        finite = d[np.isfinite(d)]
        assert ((finite >= 5.0) & (finite <= 6.0)).all()
        assert not np.isnan(d).any()
        assert np.isneginf(d).sum() + np.isposinf(d).sum() + finite.size == d.size
    finally:
        h.close()


def test_node_outputs_equal_the_offline_predictor(active, tiny_checkpoint):
    """What docs/MODEL.md promises: the node publishes what Predictor.predict returns for the
    same image (the node adds transport, not arithmetic)."""
    from hydranet_ros.inference import Predictor
    h = active
    for name, typ in (('segmentation', Image), ('depth', Image), ('detections', Detection2DArray)):
        h.subscribe(typ, f'{NS}/{name}')
    pub = h.publisher(Image, f'{NS}/input/image')
    assert h.wait_matched(pub)
    frame = rgb_image(90, 150, seed=5, stamp=(30, 0))
    assert h.wait_for(lambda: (pub.publish(frame) or True) and all(
        any(m.header.stamp == frame.header.stamp for m in h.received[f'{NS}/{n}'])
        for n in ('segmentation', 'depth', 'detections')), timeout=20)
    got = {n: next(m for m in h.received[f'{NS}/{n}'] if m.header.stamp == frame.header.stamp)
           for n in ('segmentation', 'depth', 'detections')}
    offline = Predictor(str(tiny_checkpoint), device='cpu', backend='torch', score_threshold=0.0, max_detections=3)
    expected = offline.predict(image_to_numpy(frame), tasks=('segmentation', 'depth', 'detection'))[0]
    assert (image_to_numpy(got['segmentation']) == expected.segmentation).mean() >= 0.999
    np.testing.assert_allclose(image_to_numpy(got['depth']), expected.depth, rtol=1e-4, atol=1e-4)
    boxes = [(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
              d.results[0].hypothesis.class_id, d.results[0].hypothesis.score) for d in got['detections'].detections]
    want = [(*e.center, *e.size, str(e.class_id), e.score) for e in expected.detections]
    assert len(boxes) == len(want) == 3
    for b, w in zip(boxes, want):
        np.testing.assert_allclose([*b[:4], b[5]], [*w[:4], w[5]], rtol=1e-4, atol=1e-3)
        assert b[4] == w[4]
