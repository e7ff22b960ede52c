"""Upstream's ``VideoBackend`` video-loader API for the pinned vLLM (back-port, rule P22).

Upstream split its OpenCV video loader (``vllm.multimodal.video.VideoBackend``, registered as "opencv") into a
frame-index policy, ``compute_frames_index_to_sample(source, target)`` over ``VideoSourceMetadata`` /
``VideoTargetMetadata``, and the decoding (``vllm.multimodal.video_decoders.opencv``); a model file subclasses it
to change only the policy (LLaVA-OneVision-2's ``LlavaOnevision2VideoBackend``) and registers it with
``VIDEO_LOADER_REGISTRY.register(name, video_processor=...)``. vLLM 0.13.0 has neither: its loaders are
``VideoLoader`` / ``OpenCVVideoBackend`` with one ``load_bytes(data, num_frames, fps, **kwargs)`` and its registry
is a plain ``ExtensionManager`` whose ``register(name)`` takes no binding.

This is upstream's class for the OpenCV codec over the pinned ``OpenCVVideoBackend`` (the pinned ``VideoMediaIO``
calls ``load_bytes`` as its own loader): upstream's source metadata (the header frame count, the demuxer count
when the header has none, the end-of-stream cross-check for edit lists), upstream's uniform policy, frames read as
upstream reads them without frame recovery, and upstream's HF metadata. Its registry registers into the pinned
one and records upstream's processor binding, which 0.13.0 never consults: its ``VideoMediaIO`` picks a loader by
``VLLM_VIDEO_LOADER_BACKEND`` or ``--media-io-kwargs '{"video": {"video_backend": ...}}'`` only.
Not supported (0.13.0 has no counterpart, each raises): the other codecs (torchcodec, PyNvVideoCodec, DeepStream),
``frame_recovery=True``, GPU-only backends.
Written by model-migrate-flagos; ``migrate_model.py apply`` installs it as ``vllm_fl/compat/video_backend.py``.
"""

from __future__ import annotations

import math
import os
from io import BytesIO
from typing import Any, ClassVar, NamedTuple

import numpy as np
from vllm.logger import init_logger
from vllm.multimodal.video import VIDEO_LOADER_REGISTRY as _PINNED_REGISTRY
from vllm.multimodal.video import OpenCVVideoBackend as _PinnedOpenCVVideoBackend

__all__ = ["VIDEO_LOADER_REGISTRY", "VideoBackend", "VideoLoaderRegistry", "VideoSourceMetadata",
           "VideoTargetMetadata", "get_video_loader_backend_for_processor"]

logger = init_logger(__name__)

# upstream's decoder options per codec (video_decoders/__init__.py _BACKEND_OPTION_DEFAULTS): the OpenCV codec
# takes none, and an option of another codec is refused as upstream's resolve_video_backend_kwargs refuses it
_OTHER_CODEC_OPTIONS = frozenset({"num_ffmpeg_threads", "seek_mode", "device", "hw_decoders", "max_width",
                                  "max_height", "pool_size", "timeout_sec"})


class VideoTargetMetadata(NamedTuple):
    """Metadata describing the requested video sample."""

    num_frames: int
    fps: float
    max_duration: float


class VideoSourceMetadata(NamedTuple):
    """Metadata describing the encoded video source."""

    total_frames_num: int
    original_fps: float
    duration: float


class VideoLoaderRegistry:
    """Upstream's registry calls over the pinned ``VIDEO_LOADER_REGISTRY`` (the one the pinned ``VideoMediaIO``
    loads from): ``register(name, video_processor=...)`` registers the class there and records the binding."""

    def __init__(self, pinned) -> None:
        self._pinned = pinned
        self.processor2backend: dict[str, str] = {}

    def register(self, name: str, *, video_processor: str | tuple[str, ...] | None = None,
                 requires_gpu: bool = False):
        if requires_gpu:
            raise NotImplementedError(f"video backend {name!r} needs a GPU decoder, which vLLM 0.13.0 does not have")
        if video_processor is None:
            processors: tuple[str, ...] = ()
        elif isinstance(video_processor, str):
            processors = (video_processor,)
        elif all(isinstance(p, str) for p in video_processor):
            processors = tuple(video_processor)
        else:
            raise TypeError("video_processor must be a class name or a tuple of class names")
        register_pinned = self._pinned.register(name)

        def wrap(cls):
            register_pinned(cls)
            for processor_name in processors:
                self.processor2backend[processor_name] = name
            return cls

        return wrap

    def get_backend_for_video_processor(self, video_processor: str | None) -> str | None:
        return None if video_processor is None else self.processor2backend.get(video_processor)

    def backend_requires_gpu(self, name: str) -> bool:
        return False

    def load(self, name: str, *args: Any, **kwargs: Any):
        return self._pinned.load(name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # the pinned registry's other members (name2class)
        return getattr(self._pinned, name)


VIDEO_LOADER_REGISTRY = VideoLoaderRegistry(_PINNED_REGISTRY)


def get_video_loader_backend_for_processor(video_processor: str | None) -> str | None:
    return VIDEO_LOADER_REGISTRY.get_backend_for_video_processor(video_processor)


def _check_frame_pixel_limit(width: int, height: int) -> None:
    # upstream's envs.VLLM_MAX_IMAGE_PIXELS (0.13.0's vllm.envs lacks it), read as upstream's lambda reads it
    max_pixels = int(os.getenv("VLLM_MAX_IMAGE_PIXELS", "178956970"))
    if max_pixels > 0 and width * height > max_pixels:
        raise ValueError(
            f"Video frame dimensions {width}x{height} ({width * height} pixels) exceed the maximum of "
            f"{max_pixels} pixels. Set VLLM_MAX_IMAGE_PIXELS to increase this limit.")


def _open(data: bytes):
    import cv2

    cap = cv2.VideoCapture(BytesIO(data), _PinnedOpenCVVideoBackend().get_cv2_video_api(), [])
    if not cap.isOpened():
        raise ValueError("Could not open video stream")
    return cap


def _demux_count_frames(data: bytes) -> int:
    import cv2

    buf = BytesIO(data)  # must outlive release(): OpenCV's stream binding does not own it
    demux_cap = cv2.VideoCapture(buf, _PinnedOpenCVVideoBackend().get_cv2_video_api(), [cv2.CAP_PROP_FORMAT, -1])
    count = 0
    while demux_cap.grab():
        count += 1
    demux_cap.release()
    if count == 0:
        raise ValueError("Could not determine the number of video frames")
    return count


def _video_metadata(data: bytes) -> VideoSourceMetadata:
    """Upstream's ``OpenCVVideoBackendMixin.get_video_metadata``."""
    import cv2

    cap = _open(data)
    total_frames_num = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    original_fps = cap.get(cv2.CAP_PROP_FPS)
    if total_frames_num <= 0:  # streamed WebM/MKV and raw H.264 have no frame count in the header
        total_frames_num = _demux_count_frames(data)
        duration = total_frames_num / original_fps if original_fps > 0 else 0
        return VideoSourceMetadata(total_frames_num, original_fps, duration)
    # an mp4 edit list can hide a decode lead-in the header counts: trust the end-of-stream position only when
    # the stream really ends there, with a one-frame tolerance
    if cap.set(cv2.CAP_PROP_POS_AVI_RATIO, 1.0):
        visible_frames = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
        at_stream_end = not cap.grab()
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        if at_stream_end and 0 < visible_frames < total_frames_num - 1:
            logger.warning("Video header claims %d frames but only %d are presentable; sampling over the true "
                           "frame count.", total_frames_num, visible_frames)
            total_frames_num = visible_frames
    duration = total_frames_num / original_fps if original_fps > 0 else 0
    return VideoSourceMetadata(total_frames_num=total_frames_num, original_fps=original_fps, duration=duration)


class VideoBackend(_PinnedOpenCVVideoBackend):
    """Upstream's uniform-sampling backend ("opencv" upstream) with the OpenCV codec; subclasses override
    ``compute_frames_index_to_sample`` (and ``_prepare_source``, ``_sampling_suffix``) as upstream's do."""

    _sampling_suffix: ClassVar[str] = ""

    @classmethod
    def compute_frames_index_to_sample(cls, source: VideoSourceMetadata, target: VideoTargetMetadata,
                                       **kwargs) -> list[int]:
        total_frames_num = source.total_frames_num
        num_frames_to_sample = total_frames_num
        if target.num_frames > 0:
            num_frames_to_sample = min(target.num_frames, total_frames_num)
        if target.fps > 0:
            num_frames_to_sample = min(num_frames_to_sample, math.floor(source.duration * target.fps))
        num_frames_to_sample = max(1, num_frames_to_sample)
        if num_frames_to_sample == total_frames_num:
            return list(range(num_frames_to_sample))
        return np.linspace(0, total_frames_num - 1, num_frames_to_sample, dtype=int).tolist()

    @classmethod
    def _prepare_source(cls, source: VideoSourceMetadata) -> VideoSourceMetadata:
        return source

    @classmethod
    def create_hf_metadata(cls, source: VideoSourceMetadata, valid_frame_indices: list[int],
                           video_backend: str) -> dict[str, Any]:
        return {
            "total_num_frames": source.total_frames_num,
            "fps": source.original_fps,
            "duration": source.duration,
            "video_backend": video_backend,
            "frames_indices": valid_frame_indices,
            "do_sample_frames": len(valid_frame_indices) == source.total_frames_num,
        }

    @classmethod
    def load_bytes(cls, data: bytes, num_frames: int = -1, fps: int = -1, max_duration: int = 300,
                   frame_recovery: bool = False, *, backend: str = "opencv", **kwargs: Any):
        import cv2

        if backend != "opencv":
            raise NotImplementedError(f"video codec {backend!r}: vLLM 0.13.0 decodes videos with OpenCV only")
        if frame_recovery:
            raise NotImplementedError("frame_recovery: vLLM 0.13.0's OpenCV reader has no forward-scan recovery")
        misplaced = sorted(kwargs.keys() & _OTHER_CODEC_OPTIONS)
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} is not supported by the 'opencv' backend")
        target = VideoTargetMetadata(num_frames=num_frames, fps=fps, max_duration=max_duration)
        cap = _open(data)
        _check_frame_pixel_limit(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        source = cls._prepare_source(_video_metadata(data))
        frame_idx = cls.compute_frames_index_to_sample(source=source, target=target, **kwargs)
        wanted = set(frame_idx)
        # the pinned reader is upstream's without recovery: grab up to the last index, retrieve the wanted ones
        frames, _, valid = cls._read_frames(cap, wanted, len(wanted), max(frame_idx))
        if len(valid) < len(frame_idx):
            logger.warning("%s video loading: expected %d frames but got %d.", backend, len(frame_idx), len(valid))
        return frames, cls.create_hf_metadata(source=source, video_backend=f"{backend}{cls._sampling_suffix}",
                                               valid_frame_indices=valid)
