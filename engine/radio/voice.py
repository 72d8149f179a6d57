"""Spoken call-outs: ``espeak-ng`` (Mandarin) renders a WAV, PTT is held for it plus a tail."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

from engine.radio.errors import RadioError
from engine.radio.ptt import DEFAULT_TX_TIMEOUT, Ptt, keyed

ESPEAK = "espeak-ng"
MANDARIN = "cmn"
DEFAULT_TAIL = 0.5  # seconds of carrier after the audio, so the last syllable is not cut


class VoiceError(RadioError):
    """The message could not be rendered or played."""


async def synthesize(text: str, wav: Path, *, voice: str = MANDARIN, speed: int = 150) -> float:
    """Render ``text`` into ``wav``; its duration in seconds."""
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise VoiceError(f"{ESPEAK} not found (Debian: apt-get install espeak-ng)")
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", voice, "-s", str(speed), "-w", str(wav), "--", text,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await _wait(proc)
    if proc.returncode != 0:
        raise VoiceError(f"{ESPEAK} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return wav_duration(wav)


def wav_duration(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error, EOFError) as exc:
        raise VoiceError(f"not a WAV file: {path}: {exc}") from exc


async def _wait(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    try:
        return await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise


class Voice:
    """Speaks a call-out over a keyed transmitter.

    ``player`` (e.g. ``["aplay", "-q"]``) plays the WAV into the radio's audio input; the
    WAV path is appended. Without one, PTT is held for the audio's duration (the audio
    path is external, e.g. a sound card wired to the handset).
    """

    def __init__(
        self,
        *,
        voice: str = MANDARIN,
        tail: float = DEFAULT_TAIL,
        tx_timeout: float = DEFAULT_TX_TIMEOUT,
        player: Sequence[str] | None = None,
    ) -> None:
        self.voice = voice
        self.tail = tail
        self.tx_timeout = tx_timeout
        self.player = tuple(player) if player else None

    async def say(self, ptt: Ptt, text: str) -> float:
        """Transmit ``text``; the seconds PTT was meant to be held (audio plus tail)."""
        with tempfile.TemporaryDirectory(prefix="engine-voice-") as tmp:
            wav = Path(tmp) / "callout.wav"
            duration = await synthesize(text, wav, voice=self.voice)
            held = duration + self.tail
            if held > self.tx_timeout:
                limit = self.tx_timeout
                raise VoiceError(f"message lasts {held:.1f}s, over the {limit:.0f}s TX limit")
            async with keyed(ptt, self.tx_timeout):
                if self.player:
                    proc = await asyncio.create_subprocess_exec(
                        *self.player, str(wav),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    _, err = await _wait(proc)
                    if proc.returncode != 0:
                        raise VoiceError(f"player failed: {err.decode(errors='replace')}")
                else:
                    await asyncio.sleep(duration)
                await asyncio.sleep(self.tail)
        return held
