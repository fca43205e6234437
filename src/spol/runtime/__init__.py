"""The Lightning/DDP runtime every stage and evaluation runs on: processes, trainers, fit and predict loops.

`distributed` (which rank, barriers, sums), `trainer` (one Trainer from ``recipe.trainer``), `system`
(the LightningModule a stage's loss lives in), `engine` (`fit_stage`: run folder, resume, force),
`prediction` (`run_inference`: a predict loop that hands each batch to a callback), `stage_folder`
(what a stage trained from, and whether it is done) and `training_log` (logs and metrics.csv).
"""
