from .hooks import ClassCountCheckHook, FiniteLossHook
from .speed import ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'FiniteLossHook', 'ChannelsLastHook',
           'FastClsDataPreprocessor']
