"""Class activation maps (Grad-CAM, Grad-CAM++, EigenCAM) of medfm models, on
``pytorch_grad_cam``, of the input as the config's test pipeline makes it
(:func:`medfm.apis.inference.cam_visualizer`; docs/visualization.md)."""
from __future__ import annotations

import copy
import math
import os
import os.path as osp
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
import pytorch_grad_cam as gcam
import torch
import torch.nn as nn
from matplotlib.cm import ScalarMappable
from mmcv.cnn import ConvModule
from mmcv.transforms import Compose
from mmengine.dataset import default_collate
from mmengine.utils.dl_utils import is_norm
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from .plots import _save, plt

#: method name (lower case, as on the command line) -> grad-cam class
CAM_METHODS: Dict[str, type] = {
    'gradcam': gcam.GradCAM,
    'gradcam++': gcam.GradCAMPlusPlus,
    'eigencam': gcam.EigenCAM,
}


@dataclass
class CAMResult:
    """One image's map of one class: ``heatmap`` ``(H, W)`` in [0, 1],
    ``image`` and ``overlay`` ``(H, W, 3)`` uint8 RGB, ``score`` (sigmoid or
    softmax), ``note`` why it shows no heat (:func:`blank_note`) or '',
    ``below_thr`` the threshold no class passed (top class shown) or None."""

    img_path: str
    class_index: int
    class_name: str
    score: float
    method: str
    heatmap: np.ndarray = field(repr=False)
    overlay: np.ndarray = field(repr=False)
    image: np.ndarray = field(repr=False)
    note: str = ''
    below_thr: Optional[float] = None

    def file_name(self) -> str:
        """``<image stem>_<method>_<class>_<score>.png``."""
        stem = osp.splitext(osp.basename(self.img_path))[0]
        name = f"{stem}_{self.method.replace('++', 'pp')}_{self.class_name}"
        # no separators, spaces or shell-hostile characters
        return re.sub(r'[^\w.\-]+', '_', f'{name}_{self.score:.3f}') + '.png'

    def caption(self) -> str:
        """Class and score, or that no class passed the threshold."""
        return (f'{self.class_name}: score {self.score:.3f}' if self.below_thr is None
                else f'no class above threshold {self.below_thr:g}; top score '
                f'{self.score:.3f} ({self.class_name})')


#: the note of a map that is zero everywhere
ZERO_MAP_NOTE = 'map is zero everywhere (no evidence for the class at this layer)'


def blank_note(cam: np.ndarray) -> str:
    """Why a min-max scaled CAM shows no heat (zero everywhere, or a peak
    under one of the overlay's 255 colour steps), or ``''``.

    Examples:
        >>> blank_note(np.zeros((3, 3)))
        'map is zero everywhere (no evidence for the class at this layer)'
        >>> blank_note(np.full((3, 3), 1e-3))[:34]
        'map is nearly zero everywhere (pea'
        >>> blank_note(np.eye(3))
        ''
    """
    peak = float(np.max(cam)) if np.size(cam) else 0.0
    if not peak > 0:  # zero, or NaN
        return ZERO_MAP_NOTE
    if peak < 1 / 255:
        return (f'map is nearly zero everywhere (peak {peak:.1e}, under one '
                'colour step: the overlay shows no heat)')
    return ''


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """A sub-module by its dotted name, listing the valid names on failure."""
    modules = dict(model.named_modules())
    if name not in modules:
        raise KeyError(f'no layer {name!r} in the model; choose one of: '
                       + ', '.join(n for n in modules if n))
    return modules[name]


def num_extra_tokens(backbone: nn.Module) -> int:
    """Tokens before the patches of a ViT-like backbone: cls (and DeiT's
    distillation) token, then a ``PromptedViT``'s prompts; none in Swin."""
    extra = int(getattr(backbone, 'num_extra_tokens', 0) or 0)
    if hasattr(backbone, 'layers'):  # ViT family; Swin keeps prompts apart
        extra += int(getattr(backbone, 'prompt_length', 0) or 0)
    return extra


def default_target_layers(model: nn.Module) -> List[nn.Module]:
    """The layer whose activations and gradients make the map (one, in a
    list): the last feature map of a CNN, the norm before ViT's last attention."""
    backbone = model.backbone
    layers = getattr(backbone, 'layers', None)
    if getattr(backbone, 'num_extra_tokens', 0) and layers is not None \
            and hasattr(layers[-1], 'ln1'):
        # ViT: patch tokens reach the cls token only through the last attention
        return [layers[-1].ln1]
    if getattr(backbone, 'gap_before_final_norm', False):
        # ConvNeXt: the final norm sees the pooled 1x1 map; take the last stage
        return [backbone.stages[-1]]
    transitions = getattr(backbone, 'transitions', None)
    if transitions is not None and len(transitions):
        # DenseNet: the final norm + ReLU after the last dense block
        return [transitions[-1]]
    parent_of = {id(child): module for module in backbone.modules()
                 for child in module.children()}
    norms = [m for m in backbone.modules() if is_norm(m)]
    if not norms:
        raise ValueError('no norm layer in the backbone: name a target layer')
    # EfficientNet ends in conv + norm + activation (a ConvModule): take its
    # activated output, the features the head pools (pytorch-grad-cam's choice)
    parent = parent_of.get(id(norms[-1]))
    if isinstance(parent, ConvModule) and parent.with_activation:
        return [parent]
    return [norms[-1]]


def token_reshape(tensor: torch.Tensor, extra_tokens: int,
                  input_hw: Sequence[int]) -> torch.Tensor:
    """Tokens ``(B, L, C)`` as a map ``(B, C, h, w)`` of the input's aspect,
    ``extra_tokens`` leading ones dropped; a map is returned as is.

    Examples:
        >>> token_reshape(torch.zeros(2, 1 + 12, 5), 1, (96, 128)).shape
        torch.Size([2, 5, 3, 4])
    """
    if tensor.ndim == 4:
        return tensor
    if tensor.ndim != 3:
        raise ValueError(f'cannot make a map of a {tuple(tensor.shape)} tensor')
    tokens = tensor[:, extra_tokens:, :]
    n = tokens.shape[1]
    h = max(1, round(math.sqrt(n * input_hw[0] / input_hw[1])))
    w = n // h
    if h * w != n:
        raise ValueError(
            f'{n} tokens (after dropping {extra_tokens} extra) do not form a '
            f'grid with the input\'s aspect {input_hw[0]}x{input_hw[1]}')
    return tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)


def overlay_heatmap(img_rgb: np.ndarray, heatmap: np.ndarray,
                    alpha: float = 0.5) -> np.ndarray:
    """A JET-coloured ``heatmap`` (in [0, 1]) blended over an RGB uint8 image."""
    color = cv2.applyColorMap(np.uint8(255 * np.clip(heatmap, 0, 1)),
                              cv2.COLORMAP_JET)
    color = cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    out = (1 - alpha) * img_rgb.astype(np.float32) + alpha * color
    return np.clip(out, 0, 255).astype(np.uint8)


class CAMVisualizer:
    """Class activation maps of one mmpretrain ``ImageClassifier``: ``method``
    a key of :data:`CAM_METHODS`, ``target_layers`` dotted module names
    (default :func:`default_target_layers`), ``thr`` the score of a predicted
    class (multi-label); ``eigen_smooth`` and ``aug_smooth`` are grad-cam's."""

    def __init__(self,
                 model: nn.Module,
                 test_pipeline: Sequence[dict],
                 class_names: Sequence[str],
                 method: str = 'gradcam',
                 target_layers: Optional[Sequence[str]] = None,
                 thr: float = 0.5,
                 eigen_smooth: bool = False,
                 aug_smooth: bool = False) -> None:
        from mmpretrain.models.heads import MultiLabelClsHead
        from mmpretrain.registry import TRANSFORMS
        method = method.lower()
        if method not in CAM_METHODS:
            raise ValueError(f'unknown CAM method {method!r}; choose one of '
                             f'{", ".join(CAM_METHODS)}')
        self.model = model.eval()
        self.method = method
        self.class_names = list(class_names)
        self.thr = thr
        self.smooth = dict(aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
        self.multi_label = isinstance(model.head, MultiLabelClsHead)
        # a crop changes the geometry: the map is then shown on the network input
        self.crops = any('Crop' in t['type'] for t in test_pipeline)
        self.pipeline = Compose([TRANSFORMS.build(copy.deepcopy(t))
                                 for t in test_pipeline])
        # the original as the pipeline decodes it (16-bit, EXIF), not cv2.imread
        loads = [t for t in test_pipeline if t['type'].startswith('Load')]
        load = copy.deepcopy(loads[0]) if loads else dict(type='LoadMedFMCImage')
        if load['type'] == 'LoadImageFromFileOrCache':  # the original image
            load = load.get('loader') or dict(type='LoadImageFromFile')
        self.loader = TRANSFORMS.build(dict(load, to_float32=False))
        self.target_layers = ([get_layer(model, n) for n in target_layers]
                              if target_layers else default_target_layers(model))
        self._input_hw = (1, 1)
        extra = num_extra_tokens(model.backbone)
        reshape: Callable = lambda t: token_reshape(t, extra, self._input_hw)  # noqa: E731
        device = next(model.parameters()).device
        self.cam = CAM_METHODS[method](
            model=model, target_layers=self.target_layers,
            use_cuda=device.type == 'cuda', reshape_transform=reshape)

    def _prepare(self, img_path: str):
        data = self.pipeline(dict(img_path=img_path))
        batch = self.model.data_preprocessor(default_collate([data]), False)
        inputs = batch['inputs']
        # the network input as RGB uint8 (the pipeline keeps BGR)
        shown = data['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]
        return inputs, np.ascontiguousarray(shown)

    def select_classes(self, scores: np.ndarray,
                       classes: Optional[Sequence[Union[int, str]]] = None
                       ) -> List[int]:
        """The classes to explain: requested ones, else the predicted ones
        (a multi-label image with no score above ``thr``: its top class)."""
        if classes:
            out = []
            for c in classes:
                if isinstance(c, str) and not c.isdigit():
                    if c not in self.class_names:
                        raise ValueError(f'unknown class {c!r}; classes: '
                                         f'{", ".join(self.class_names)}')
                    out.append(self.class_names.index(c))
                else:
                    if not 0 <= int(c) < len(self.class_names):
                        raise ValueError(f'class index {c} out of range')
                    out.append(int(c))
            return out
        if self.multi_label:
            picked = [int(i) for i in np.flatnonzero(scores > self.thr)]
            return picked or [int(scores.argmax())]
        return [int(scores.argmax())]

    def __call__(self, img_path: str,
                 classes: Optional[Sequence[Union[int, str]]] = None
                 ) -> List[CAMResult]:
        """One :class:`CAMResult` per class of :meth:`select_classes`."""
        inputs, shown = self._prepare(img_path)
        self._input_hw = tuple(inputs.shape[-2:])
        with torch.no_grad():
            logits = self.model(inputs, mode='tensor')[0]
        scores = (logits.sigmoid() if self.multi_label
                  else logits.softmax(-1)).cpu().numpy()
        picked = self.select_classes(scores, classes)
        none_above = self.multi_label and not classes and scores.max() <= self.thr
        # one forward/backward for all classes: the image repeated per class
        batch = inputs.repeat(len(picked), 1, 1, 1)
        # a frozen backbone (linear probe, VPT): ask for a gradient at the input
        batch.requires_grad_(True)
        targets = [ClassifierOutputTarget(c) for c in picked]
        with torch.enable_grad():
            maps = self.cam(batch, targets, **self.smooth)
        if self.crops:
            base = shown
        else:
            base = self.loader(dict(img_path=img_path))['img']
            base = cv2.cvtColor(base, cv2.COLOR_GRAY2RGB if base.ndim == 2
                                else cv2.COLOR_BGR2RGB)
        h, w = base.shape[:2]
        results = []
        for c, m in zip(picked, maps):
            heat = cv2.resize(m.astype(np.float32), (w, h),
                              interpolation=cv2.INTER_LINEAR)
            heat = np.clip(heat, 0, 1)
            results.append(CAMResult(
                img_path=img_path, class_index=c, class_name=self.class_names[c],
                score=float(scores[c]), method=self.method, heatmap=heat,
                overlay=overlay_heatmap(base, heat), image=base, note=blank_note(m),
                below_thr=self.thr if none_above else None))
        return results

    @staticmethod
    def save(results: Sequence[CAMResult], out_dir: str, title: str = '') -> List[str]:
        """Write each :func:`cam_panel` as a PNG (:meth:`CAMResult.file_name`)."""
        os.makedirs(out_dir, exist_ok=True)
        paths = [osp.join(out_dir, r.file_name()) for r in results]
        for r, path in zip(results, paths):
            _save(cam_panel(r, title), path, dpi=100)  # its images' size
        return paths


def cam_panel(result: CAMResult, title: str = ''):
    """Original and overlay, each >= 256 px on its short side, a colour bar,
    the :meth:`~CAMResult.caption` over the overlay, ``title`` above."""
    h, w = result.heatmap.shape
    inch = max(1.0, 256 / min(h, w)) / 100  # of a pixel, at 100 dpi
    fig, axes = plt.subplots(1, 2, figsize=(2 * w * inch + 2, h * inch + 1.4),
                             dpi=100, layout='constrained')
    for ax, image, text in ((axes[0], result.image, 'original'),
                            (axes[1], result.overlay, '; '.join(
                                filter(None, (result.caption(), result.note))))):
        ax.imshow(image)
        ax.set_title(textwrap.fill(text, 44), fontsize=9)
        ax.axis('off')
    fig.colorbar(ScalarMappable(cmap='jet'), ax=axes[1],
                 label=f'{result.method} (scaled to [0, 1])')
    fig.suptitle(title)
    return fig
