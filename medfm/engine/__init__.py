from .hooks import ClassCountCheckHook

__all__ = ['ClassCountCheckHook']
