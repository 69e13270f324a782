#!/bin/sh
# Issue 13 campaigns, in priority order, in two passes (resumable: rerun the script; `--resume`
# skips the trials already done, and pass 2 extends pass 1's campaigns with more trials).
# Test seed 2000 on the legacy seed stream: measured before --split dev|test (issue 10) reached main;
# tuning used seeds 7 and 8. The committed first pass ran to the recording step (then stopped).
set -e
E="python -m app evaluate --objects seen,unseen --seed 2000 --workers 2 --resume"
# pass 1: a figure for every claim
$E --trees clear_table --scene multi:4 --trials 3 --domain real --out results/clearing
$E --trees drl_gan_vs_gated --trials 1 --domain real_clutter --out results/clutter_gated
$E --trees drl_gan_vs_gated,drl_gan_vs --scene multi:3 --trials 4 --domain real --out results/multi
[ -f /tmp/clear_frames_run/done ] || { python -m app --tree clear_table --scene multi:4 --seed 2000 --record --log-dir /tmp/clear_frames_run || true; touch /tmp/clear_frames_run/done; }
$E --trees drl_gan_vs_gated --trials 1 --domain real_clutter_rects --out results/clutter_rects_gated
# pass 2: more trials
$E --trees clear_table --scene multi:4 --trials 6 --domain real --out results/clearing
$E --trees drl_gan_vs_gated --trials 2 --domain real_clutter --out results/clutter_gated
$E --trees drl_gan_vs_gated,drl_gan_vs --scene multi:3 --trials 8 --domain real --out results/multi
$E --trees drl_gan_vs_gated --scene multi:3 --trials 6 --domain real_clutter --out results/multi_clutter
$E --trees drl_gan_vs_gate_only --trials 1 --domain real_clutter --out results/clutter_gate_only
$E --trees drl_gan_vs --trials 1 --domain real_clutter_rects --out results/clutter_rects
