#!/bin/sh
# The results of record (issue 16): every campaign once more with the final code, on `test` seeds,
# in the `real` domain with the default physical gap (`lab`) and the shipped weights. One heavy job
# at a time (2 cores), resumable: rerun the same line and --resume skips the trials already written.
# Usage (from the repository root):
#   sh results/record_queue.sh [powered|clutter|gated|models|bench|paper|scenes|clearing|faults|adapted|all]
# or one tree of the powered run: sh results/record_queue.sh powered TREE [TRIALS] (the baselines were
# run to 10 trials per object first, then --resume to 20: a trial's seed does not depend on the count)
# A trial's seed depends on (split, --seed, object, trial index) only, not on the tree or the number
# of trials, so the paper's protocol (3 trials per object) is the first 3 trials of every tree of
# the powered run (same seeds, same code), plus `vs_only_fixed_y`, which only that table has.
set -u
PY="${PYTHON:-python}"
COMMON="--domain real --gap lab --split test --seed 0 --workers 2"
stage() {  # stage NAME ARGS...: one command of `python -m app`, logged to results/campaigns.log
  name="$1"; shift
  echo "$(date -u +%FT%TZ) start $name: python -m app $*" >> results/campaigns.log
  "$PY" -m app "$@"
  echo "$(date -u +%FT%TZ) end $name rc=$?" >> results/campaigns.log
}
what="${1:-all}"
if [ "$what" = powered ] && [ -n "${2:-}" ]; then  # one tree, to TRIALS per object (default 20)
  stage "powered $2" evaluate --trees "$2" --objects seen,unseen --trials "${3:-20}" $COMMON --out results/powered --resume
elif [ "$what" = powered ] || [ "$what" = all ]; then  # the fast trees first, the slow baselines last
  for t in drl_gan_vs:20 oracle:10 drl_gan:20 drl_vs:20 vs_only:20; do
    stage "powered ${t%:*}" evaluate --trees "${t%:*}" --objects seen,unseen --trials "${t#*:}" $COMMON \
      --out results/powered --resume
  done
fi
if [ "$what" = clutter ] || [ "$what" = all ]; then  # the paper's tree (no depth gate) on the cluttered table
  stage clutter evaluate --trees drl_gan_vs --objects seen,unseen --trials 5 --seed 0 --domain real_clutter \
    --gap lab --split test --workers 2 --out results/clutter --resume
fi
if [ "$what" = gated ] || [ "$what" = all ]; then  # issue 13's depth-gated tree on both clutter textures
  stage "clutter gated" evaluate --trees drl_gan_vs_gated --objects seen,unseen --trials 5 --seed 0 --domain real_clutter \
    --gap lab --split test --workers 2 --out results/clutter_gated --resume
  stage "clutter rects gated" evaluate --trees drl_gan_vs_gated --objects seen,unseen --trials 5 --seed 0 \
    --domain real_clutter_rects --gap lab --split test --workers 2 --out results/clutter_rects_gated --resume
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
if [ "$what" = paper ] || [ "$what" = all ]; then  # 3 trials per object per tree: the powered run's first 3, then vs_only_fixed_y
  mkdir -p results/paper_protocol
  if [ ! -s results/paper_protocol/results.jsonl ]; then
    "$PY" -c "import json,sys; [sys.stdout.write(l) for l in open('results/powered/results.jsonl') if json.loads(l)['trial'] < 3]" \
      > results/paper_protocol/results.jsonl
  fi
  stage paper_protocol evaluate --trees drl_gan_vs,drl_gan,vs_only,vs_only_fixed_y,drl_vs,oracle --objects seen,unseen \
    --trials 3 $COMMON --out results/paper_protocol --resume
fi
if [ "$what" = scenes ] || [ "$what" = clearing ] || [ "$what" = all ]; then  # clearing, with the physical gap (since 0beb9c7)
  stage clearing evaluate --trees clear_table --scene multi:4 --objects seen,unseen --trials 20 $COMMON \
    --out results/clearing --resume
fi
if [ "$what" = scenes ] || [ "$what" = all ]; then  # several objects, with the physical gap
  stage multi evaluate --trees drl_gan_vs_gated,drl_gan_vs --scene multi:3 --objects seen,unseen --trials 10 $COMMON \
    --out results/multi --resume
fi
if [ "$what" = faults ] || [ "$what" = all ]; then  # every kind and the fault-free baseline (280 trials, ~24 min)
  stage faults faults --tree drl_gan_vs --trials 20 $COMMON --out results/faults --resume
fi
if [ "$what" = adapted ] || [ "$what" = all ]; then  # issue 11 §3: the paper's segmentation path, no D_Y fallback
  stage "powered drl_gan_vs_adapted" evaluate --trees drl_gan_vs_adapted --objects seen,unseen --trials 10 $COMMON \
    --out results/paper_path --resume
fi
