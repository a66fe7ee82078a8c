#!/usr/bin/env bash
# Issue 17's adaptation experiment, end to end (docs/MODEL.md, "Adapting to an unseen look"):
#   1. record 24 unlabeled drives of the held-out look as bags (camera, camera_info, /odom and
#      /tf_static, no ground truth; KITTI-like and VGA cameras in turn; seeds 3000-3023, never scored),
#   2. export the bundled model as pseudo-label teachers and pseudo-label the bags (segmentation
#      where it is >= 0.8 sure, detection; depth comes from the photometric terms and odometry),
#   3. adapt: config/adapt_heldout.yaml (pseudo-labels + photometric terms + labelled varied drives),
#      then round 2 (config/adapt_heldout_round2.yaml: the adapted model as the teacher) and round 3
#      (config/adapt_heldout_round3{,b}.yaml: the labelled drives in the bags' look),
#   4. score before and after on held-out drives 2000-2009 of that look (and of the varied look the
#      model knew), KITTI and VGA cameras in turn.
# Usage: experiments/adapt_heldout.sh [RUN_DIR]   (default runs/adapt_heldout; about two hours on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/adapt_heldout}
PY="env PYTHONPATH=. .venv/bin/python"
mkdir -p "$RUN/bags"
for i in $(seq 0 23); do
  s=$((3000 + i))
  if [ $((i % 2)) -eq 0 ]; then cam=(--camera kitti --size 624x188); else cam=(--camera vga --size 640x480); fi
  [ -d "$RUN/bags/drive_$s" ] || $PY -m hydranet_ros.bag.make_bag "$RUN/bags/drive_$s" --seed $s --frames 16 \
      "${cam[@]}" --style heldout --no-ground-truth > /dev/null
done
$PY -m hydranet_ros.training.teachers models/hydranet_default.pt "$RUN/teachers"
$PY -m hydranet_ros.training.pseudo_label "$RUN"/bags/drive_* -o "$RUN/pseudo" \
    -t "$RUN/teachers/seg.onnx" -t "$RUN/teachers/det.onnx" \
    --min-segmentation-confidence 0.8
$PY -m hydranet_ros.training.train --config config/adapt_heldout.yaml
# round 2: the adapted network is the teacher, 500 more steps
$PY -m hydranet_ros.training.teachers models/hydranet_adapted.pt "$RUN/teachers2" --tasks segmentation,detection
$PY -m hydranet_ros.training.pseudo_label "$RUN"/bags/drive_* -o "$RUN/pseudo2" \
    -t "$RUN/teachers2/seg.onnx" -t "$RUN/teachers2/det.onnx" --min-segmentation-confidence 0.8
$PY -m hydranet_ros.training.train --config config/adapt_heldout_round2.yaml
# round 3: the round-2 network is the teacher; the labelled drives take the bags' light and sensor
# (round 3), and in 3b also every class its own colour
$PY -m hydranet_ros.training.teachers models/hydranet_adapted2.pt "$RUN/teachers3" --tasks segmentation,detection
$PY -m hydranet_ros.training.pseudo_label "$RUN"/bags/drive_* -o "$RUN/pseudo3" \
    -t "$RUN/teachers3/seg.onnx" -t "$RUN/teachers3/det.onnx" --min-segmentation-confidence 0.8
$PY -m hydranet_ros.training.train --config config/adapt_heldout_round3.yaml
$PY -m hydranet_ros.training.train --config config/adapt_heldout_round3b.yaml
for m in models/hydranet_default.pt models/hydranet_adapted.pt models/hydranet_adapted2.pt \
         models/hydranet_adapted3.pt models/hydranet_adapted3b.pt; do
  $PY -m hydranet_ros.training.evaluation --checkpoint "$m" --seeds 2000-2009 --style heldout --style varied \
      --camera kitti,vga --json "$RUN/$(basename "$m" .pt).json"
done
