#!/bin/sh
# Issue 13 clutter campaigns (resumable: rerun the script). Test seed 2000 (no --split on main yet).
set -e
E="python -m app evaluate --objects seen,unseen --seed 2000 --workers 2 --resume"
$E --trees drl_gan_vs_gated --trials 2 --domain real_clutter --out results/clutter_gated
$E --trees drl_gan_vs_gated --trials 1 --domain real_clutter_rects --out results/clutter_rects_gated
$E --trees drl_gan_vs_gate_only --trials 1 --domain real_clutter --out results/clutter_gate_only
$E --trees drl_gan_vs --trials 1 --domain real_clutter_rects --out results/clutter_rects
