"""`instances` over real DDS on the bundled model: mono16 aligned with the segmentation, ids only
on thing classes, the track ids of the detections they match, against the world's instances."""
import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from hydranet_ros.image_codec import image_to_numpy
from hydranet_ros.inference.instances import instance_boxes
from hydranet_ros.metrics import PanopticQuality
from hydranet_ros.spatial.tracking import UNTRACKED_INSTANCE_ID, iou_matrix
from hydranet_ros.world.classes import SEG_ID
from drive_harness import NS, run_drive


def test_instances_are_aligned_tracked_and_follow_the_world(node, drive):
    h = node
    for topic, typ in ((f'{NS}/instances', Image), (f'{NS}/segmentation', Image),
                       (f'{NS}/detections', Detection2DArray)):
        h.subscribe(typ, topic)
    got = run_drive(h, drive, [f'{NS}/instances', f'{NS}/segmentation', f'{NS}/detections'])
    names = [str(n) for n in h.node._predictor.segmentation_names]
    things = [i for i, n in enumerate(names) if n in h.node._predictor.class_names]
    pq = PanopticQuality({SEG_ID['car']: 'car', SEG_ID['pedestrian']: 'pedestrian'})
    tracked = 0
    for inst_msg, seg_msg, det_msg, frame in zip(got[f'{NS}/instances'], got[f'{NS}/segmentation'],
                                                 got[f'{NS}/detections'], drive[0]):
        assert inst_msg.encoding == 'mono16' and inst_msg.header == seg_msg.header
        ids, seg = image_to_numpy(inst_msg), image_to_numpy(seg_msg)
        assert ids.shape == seg.shape == frame.instances.shape
        assert not ids[~np.isin(seg, things)].any(), 'instance ids only on thing classes'
        assert (ids[np.isin(seg, things)] > 0).all(), 'every thing pixel belongs to an instance'
        boxes = {int(d.id): [d.bbox.center.position.x - d.bbox.size_x / 2, d.bbox.center.position.y - d.bbox.size_y / 2,
                             d.bbox.center.position.x + d.bbox.size_x / 2, d.bbox.center.position.y + d.bbox.size_y / 2]
                 for d in det_msg.detections if d.id}
        for i, box in instance_boxes(ids).items():
            if i < UNTRACKED_INSTANCE_ID - 1000:                    # a track id: that detection's box fits it
                assert i in boxes and iou_matrix([box], [boxes[i]])[0, 0] >= 0.5
                tracked += 1
        world_classes = np.array([SEG_ID.get(n, 255) for n in names])[seg]
        pq.update(ids, world_classes, frame.instances, frame.segmentation)
    assert tracked >= 3, 'cars the detector tracks carry their track ids'
    assert pq.compute()['car']['pq'] > 0.25, 'the bundled model scored 0.37 on this drive'
