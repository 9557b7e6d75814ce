from .hooks import ClassCountCheckHook, EpochSeedHook, FiniteLossHook
from .loops import (
    EpochSpanningBatchSampler,
    EpochSpanningTrainLoop,
    InMemoryValLoop,
    SpanningDataLoader,
)
from .speed import ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'ChannelsLastHook', 'FastClsDataPreprocessor',
           'EpochSpanningBatchSampler', 'EpochSpanningTrainLoop',
           'InMemoryValLoop', 'SpanningDataLoader']
