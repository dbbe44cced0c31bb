"""Evaluate stage: score answers for consistency with their source and reference, run the harness, audit data.

* `score.Scorer` / `groundtune score`: per-answer `consistency` and its signals (signals.py, text.py);
* `calibrate` / `groundtune calibrate`: fit the combination on half of the hand-labelled set, report on the other;
* `harness.evaluate_model` / `groundtune eval`: generate answers, score them, write report.json/md/html;
* `audit.audit_pairs` / `groundtune audit`: claims in the user's reference answers the passage does not support.
"""
