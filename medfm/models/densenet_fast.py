"""mmpretrain's DenseNet with torchvision's in-place activations.

mmpretrain 1.2.0's ``DenseNet`` has the same layers as torchvision's
``densenet121`` (concatenation per layer, BN-ReLU-conv1x1-BN-ReLU-conv3x3,
no checkpointing unless ``memory_efficient=True``). The one difference in
the network itself is the activation: mmcv's ``build_activation_layer``
gives ``nn.ReLU(inplace=False)``, so each of the 120 BN-ReLU pairs writes a
second full-size activation tensor and its backward reads it again, where
torchvision's ``ReLU(inplace=True)`` overwrites the BN output. DenseNet is
bound by memory traffic rather than arithmetic (thin 32-channel 3x3 convs
on wide concatenations), all the more in bf16 with channels_last, where the
convolutions themselves get cheap.

:class:`DenseNetFast` is that network with in-place ReLUs: same modules,
same state-dict keys (checkpoints and ImageNet weights load unchanged), same
outputs. Select it with ``model.backbone.type='DenseNetFast'``.
"""
from __future__ import annotations

import torch.nn as nn
from mmpretrain.models.backbones import DenseNet
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DenseNetFast(DenseNet):
    """``DenseNet`` (mmpretrain) with in-place ReLU activations.

    Takes the arguments of :class:`mmpretrain.models.backbones.DenseNet`;
    ``act_cfg`` must be a ReLU (the default).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        relus = [m for m in self.modules() if isinstance(m, nn.ReLU)]
        if not relus:
            raise ValueError('DenseNetFast needs act_cfg=dict(type="ReLU")')
        # every ReLU follows a BatchNorm whose output nothing else reads,
        # and BatchNorm's backward does not need its output: safe in place
        for m in relus:
            m.inplace = True
