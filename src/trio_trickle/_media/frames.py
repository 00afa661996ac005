"""Decoded media frames as handed to and returned from a pipeline's hooks.

The runner decodes trickle MPEG-TS into these, calls ``process_video`` /
``process_audio`` with them and encodes what comes back. They carry a torch
tensor and the *input* presentation timestamp with its time base, exactly as the
demuxer reported them: nothing downstream re-guesses timing from a frame rate
(Scope#901/#994 re-stamped frames at several places and broke the muxer).

Frames are immutable; a hook returns ``frame.with_tensor(new)`` to keep the
timing. They compare by identity (``eq=False``) because tensors have no useful
``==``. Construction validates layout and raises :class:`InvalidMessage` (a
``ValueError``) so a malformed frame never reaches the encoder.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import attrs
import av
import numpy as np
import numpy.typing as npt
import torch

from .._errors import InvalidMessage, TrickleError

__all__ = ["AudioFrame", "MediaError", "VideoFrame"]


class MediaError(TrickleError):
    """Media that cannot be decoded or encoded at all (no usable stream, codec failure).

    Single bad packets inside a stream are skipped and counted instead.
    """


def _fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidMessage:
    return InvalidMessage(f"{attribute.name}: {problem}")


def _contiguous(value: object) -> object:
    # Converters run before validators: leave non-tensors for the validator to reject.
    if isinstance(value, torch.Tensor):
        return value.contiguous()
    return value


def _check_pts(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(attribute, f"must be an int, got {type(value).__name__}")


def _check_time_base(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Fraction) or value <= 0:
        raise _fail(attribute, f"must be a positive Fraction, got {value!r}")


def _check_video_tensor(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise _fail(attribute, f"must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype != torch.uint8:
        raise _fail(attribute, f"must have dtype torch.uint8, got {value.dtype}")
    if value.dim() != 3 or value.shape[2] != 3:
        raise _fail(attribute, f"must have shape (H, W, 3), got {tuple(value.shape)}")
    if value.shape[0] < 1 or value.shape[1] < 1:
        raise _fail(attribute, f"must not be empty, got {tuple(value.shape)}")


def _check_audio_tensor(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, torch.Tensor):
        raise _fail(attribute, f"must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype != torch.float32:
        raise _fail(attribute, f"must have dtype torch.float32, got {value.dtype}")
    if value.dim() != 2 or value.shape[0] < 1 or value.shape[1] < 1:
        raise _fail(attribute, f"must have shape (channels, samples), got {tuple(value.shape)}")
    if value.device.type != "cpu":
        raise _fail(attribute, f"must be on the CPU, got {value.device}")


@functools.lru_cache(maxsize=64)
def layout_channels(layout: str) -> int:
    """Channel count of an FFmpeg channel layout name ("mono", "stereo", "5.1", ...)."""
    try:
        return int(av.AudioLayout(layout).nb_channels)
    except (ValueError, TypeError) as exc:
        raise InvalidMessage(f"layout: unknown channel layout {layout!r}") from exc


def _check_layout(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise _fail(attribute, "must be a non-empty channel layout name")
    channels = layout_channels(value)
    tensor = getattr(inst, "tensor", None)
    if isinstance(tensor, torch.Tensor) and tensor.shape[0] != channels:
        raise _fail(
            attribute, f"{value!r} has {channels} channels but the tensor has {tensor.shape[0]}"
        )


def _check_rate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 768_000:
        raise _fail(attribute, f"must be an int sample rate in 1..768000, got {value!r}")


@attrs.frozen(kw_only=True, eq=False)
class VideoFrame:
    """One decoded video picture.

    Layout (checked on construction):

    * ``tensor``: ``torch.uint8``, shape ``(H, W, 3)`` (height, width, channel),
      channels in **RGB** order, values 0..255, **contiguous** (a non-contiguous
      tensor is made contiguous on construction). No batch dimension. It lives on
      the device the decoder was asked for (``"cpu"`` by default, ``"cuda"`` when
      the session asks and CUDA is available); the encoder accepts any device.
      uint8 HWC is what the codec path produces and consumes directly
      (``to_ndarray("rgb24")``/``from_ndarray``), 4x smaller than float32, with
      no per-frame PIL conversion; a hook that wants float does
      ``frame.tensor.float() / 255`` itself.
    * ``pts``: the presentation timestamp in ``time_base`` units, copied from the
      input stream unchanged (MPEG-TS: ``time_base == Fraction(1, 90000)``).
    """

    tensor: torch.Tensor = attrs.field(converter=_contiguous, validator=_check_video_tensor)
    pts: int = attrs.field(validator=_check_pts)
    time_base: Fraction = attrs.field(validator=_check_time_base)

    @property
    def time(self) -> float:
        """Presentation time in seconds (``pts * time_base``)."""
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def width(self) -> int:
        return int(self.tensor.shape[1])

    def with_tensor(self, tensor: torch.Tensor) -> VideoFrame:
        """A frame with the same timing and a new picture (any size, same layout rules)."""
        return VideoFrame(tensor=tensor, pts=self.pts, time_base=self.time_base)

    def to_numpy(self) -> npt.NDArray[np.uint8]:
        """The picture as a CPU numpy ``uint8`` (H, W, 3) array (shares memory on CPU)."""
        array: npt.NDArray[np.uint8] = self.tensor.cpu().numpy()
        return array

    @classmethod
    def from_numpy(
        cls, array: npt.NDArray[np.uint8], *, pts: int, time_base: Fraction, device: str = "cpu"
    ) -> VideoFrame:
        """Wrap an (H, W, 3) RGB uint8 array (no copy on CPU)."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if device != "cpu":
            tensor = tensor.to(device)
        return cls(tensor=tensor, pts=pts, time_base=time_base)


@attrs.frozen(kw_only=True, eq=False)
class AudioFrame:
    """A block of decoded audio samples.

    * ``tensor``: ``torch.float32``, shape ``(channels, samples)`` (planar), values
      nominally in [-1, 1], contiguous, always on the CPU (audio is small and the
      encoder works on the CPU).
    * ``sample_rate``: samples per second per channel.
    * ``layout``: FFmpeg channel layout name; its channel count must equal
      ``tensor.shape[0]`` ("mono" = 1, "stereo" = 2, ...).
    * ``pts`` / ``time_base``: timestamp of the first sample, from the input.
    """

    tensor: torch.Tensor = attrs.field(converter=_contiguous, validator=_check_audio_tensor)
    pts: int = attrs.field(validator=_check_pts)
    time_base: Fraction = attrs.field(validator=_check_time_base)
    sample_rate: int = attrs.field(validator=_check_rate)
    layout: str = attrs.field(validator=_check_layout)

    @property
    def time(self) -> float:
        """Presentation time of the first sample, in seconds."""
        return float(self.pts * self.time_base)

    @property
    def channels(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def samples(self) -> int:
        return int(self.tensor.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds (``samples / sample_rate``)."""
        return self.samples / self.sample_rate

    def with_tensor(self, tensor: torch.Tensor) -> AudioFrame:
        """Same timing, rate and layout; new samples (the channel count must match)."""
        return AudioFrame(
            tensor=tensor,
            pts=self.pts,
            time_base=self.time_base,
            sample_rate=self.sample_rate,
            layout=self.layout,
        )

    def to_numpy(self) -> npt.NDArray[np.float32]:
        """Samples as a numpy float32 (channels, samples) array (shares memory)."""
        array: npt.NDArray[np.float32] = self.tensor.numpy()
        return array
