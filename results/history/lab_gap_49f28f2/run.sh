#!/bin/sh
# The issue-10 campaigns (README "The physical reality gap"): run from the repository root,
# resumable (rerun the same line: --resume skips the trials already in results.jsonl).
# Each stage is appended to results/campaigns.log with its start and end.
set -u
PY="${PYTHON:-/work/venv/bin/python}"
export PYTHONPATH="$PWD"
stage() {  # stage NAME ARGS...: one `python -m app evaluate` campaign, logged
  name="$1"; shift
  echo "$(date -u +%FT%TZ) start $name: python -m app evaluate $*" >> results/campaigns.log
  "$PY" -m app evaluate "$@" --resume
  echo "$(date -u +%FT%TZ) end $name rc=$?" >> results/campaigns.log
}
case "${1:-main}" in
  main)  # real + lab on test: the fast trees, 10 trials per object
    stage lab_gap --trees drl_gan_vs,oracle,drl_gan --objects seen,unseen --trials 10 --domain real \
      --gap lab --split test --seed 0 --workers 2 --out results/lab_gap ;;
  slow)  # vs_only and drl_vs on the same seeds, fewer trials (vs_only costs ~25 s a trial)
    stage lab_gap_slow --trees vs_only,drl_vs --objects seen,unseen --trials "${TRIALS:-3}" --domain real \
      --gap lab --split test --seed 0 --workers 2 --out results/lab_gap ;;
  ablation)  # each lab component alone, on dev
    for c in hand_eye intrinsics latency arm objects table; do
      stage "ablation $c" --trees "${TREES:-drl_gan_vs}" --objects seen,unseen --trials "${TRIALS:-3}" \
        --domain real --gap "lab_only_$c" --split dev --seed 0 --workers 2 --out "results/lab_gap/ablation/$c"
    done ;;
esac
