#!/bin/sh
# The test-seed campaigns of session 4, one after the other (2 cores: one heavy job at a time),
# resumable: rerun the same line and --resume skips the trials already written.
# Usage (from the repository root): sh results/final_queue.sh [grasps|faults|lab_gap|lab_gap_slow|faults_all|ablation|all]
set -u
PY="${PYTHON:-python}"
stage() {  # stage NAME COMMAND ARGS...: one campaign, logged to results/campaigns.log
  name="$1"; shift
  echo "$(date -u +%FT%TZ) start $name: python -m app $*" >> results/campaigns.log
  "$PY" -m app "$@" --resume
  echo "$(date -u +%FT%TZ) end $name rc=$?" >> results/campaigns.log
}
what="${1:-all}"
if [ "$what" = grasps ] || [ "$what" = all ]; then  # the oracle on the compliant set, after the rolling fix
  echo "$(date -u +%FT%TZ) start oracle_grasps_compliant" >> results/campaigns.log
  "$PY" -m app grasps --objects unseen --trials 10 --seed 0 --oracle-trials 30 \
    --oracle-out results/oracle_grasps_compliant.json
  echo "$(date -u +%FT%TZ) end oracle_grasps_compliant rc=$?" >> results/campaigns.log
fi
if [ "$what" = faults ] || [ "$what" = all ]; then
  stage faults_recovery faults --tree drl_gan_vs --kinds gripper_fail,mask_empty,object_push,object_hidden \
    --no-baseline --trials 20 --split test --seed 0 --out results/faults_recovery --workers 2
fi
if [ "$what" = lab_gap ] || [ "$what" = all ]; then
  stage lab_gap evaluate --trees drl_gan_vs,oracle,drl_gan --objects seen,unseen --trials 10 --domain real \
    --gap lab --split test --seed 0 --workers 2 --out results/lab_gap
fi
if [ "$what" = lab_gap_slow ] || [ "$what" = all ]; then
  stage lab_gap_slow evaluate --trees drl_vs,vs_only --objects seen,unseen --trials 10 --domain real \
    --gap lab --split test --seed 0 --workers 2 --out results/lab_gap
fi
if [ "$what" = faults_all ] || [ "$what" = all ]; then  # every other fault kind, and the fault-free baseline
  stage faults_other faults --tree drl_gan_vs \
    --kinds frame_drop,frame_timeout,stale_frame,depth_nan,depth_zero,arm_reflex,latency_spike,checkpoint_missing,checkpoint_corrupt \
    --trials 20 --split test --seed 0 --out results/faults_other --workers 2
fi
if [ "$what" = ablation ] || [ "$what" = all ]; then  # each lab component alone, on dev
  OUT=results/lab_gap/ablation_trees PYTHON="$PY" sh results/lab_gap/ablation_trees/run.sh
fi
