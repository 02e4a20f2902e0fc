"""Lazy access to sounddevice (PortAudio) and the one place its errors become `AudioError`."""

from __future__ import annotations

from typing import Any

from avsclient.exceptions import AudioError

__all__ = ["load_sounddevice", "map_device_error"]

# PortAudio error codes (portaudio.h, PaErrorCode).
_PA_INVALID_CHANNEL_COUNT = -9998
_PA_INVALID_SAMPLE_RATE = -9997
_PA_INVALID_DEVICE = -9996
_PA_SAMPLE_FORMAT_NOT_SUPPORTED = -9994
_PA_DEVICE_UNAVAILABLE = -9985

_INSTALL_HINT = (
    "install the PortAudio library (Debian/Ubuntu: apt-get install libportaudio2; "
    "Fedora: dnf install portaudio; macOS: brew install portaudio)"
)
_DEVICE_HINT = (
    "connect a device, or run a sound server (PulseAudio or PipeWire) so that the ALSA "
    "'default' device exists (Debian: apt-get install pulseaudio libasound2-plugins); "
    "`python -m sounddevice` lists the devices PortAudio sees"
)


def load_sounddevice() -> Any:
    """Import sounddevice on first use, so that importing avsclient never needs PortAudio.

    Raises:
        AudioError: the PortAudio library or the sounddevice package is missing.
    """
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioError(f"PortAudio is not available ({exc}): {_INSTALL_HINT}") from exc
    except ImportError as exc:
        raise AudioError(f"sounddevice is missing ({exc}): pip install sounddevice") from exc
    return sounddevice


def map_device_error(exc: Exception, *, kind: str, device: object, rate: int) -> AudioError:
    """Translate a sounddevice/PortAudio exception into an `AudioError` that says what to do.

    Args:
        exc: the exception sounddevice raised (PortAudioError, ValueError, OSError).
        kind: "input" or "output".
        device: the device the caller asked for (None for the default).
        rate: the sample rate being opened.

    Returns:
        The `AudioError` to raise (the caller chains it with `from exc`).
    """
    name = "the default" if device is None else repr(device)
    code = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    if code == _PA_DEVICE_UNAVAILABLE:
        return AudioError(
            f"{name} {kind} device is busy or unavailable ({exc}): close the program using "
            f"it, or pick another device"
        )
    if code == _PA_INVALID_SAMPLE_RATE:
        return AudioError(
            f"{name} {kind} device does not support {rate} Hz ({exc}): pick a rate the device "
            f"supports, or leave the rate to avsclient, which resamples"
        )
    if code in (_PA_INVALID_CHANNEL_COUNT, _PA_SAMPLE_FORMAT_NOT_SUPPORTED):
        return AudioError(f"{name} {kind} device rejected the format ({exc}): pick another device")
    if code == _PA_INVALID_DEVICE or isinstance(exc, ValueError) or "device -1" in str(exc):
        # sounddevice raises ValueError for "No input device matching ...", and
        # PortAudioError("Error querying device -1") when there is no default device at all.
        return AudioError(f"no usable {kind} device ({name}: {exc}): {_DEVICE_HINT}")
    return AudioError(f"{name} {kind} device failed ({exc}): {_DEVICE_HINT}")
