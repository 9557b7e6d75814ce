from .hooks import ClassCountCheckHook
from .speed import ChannelsLastHook, FastClsDataPreprocessor

__all__ = ['ClassCountCheckHook', 'ChannelsLastHook', 'FastClsDataPreprocessor']
