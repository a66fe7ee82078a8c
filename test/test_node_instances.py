"""`instances` over real DDS on the bundled model: mono16 aligned with the segmentation, ids only
on thing classes, the track ids of the detections they match, against the world's instances; the
cloud's instance field (points.instances)."""
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from vision_msgs.msg import Detection2DArray

from hydranet_ros.image_codec import image_to_numpy
from hydranet_ros.inference.instances import instance_boxes
from hydranet_ros.metrics import PanopticQuality
from hydranet_ros.spatial.cloud import cloud_dtype
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


def test_the_cloud_carries_the_instance_ids_on_request(node, drive):
    h = node
    h.subscribe(PointCloud2, f'{NS}/points')
    h.subscribe(CameraInfo, f'{NS}/camera_info')
    plain = run_drive(h, drive, [f'{NS}/points'], frames=1)[f'{NS}/points'][-1]
    assert 'instance' not in [f.name for f in plain.fields], 'no instance field unless asked'
    assert h.node.set_parameters([Parameter('points.instances', value=True)])[0].successful
    h.received[f'{NS}/points'].clear()
    cloud = run_drive(h, drive, [f'{NS}/points'], frames=1, sec=70)[f'{NS}/points'][-1]   # points alone run the head
    assert ('instance', 18, PointField.UINT16) in [(f.name, f.offset, f.datatype) for f in cloud.fields]
    pts = np.frombuffer(bytes(cloud.data), cloud_dtype(sigma=cloud.point_step == 24, instance=True))
    assert (pts['instance'] > 0).sum() > 50, 'points on cars and pedestrians carry ids'
    h.subscribe(Image, f'{NS}/instances')
    got = run_drive(h, drive, [f'{NS}/points', f'{NS}/instances', f'{NS}/camera_info'], frames=1, sec=90)
    def stamped(topic):
        return {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in got[f'{NS}/{topic}']}
    clouds, id_images, infos = stamped('points'), stamped('instances'), stamped('camera_info')
    stamp = max(set(clouds) & set(id_images) & set(infos))
    cloud, ids_msg, info = clouds[stamp], id_images[stamp], infos[stamp]
    pts = np.frombuffer(bytes(cloud.data), cloud_dtype(sigma=cloud.point_step == 24, instance=True))
    ids = image_to_numpy(ids_msg)
    fx, cx, fy, cy = (info.p[0], info.p[2], info.p[5], info.p[6]) if info.p[0] else (info.k[0], info.k[2], info.k[4],
                                                                                      info.k[5])
    u = np.rint(pts['x'] / pts['z'] * fx + cx).astype(int)
    v = np.rint(pts['y'] / pts['z'] * fy + cy).astype(int)
    assert (pts['instance'] == ids[v, u]).all(), 'each point has the id of its pixel in `instances`'
