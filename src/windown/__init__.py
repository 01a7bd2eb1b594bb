"""windown: turn a bedtime stretching routine into one calm, voice-guided MP3."""

__version__ = "0.1.0"
