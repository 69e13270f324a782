#!/bin/sh
# The results of record (issue 16): every campaign once more with the final code, on `test` seeds,
# in the `real` domain with the default physical gap (`lab`) and the shipped weights. One heavy job
# at a time (2 cores), resumable: rerun the same line and --resume skips the trials already written.
# Usage (from the repository root): sh results/record_queue.sh [powered_fast|clutter|models|bench|paper|powered_slow|all]
set -u
PY="${PYTHON:-python}"
COMMON="--domain real --gap lab --split test --workers 2"
stage() {  # stage NAME ARGS...: one command of `python -m app`, logged to results/campaigns.log
  name="$1"; shift
  echo "$(date -u +%FT%TZ) start $name: python -m app $*" >> results/campaigns.log
  "$PY" -m app "$@"
  echo "$(date -u +%FT%TZ) end $name rc=$?" >> results/campaigns.log
}
what="${1:-all}"
if [ "$what" = powered_fast ] || [ "$what" = all ]; then  # the powered run: the method, its ceiling, its DRL-only baseline
  for t in drl_gan_vs:20 oracle:10 drl_gan:20 drl_gan_vs_adapted:10; do
    stage "powered ${t%:*}" evaluate --trees "${t%:*}" --objects seen,unseen --trials "${t#*:}" --seed 0 $COMMON \
      --out results/powered --resume
  done
fi
if [ "$what" = clutter ] || [ "$what" = all ]; then  # the paper's tree (no depth gate) on the cluttered table
  stage clutter evaluate --trees drl_gan_vs --objects seen,unseen --trials 5 --seed 0 --domain real_clutter \
    --gap lab --split test --workers 2 --out results/clutter --resume
fi
if [ "$what" = models ] || [ "$what" = all ]; then  # the shipped weights on paired held-out images
  stage eval-models eval-models --out results/models --seed 0 --episodes 30 --images 60
fi
if [ "$what" = bench ] || [ "$what" = all ]; then  # speed: ratios within one run
  echo "$(date -u +%FT%TZ) start bench sim/pipeline/campaign" >> results/campaigns.log
  "$PY" -m app bench sim --json > results/bench_sim.json
  "$PY" -m app bench pipeline --out results/bench_pipeline.json
  "$PY" -m app bench campaign --compare --seed 1 --out results/bench_campaign.json
  echo "$(date -u +%FT%TZ) end bench rc=$?" >> results/campaigns.log
fi
if [ "$what" = paper ] || [ "$what" = all ]; then  # the paper's protocol: 3 trials per object per tree (seed 1: other draws than the powered run)
  stage paper_protocol evaluate --trees drl_gan_vs,drl_gan,vs_only,vs_only_fixed_y,drl_vs,oracle --objects seen,unseen \
    --trials 3 --seed 1 $COMMON --out results/paper_protocol --resume
fi
if [ "$what" = powered_slow ] || [ "$what" = all ]; then  # the two slow baselines (VS from 0.6 m; the method without the GAN)
  for t in drl_vs:20 vs_only:20; do
    stage "powered ${t%:*}" evaluate --trees "${t%:*}" --objects seen,unseen --trials "${t#*:}" --seed 0 $COMMON \
      --out results/powered --resume
  done
fi
