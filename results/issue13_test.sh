#!/bin/sh
# Issue 13's clutter campaigns on held-out test seeds (--split test, seed 0), in real_clutter(_rects) + the
# default `lab` gap, resumable (--resume skips trials already done). Tuned on --split dev (results/issue13_dev/).
# They are stage `gated` of results/record_queue.sh (one definition of the commands, logged to campaigns.log);
# clearing and several-object scenes are its stage `scenes` (real + lab).
exec sh "$(dirname "$0")/record_queue.sh" gated
