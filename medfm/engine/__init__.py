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
from .runner import MedFMRunner

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'KeepOtherRunsHook', 'ResumeCheckHook', 'RunRecordHook',
           'StopWorkersHook', 'MedFMRunner',
           'ChannelsLastDDP', 'ChannelsLastHook',
           'EpochSpanningBatchSampler', 'EpochSpanningTrainLoop',
           'InMemoryValLoop', 'RunFileBackend', 'SpanningDataLoader']
