#!/bin/sh
# Issue 10, section 4: which part of reality costs the camera-driven trees what.
# drl_gan_vs and vs_only in real + each component of `lab` alone, and the whole of `lab`, on dev
# seeds, 2 trials per object (seen and compliant unseen), with the shipped code (motion check on).
# Usage (from the repository root): sh results/lab_gap/ablation_trees/run.sh
set -u
PY="${PYTHON:-python}"
OUT="${OUT:-results/lab_gap/ablation_trees}"
for tree in drl_gan_vs vs_only; do
  for g in lab hand_eye intrinsics latency arm objects table; do
    gap="lab_only_$g"; [ "$g" = lab ] && gap=lab
    "$PY" -m app evaluate --trees "$tree" --objects seen,unseen --trials 2 --domain real --gap "$gap" \
      --split dev --seed 0 --workers 2 --out "$OUT/$tree/$g" --resume
    echo "$(date -u +%FT%TZ) end ablation $tree $g rc=$?" >> results/campaigns.log
  done
done
