from .channels_last import ChannelsLastDDP, ChannelsLastHook
from .checkpoint_io import RunFileBackend
from .hooks import (
    ClassCountCheckHook,
    EpochSeedHook,
    FiniteLossHook,
    KeepOtherRunsHook,
    ResumeCheckHook,
    StopWorkersHook,
)
from .loops import (
    EpochSpanningBatchSampler,
    EpochSpanningTrainLoop,
    InMemoryValLoop,
    SpanningDataLoader,
)
from .record import RunRecordHook

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'KeepOtherRunsHook', 'ResumeCheckHook', 'RunRecordHook',
           'StopWorkersHook',
           'ChannelsLastDDP', 'ChannelsLastHook',
           'EpochSpanningBatchSampler', 'EpochSpanningTrainLoop',
           'InMemoryValLoop', 'RunFileBackend', 'SpanningDataLoader']
