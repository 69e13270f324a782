#!/bin/sh
# Issue 10, after the lab_gap test campaign (results/lab_gap/run.sh main), in this order:
# 1. the per-component ablation on dev (drl_gan_vs, 1 trial per object per component), run with
#    the code of commit 49f28f2, the tree the lab_gap campaign measured (OLD: a `git archive` of it);
# 2. the descent fix on dev, full lab, 2 trials per object: before = commit 49f28f2's drl_gan_vs
#    and oracle, after = this commit's drl_gan_vs_settle and oracle_settle (floor_limited descents
#    + settle correction).
# Usage: OLD=/tmp/world_49f sh results/lab_gap/after_main.sh   (from the repository root)
set -u
PY="${PYTHON:-/work/venv/bin/python}"
NEW="$PWD"
OLD="${OLD:?set OLD to an export of commit 49f28f2 (git archive 49f28f2 | tar -x -C DIR)}"
log() { echo "$(date -u +%FT%TZ) $*" >> "$NEW/results/campaigns.log"; }
for c in hand_eye intrinsics latency arm objects table; do
  log "start ablation $c (code of 49f28f2)"
  (cd "$OLD" && PYTHONPATH="$OLD" "$PY" -m app evaluate --trees drl_gan_vs --objects seen,unseen --trials 1 \
     --domain real --gap "lab_only_$c" --split dev --seed 0 --workers 2 --out "$NEW/results/lab_gap/ablation/$c" --resume)
  log "end ablation $c rc=$?"
done
log "start lab_gap_dev before (code of 49f28f2)"
(cd "$OLD" && PYTHONPATH="$OLD" "$PY" -m app evaluate --trees drl_gan_vs,oracle --objects seen,unseen --trials 2 \
   --domain real --gap lab --split dev --seed 0 --workers 2 --out "$NEW/results/lab_gap_dev/before" --resume)
log "end lab_gap_dev before rc=$?"
log "start lab_gap_dev after"
PYTHONPATH="$NEW" "$PY" -m app evaluate --trees drl_gan_vs_settle,oracle_settle --objects seen,unseen --trials 2 \
   --domain real --gap lab --split dev --seed 0 --workers 2 --out "$NEW/results/lab_gap_dev/after" --resume
log "end lab_gap_dev after rc=$?"
