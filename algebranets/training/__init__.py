"""Training harness (imported on demand; it pulls in orbax and tensorboardX).

Modules: `config_lib` (schema, arg parsing, validation), `optimizers`
(optax chains and schedules), `experiment` (config -> task, model, mesh,
jitted steps), `trainer` (`train_and_evaluate`), `evaluator` (evaluation
and `evaluate_workdir`), `checkpointing` (orbax with corruption fallback),
`sharding` (mesh, batch placement, multi-host start), `state`
(`TrainState`), `metric_writer` (stdout, JSON lines, TensorBoard), `plots`.
"""
