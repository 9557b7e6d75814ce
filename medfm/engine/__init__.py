from .hooks import ClassCountCheckHook, EpochSeedHook, FiniteLossHook
from .speed import ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'EpochSeedHook', 'FiniteLossHook',
           'ChannelsLastHook', 'FastClsDataPreprocessor']
