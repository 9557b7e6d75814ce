# Runtime shared by every medfm config.
default_scope = 'mmpretrain'
# mmengine's Runner, its environment/config/hook dump in the log file only
runner_type = 'MedFMRunner'
custom_imports = dict(imports=['medfm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # one checkpoint per epoch: test.sh evaluates all of them; written
    # atomically, each SHA-256 recorded in SHA256SUMS and checked at load
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1,
                    save_best='medfmc/score', rule='greater',
                    backend_args=dict(backend='medfm_run')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [
    dict(type='ClassCountCheckHook'),  # head vs dataset classes, before step 1
    dict(type='FiniteLossHook'),  # stop at a NaN/inf loss
    dict(type='EpochSeedHook'),  # resumed runs draw the same augmentations
    dict(type='KeepOtherRunsHook'),  # --resume OTHER/...: OTHER's best stays
    dict(type='ResumeCheckHook'),  # --resume: same schedule, empty scaler
    dict(type='RunRecordHook'),  # run.json: config, checkpoints, selection
    dict(type='StopWorkersHook'),  # dataloader workers stopped at the end
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# scalars.json and TensorBoard event files in <work_dir>/<time>/vis_data;
# other trackers: docs/tracking.md
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
