"""Replay a bag through the perception node and record what it publishes (demo and regression test).

The node runs as its own process through the real entry point (`perception_node --autostart`),
its inputs remapped to the bag's camera topics; this process plays the bag (Player) and records
the node's outputs together with the bag's camera and ground-truth topics (Recorder) into one
bag that `evaluate` reads.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from hydranet_ros import topics
from hydranet_ros.bag.storage import BagError, BagWriter, open_reader
from hydranet_ros.ros.bag_play import Player
from hydranet_ros.ros.bag_record import Recorder

RECORDED = rf'^/({topics.NODE_NAMESPACE}|ground_truth|camera)/'
#: the bag's odometry (make-bag writes it), played into the node's input/odom where present
ODOMETRY = '/odom'
#: The outputs that must be on the graph before playing (label infos are latched, camera_info
#: comes only with a camera_info input).
OUTPUTS = (*topics.TASK_TOPICS.values(), topics.STATS)


def node_command(model: str | Path, camera_prefix: str = '/camera', params: dict | None = None) -> list:
    """The perception_node command line: autostart, inputs remapped to the bag's camera."""
    cmd = [sys.executable, '-m', 'hydranet_ros.ros.perception_main', '--autostart', '--ros-args',
           '-r', f'{topics.INPUT_IMAGE}:={camera_prefix}/image_raw',
           '-r', f'{topics.INPUT_CAMERA_INFO}:={camera_prefix}/camera_info',
           '-r', f'{topics.INPUT_ODOM}:={ODOMETRY}']
    values = {'model_path': str(model), 'always_run': True, 'input_reliability': 'reliable', 'qos_depth': 50,
              'device': 'cpu', **(params or {})}
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ['-p', f'{key}:={text}']
    return cmd


def stop_process(process, timeout_s: float = 30.0) -> int:
    """Stop a node process the way ros2 launch does (SIGINT, then kill after timeout_s); its exit code."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class ReplayError(RuntimeError):
    """The node process or the playback failed; the message says how."""
    pass


def replay(bag, output_bag, model, rate: float = 0.25, params: dict | None = None, log=print,
           node_log: Path | None = None, startup_timeout: float = 120.0, drain_timeout: float = 60.0,
           storage: str = 'mcap') -> dict:
    """Play bag into a fresh node process and record; returns counts per recorded topic.

    rate: playback rate factor. The node keeps only the latest frame, so the rate must leave it
    time for each frame if every frame is to get outputs (the counts tell whether it did).
    """
    reader = open_reader(bag)
    frames = sum(c.msgcount for c in reader.connections if c.topic == '/camera/image_raw')
    if frames == 0:
        reader.close()
        raise BagError(f'{bag} has no /camera/image_raw messages to play')
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('hydranet_replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    writer = BagWriter(output_bag, storage)
    recorder = Recorder(node, writer, pattern=RECORDED, log=lambda m: None)
    stop = threading.Event()

    def spin():
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.05)
    spinner = threading.Thread(target=spin, daemon=True)
    log_file = open(node_log, 'w') if node_log else subprocess.DEVNULL
    process = subprocess.Popen(node_command(model, params=params), stdout=log_file, stderr=subprocess.STDOUT,
                               env=os.environ.copy())
    try:
        spinner.start()
        # only what the node reads and the evaluation records (not /tf_static, ...)
        wanted = sorted({c.topic for c in reader.connections if re.match(RECORDED, c.topic) or c.topic == ODOMETRY})
        player = Player(node, reader, topics=wanted)
        # The node is ready once its outputs and input subscription are on the graph.
        deadline = time.monotonic() + startup_timeout
        image_pub = player.publishers['/camera/image_raw']
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ReplayError(f'the perception node exited with code {process.returncode} during start-up'
                                  + (f' (log: {node_log})' if node_log else ''))
            if image_pub.get_subscription_count() > 0 and all(
                    topics.absolute(topics.NODE_NAMESPACE, o) in recorder.subscriptions for o in OUTPUTS):
                break
            time.sleep(0.1)
        else:
            raise ReplayError(f'the perception node did not come up within {startup_timeout:g} s')
        time.sleep(0.5)   # let the recorder's subscriptions match the node's publishers
        log(f'playing {bag} ({frames} frames) at rate {rate:g} into the node')
        player.play_once(rate)
        player.wait_for_acks()
        # Wait for the node to finish the last frame (its stats message comes last).
        deadline = time.monotonic() + drain_timeout
        last = None
        while time.monotonic() < deadline:
            n = recorder.received.get(topics.absolute(topics.NODE_NAMESPACE, topics.STATS), 0)
            if n >= frames:
                break
            if last is not None and n == last[0] and time.monotonic() - last[1] > 5.0:
                break     # nothing new for 5 s: frames were dropped, do not wait longer
            if last is None or n != last[0]:
                last = (n, time.monotonic())
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop_process(process)
        stop.set()
        spinner.join(timeout=10)
        writer.close()
        reader.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if node_log:
            log_file.close()
    return dict(writer.counts)
