#!/bin/sh
# Issue 13 on held-out test seeds (--split test, seed 0), resumable (--resume skips trials already done).
# Clearing and multi-object scenes run in `real` without the physical gap (scene episodes do not draw it);
# the clutter campaigns run in real + the default `lab` gap. Tuned on --split dev (results/issue13_dev/).
set -e
E="python -m app evaluate --objects seen,unseen --split test --seed 0 --workers 2 --resume"
$E --trees clear_table --scene multi:4 --trials 20 --domain real --out results/clearing
$E --trees drl_gan_vs_gated --trials 5 --domain real_clutter --out results/clutter_gated
$E --trees drl_gan_vs_gated --trials 5 --domain real_clutter_rects --out results/clutter_rects_gated
$E --trees drl_gan_vs_gated,drl_gan_vs --scene multi:3 --trials 10 --domain real --out results/multi
