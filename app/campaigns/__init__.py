"""Campaigns: many simulated episodes, planned, run on workers, resumed and summarized.

:mod:`~app.campaigns.engine` is the one engine (trial seeds, workers, the resumable results
file); :mod:`~app.campaigns.evaluate` (``python -m app evaluate``) and
:mod:`~app.campaigns.faults` (``python -m app faults``) are the two campaigns;
:mod:`~app.campaigns.report` (evaluate), :mod:`~app.campaigns.fault_report` (faults) and
:mod:`~app.campaigns.stats` turn results into summaries.
"""
