#!/bin/sh
# Issue 13's clutter campaigns on held-out test seeds (--split test, seed 0), in real_clutter(_rects) + the
# default `lab` gap, resumable (--resume skips trials already done). Tuned on --split dev (results/issue13_dev/).
# Clearing and several-object scenes were run here without the physical gap until scene episodes drew it
# (commit 0beb9c7); they are now stage `scenes` of results/record_queue.sh (real + lab).
set -e
E="python -m app evaluate --objects seen,unseen --split test --seed 0 --workers 2 --resume"
$E --trees drl_gan_vs_gated --trials 5 --domain real_clutter --out results/clutter_gated
$E --trees drl_gan_vs_gated --trials 5 --domain real_clutter_rects --out results/clutter_rects_gated
