#!/bin/sh
# The blob motion check (config/vs.yaml features.motion_check), chosen on dev seeds only:
# drl_gan_vs in real + lab, 3 trials per object of seen, unseen (compliant) and unseen_rigid,
# before (BEFORE: a checkout of commit cae2948, the code without the check) and after (this commit).
# Usage (from the repository root): BEFORE=/path/to/cae2948 sh results/motion_check_dev/run.sh
set -u
PY="${PYTHON:-python}"
ARGS="--trees drl_gan_vs --objects seen,unseen,unseen_rigid --trials 3 --domain real --gap lab --split dev --seed 0 --workers 2 --resume"
(cd "${BEFORE:?}" && PYTHONPATH="$BEFORE" "$PY" -m app evaluate $ARGS --out "$OLDPWD/results/motion_check_dev/before")
"$PY" -m app evaluate $ARGS --out results/motion_check_dev/after
