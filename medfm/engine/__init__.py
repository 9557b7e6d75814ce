from .hooks import (
    ClassCountCheckHook,
    EpochSeedHook,
    FiniteLossHook,
    KeepOtherRunsHook,
    ResumedScheduleHook,
)
from .loops import (
    EpochSpanningBatchSampler,
    EpochSpanningTrainLoop,
    InMemoryValLoop,
    SpanningDataLoader,
)
from .speed import ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'KeepOtherRunsHook', 'ResumedScheduleHook',
           'ChannelsLastHook', 'FastClsDataPreprocessor',
           'EpochSpanningBatchSampler', 'EpochSpanningTrainLoop',
           'InMemoryValLoop', 'SpanningDataLoader']
