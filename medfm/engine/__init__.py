from .hooks import (
    ClassCountCheckHook,
    EpochSeedHook,
    FiniteLossHook,
    KeepOtherRunsHook,
    ResumeCheckHook,
)
from .loops import (
    EpochSpanningBatchSampler,
    EpochSpanningTrainLoop,
    InMemoryValLoop,
    SpanningDataLoader,
)
from .speed import ChannelsLastDDP, ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'KeepOtherRunsHook', 'ResumeCheckHook',
           'ChannelsLastDDP', 'ChannelsLastHook', 'FastClsDataPreprocessor',
           'EpochSpanningBatchSampler', 'EpochSpanningTrainLoop',
           'InMemoryValLoop', 'SpanningDataLoader']
