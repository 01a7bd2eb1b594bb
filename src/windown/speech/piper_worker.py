"""A piper worker process: loads one voice once, then turns phrases into WAVs with word timings.

Runs in processes spawned by windown.speech.piper (never forked: ONNX Runtime keeps threads). Each
worker runs a single-threaded ONNX session; a build runs one worker per core, which measured faster
here than one session with a thread per core. Only this module imports piper and onnxruntime, so a
build whose clips are all cached never pays for them.

A phrase is spoken one sentence at a time. Piper joins the sentences of one text with no pause, so
windown puts its own SENTENCE_PAUSE_MS between them, and every gap is known. Each sentence is cut
at its first and last word (from Piper's phoneme alignments), which also removes the burst of noise
or breath Piper sometimes adds after a final full stop, then DC-free and faded at both ends. A long
sentence is said in pieces split at its commas, with Piper's own comma gap between them, which keeps
a worker's memory small (MAX_PIECE_PHONEME_SCALE); the voice's weights are mapped from one file
that every worker shares (prepare_voice), its decoder's 1-D convolutions run as 2-D ones, which ONNX Runtime
does faster (convolutions_as_2d).
"""

from __future__ import annotations

import json
import re
import signal
import tempfile
import wave
from pathlib import Path

import numpy as np

OUTPUT_VERSION = 2  # part of every piper clip's cache key: bump when what a worker writes changes
SENTENCE_PAUSE_MS = 450  # between the sentences of one cue: a calm breath, shorter than a cue gap (700)
# A sentence longer than this (its phoneme count times length_scale; about 4.5 s of speech) is said
# in pieces split at its commas. ONNX Runtime's arena keeps a worker's working memory at what its
# longest utterance needed: measured on one worker (40 phrases at scale 1.9), at most 140 gave 304 MB
# resident and 105 gave 256 MB, at the same speed; unsplit, the 9-second sentence took 353 MB. At 105,
# 17 of the presets' 277 sentences are split, all at a comma. Utterances still longer (no comma to
# split at) hand their extra memory back afterwards (ShrinkingSession).
MAX_PIECE_PHONEME_SCALE = 105
MIN_PIECE_WORDS = 3  # never split off a scrap: each piece keeps at least this many words
# The gap between two pieces, from the first's last word to the second's first, as Piper leaves it at a
# comma: measured on four of windown's sentences at length_scale 1.9 and 2.6, 165 to 325 ms per unit
# of scale, median about 225. Each piece is said with its comma, so its tune still runs on.
COMMA_GAP_MS_PER_SCALE = 225
CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
LEAD_MS = 40  # kept before the first word's first phoneme
RELEASE_MS = 80  # kept after the last word's last phoneme: final consonants ring on a little
EDGE_FADE_MS = 10  # each sentence fades in and out, so neither end of it clicks
PAD_MS = 30  # digital silence around the whole phrase: the clip trimmer always finds a clean edge
STRESS = set("ˈˌ")
PUNCTUATION = set(",.;:!?¡¿…—–-\"'()[]«»“”‘’")
BOS, EOS = "^", "$"

_voice = None  # the loaded PiperVoice, one per process
_load_error: str | None = None


def init(model_path: str, config_path: str) -> None:
    """Pool initialiser: load the voice once. A failure is kept and reported by every task."""
    global _voice, _load_error
    # Ctrl-C reaches the whole process group: the build process stops the pool, so a worker must
    # not die half-way with a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        # One thread per session, one session per core (faster here than one session, two threads).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Measured per worker on short cues: 279 MB with ONNX Runtime's defaults, 245 MB without
        # memory patterns and weight prepacking, at the same speed. Two workers must fit in 600 MB.
        # Re-measured for speed (one worker in one process, every third phrase of bedtime-lower-back,
        # 160 s of speech, CPU seconds per second of speech; a busy machine, so +-0.002 is noise):
        # as here 0.0806; prepacking on 0.0824; memory patterns on 0.0813 (and 308 MB, not 259);
        # graph optimisation "basic" instead of "all" 0.0799; phonemes looked up once per sentence
        # instead of twice 0.0828; no comma splitting 0.0820 (and 314 MB). None is worth changing:
        # the model's own work is the cost. Loading the voice took 0.3 CPU-s per worker.
        options.enable_mem_pattern = False
        options.add_session_config_entry("session.disable_prepacking", "1")
        session = onnxruntime.InferenceSession(model_path, sess_options=options,
                                               providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
        _voice = PiperVoice(session=ShrinkingSession(session, onnxruntime.RunOptions()), config=config)
    except Exception as exc:  # a file that is not a Piper voice, most likely
        _load_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


class ShrinkingSession:
    """The ONNX session, which hands its memory arena's free regions back after an utterance longer
    than MAX_PIECE_PHONEME_SCALE (a sentence with no comma to split at, or the rate calibration's
    slow reading). Ordinary pieces keep the arena: re-growing it on every run cost time."""

    def __init__(self, session, run_options):
        self.session = session
        self.shrink_options = run_options
        self.shrink_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.shrink_next = False

    def run(self, output_names, inputs, run_options=None):
        if self.shrink_next:
            return self.session.run(output_names, inputs, self.shrink_options)
        return self.session.run(output_names, inputs, run_options)

    def __getattr__(self, name):
        return getattr(self.session, name)


class VoiceLoadError(RuntimeError):
    """The voice could not be loaded; the parent turns it into one line naming the file."""


def voice():
    if _voice is None:
        raise VoiceLoadError(_load_error or "the voice was not loaded")
    return _voice


def sentences(text: str) -> list[str]:
    """Split where a sentence ends; Piper would otherwise run them together."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip())]
    return [p for p in parts if p]


def clauses(sentence: str, length_scale: float) -> list[str]:
    """The sentence as Piper should say it: whole, or split at commas (semicolons, colons) into pieces
    short enough that a worker's working memory stays small (see MAX_PIECE_PHONEME_SCALE)."""
    if phoneme_count(sentence) * length_scale <= MAX_PIECE_PHONEME_SCALE:
        return [sentence]
    words = sentence.split()
    best = None  # the clause boundary that best balances the two sides, by letters
    for match in CLAUSE_END.finditer(sentence):
        left, right = sentence[:match.start()], sentence[match.end():]
        if min(len(left.split()), len(right.split())) < MIN_PIECE_WORDS:
            continue
        worse = max(len(left), len(right))
        if best is None or worse < best[0]:
            best = (worse, left, right)
    if best is None or len(words) < 2 * MIN_PIECE_WORDS:
        return [sentence]
    return clauses(best[1], length_scale) + clauses(best[2], length_scale)


def phoneme_count(text: str) -> int:
    """Phonemes (stress and spaces included) espeak-ng gives for the text: what Piper's model sees."""
    return sum(len(p) for p in voice().phonemize(text))


def clause_pause_ms(length_scale: float) -> int:
    """Silence put between the pieces of one sentence, so the words keep Piper's own comma gap."""
    return max(0, round(COMMA_GAP_MS_PER_SCALE * length_scale) - LEAD_MS - RELEASE_MS)


def speak_sentence(text: str, length_scale: float, noise_scale: float, noise_w_scale: float
                   ) -> tuple[np.ndarray, list[tuple[int, int, str]] | None, int]:
    """(float audio cut to the words, word spans in samples within it or None, sample rate)."""
    from piper import SynthesisConfig

    v = voice()
    v.session.shrink_next = phoneme_count(text) * length_scale > MAX_PIECE_PHONEME_SCALE
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale,
                             normalize_audio=False)  # levelled later with the other engines, per clip
    audio_parts, spans, offset = [], [], 0
    aligned = True
    for chunk in v.synthesize(text, syn_config=config, include_alignments=True):
        audio_parts.append(chunk.audio_float_array)
        if chunk.phoneme_alignments is None:
            aligned = False
        else:
            spans.extend((offset + a, offset + b, n) for a, b, n in word_spans(chunk.phoneme_alignments))
        offset += len(chunk.audio_float_array)
    rate = v.config.sample_rate
    if not audio_parts:
        return np.zeros(0, np.float32), None, rate
    audio = np.concatenate(audio_parts).astype(np.float32)
    words = [w.strip("".join(PUNCTUATION)) for w in text.split()]
    words = [w for w in words if w]
    if aligned and spans:
        start = max(0, spans[0][0] - rate * LEAD_MS // 1000)
        stop = min(len(audio), spans[-1][1] + rate * RELEASE_MS // 1000)
        audio = audio[start:stop]
        timed = [(a - start, b - start, w) for a, b, w in match_words(words, spans)]
    else:  # no alignments from this voice: keep the audio whole, the clip trimmer finds the speech
        timed = None
    return clean(audio, rate), timed, rate


def word_spans(alignments) -> list[tuple[int, int, int]]:
    """(start sample, end sample, phoneme count) of each spoken word in one chunk: the phonemes
    between spaces, punctuation and stress marks left out."""
    spans: list[tuple[int, int, int]] = []
    position, start, end, count = 0, None, None, 0
    for a in alignments:
        if a.phoneme in (" ", EOS):
            if start is not None:
                spans.append((start, end, count))
            start, end, count = None, None, 0
        elif a.phoneme not in PUNCTUATION and a.phoneme != BOS:
            if start is None:
                start = position
            end = position + int(a.num_samples)
            count += a.phoneme not in STRESS
        position += int(a.num_samples)
    if start is not None:
        spans.append((start, end, count))
    return spans


def match_words(words: list[str], spans: list[tuple[int, int, int]]) -> list[tuple[int, int, str]]:
    """Give each written word a span. espeak-ng sometimes says two words as one ("for a" becomes one
    phonetic word) or one as two, so the two lists are aligned by length: the grouping whose
    phoneme counts best match the words' letter counts wins, and a span shared by several words is
    shared in proportion to their letters."""
    letters = [max(1, sum(c.isalnum() for c in w)) for w in words]
    if not words or not spans:
        return []
    ratio = sum(n for _, _, n in spans) / sum(letters)
    inf = float("inf")
    n_words, n_spans = len(words), len(spans)
    cost = [[inf] * (n_spans + 1) for _ in range(n_words + 1)]
    step: dict[tuple[int, int], tuple[int, int]] = {}
    cost[0][0] = 0.0
    moves = ((1, 1, 0.0), (2, 1, 0.6), (3, 1, 1.2), (1, 2, 0.6))  # (words, spans, penalty)
    for i in range(n_words + 1):
        for k in range(n_spans + 1):
            if cost[i][k] == inf:
                continue
            for dw, ds, penalty in moves:
                if i + dw > n_words or k + ds > n_spans:
                    continue
                want = sum(letters[i:i + dw]) * ratio
                have = max(1, sum(n for _, _, n in spans[k:k + ds]))
                c = cost[i][k] + float(np.log(want / have)) ** 2 + penalty
                if c < cost[i + dw][k + ds]:
                    cost[i + dw][k + ds] = c
                    step[(i + dw, k + ds)] = (dw, ds)
    if cost[n_words][n_spans] == inf:
        return []
    out: list[tuple[int, int, str]] = []
    i, k = n_words, n_spans
    while i or k:
        dw, ds = step[(i, k)]
        start, end = spans[k - ds][0], spans[k - 1][1]
        group = range(i - dw, i)
        total = sum(letters[j] for j in group)
        at = start
        pieces = []
        for j in group:
            stop = end if j == i - 1 else at + (end - start) * letters[j] // total
            pieces.append((at, stop, words[j]))
            at = stop
        out[:0] = pieces
        i, k = i - dw, k - ds
    return out


def clean(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """DC removed and short raised-cosine fades at both ends: no click where the audio starts or stops."""
    if not len(audio):
        return audio
    audio = audio - np.float32(audio.mean())
    fade = min(len(audio) // 2, sample_rate * EDGE_FADE_MS // 1000)
    if fade:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    return audio.astype(np.float32)


def speak(text: str, length_scale: float, noise_scale: float, noise_w_scale: float, path: str) -> dict:
    """Write one phrase as a 16-bit WAV; return its path and word timings (seconds from the file's start)."""
    pieces, words = [], []
    rate = voice().config.sample_rate
    pad = np.zeros(rate * PAD_MS // 1000, np.float32)
    pause = np.zeros(rate * SENTENCE_PAUSE_MS // 1000, np.float32)
    clause_pause = np.zeros(rate * clause_pause_ms(length_scale) // 1000, np.float32)
    position = len(pad)
    pieces.append(pad)
    all_timed = True
    said = [(n, part) for n, sentence in enumerate(sentences(text)) for part in clauses(sentence, length_scale)]
    last_sentence = None
    for n, part in said:
        audio, timed, rate = speak_sentence(part, length_scale, noise_scale, noise_w_scale)
        if not len(audio):
            continue
        if len(pieces) > 1:
            gap = clause_pause if n == last_sentence else pause
            pieces.append(gap)
            position += len(gap)
        last_sentence = n
        if timed is None:
            all_timed = False
        else:
            words.extend([round((position + a) / rate, 3), round((position + b) / rate, 3), w] for a, b, w in timed)
        pieces.append(audio)
        position += len(audio)
    if len(pieces) == 1:
        raise RuntimeError("Piper found nothing it can say in it")
    pieces.append(pad)
    samples = np.clip(np.concatenate(pieces) * 32767.0, -32767, 32767).astype("<i2")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return {"path": path, "words": words if all_timed else None}


def ready() -> bool:
    """A no-op task: submitting one per worker makes the pool start them all at once."""
    return _voice is not None


def speak_job(job: dict) -> dict:
    """One phrase for the pool; an error comes back as a message, never as a dead worker."""
    try:
        return {"ok": True, **speak(job["text"], job["length_scale"], job["noise_scale"], job["noise_w_scale"],
                                    job["path"])}
    except VoiceLoadError as exc:
        return {"ok": False, "load_error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def measure_speech_s(text: str, length_scale: float, noise_scale: float, noise_w_scale: float) -> dict:
    """Seconds of speech for `text` (sentences cut as in a clip, windown's own pauses left out)."""
    try:
        total = 0
        rate = voice().config.sample_rate
        for sentence in sentences(text):
            audio, _, rate = speak_sentence(sentence, length_scale, noise_scale, noise_w_scale)
            total += len(audio)
        return {"ok": True, "speech_s": total / rate}
    except VoiceLoadError as exc:
        return {"ok": False, "load_error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def prepare_voice(model_path: str, out_path: str) -> dict:
    """Write the copy of a voice that workers load, once per voice: Piper's patch that also outputs
    phoneme durations (for word timings), and the decoder's 1-D convolutions run as 2-D ones (convolutions_as_2d).

    The weights go to `<out>.data` beside it (ONNX external data): ONNX Runtime then maps that file
    into memory instead of copying it, so every worker shares one copy of the 62 MB of weights (it
    measured 60 MB less anonymous memory per worker). Done in a worker, not in the build process:
    the onnx package holds the whole model in memory. The .onnx is renamed into place last, so its
    presence means the data file beside it is complete."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(model_path)
        try:
            add_alignment_output(model)
        except ValueError:  # already patched, or a voice without the duration tensor: use it as it is
            pass
        convolutions_as_2d(model)
        out = Path(out_path)
        data_name = out.name + ".data"
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            onnx.save(model, str(Path(tmp) / out.name), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data_name, size_threshold=1024)
            (Path(tmp) / data_name).replace(out.parent / data_name)
            (Path(tmp) / out.name).replace(out)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "load_error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}


# A 1-D Conv of the decoder whose output has at least this many channels is rewritten as a 2-D Conv.
MIN_2D_OUT_CHANNELS = 8
DECODER = "/dec/"  # the HiFi-GAN decoder's node names in Piper's exports (torch module `dec`)


def convolutions_as_2d(model) -> int:
    """Rewrite each 1-D convolution of the decoder as the same convolution in 2-D, over a height of 1
    (Unsqueeze, Conv, Squeeze); return how many were rewritten. The numbers are the same (measured: the
    voice's audio differs by -94 dB, float rounding), but ONNX Runtime runs 2-D convolutions in its
    blocked NCHWc layout, and 1-D ones without it. The decoder, which makes the audio samples, is 3/4
    of a voice's work: measured on one worker (40 phrases of bedtime-lower-back, 140 s of speech at
    scale 2.0) 0.080 CPU-s per second of speech before, 0.070 after. Left as they are: the text
    encoder's and the flow's convolutions (rewritten too, they measured no faster, and each worker
    then holds its own NCHWc copy of their 50 MB of weights instead of sharing the mapped file: the
    decoder's are 4 MB), ConvTranspose (no NCHWc kernel) and a Conv to fewer than
    MIN_2D_OUT_CHANNELS channels (the last one, to audio, measured slower in 2-D). A voice whose
    nodes are named otherwise is left as it is."""
    import numpy
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {w.name: w for w in graph.initializer}
    axes = "windown_height_axis"
    nodes, count = [], 0
    for node in graph.node:
        decoder_conv = node.op_type == "Conv" and node.name.startswith(DECODER) and len(node.input) > 1
        weight = weights.get(node.input[1]) if decoder_conv else None
        w = numpy_helper.to_array(weight) if weight is not None else None
        if w is None or w.ndim != 3 or w.shape[0] < MIN_2D_OUT_CHANNELS:
            nodes.append(node)
            continue
        count += 1
        weight.CopyFrom(numpy_helper.from_array(w[:, :, None, :], weight.name))
        for attribute in node.attribute:
            if attribute.name in ("kernel_shape", "strides", "dilations"):
                values = [1, *attribute.ints]
            elif attribute.name == "pads":  # [begin, end] -> [top, begin, bottom, end]
                values = [0, attribute.ints[0], 0, attribute.ints[1]]
            else:
                continue
            del attribute.ints[:]
            attribute.ints.extend(values)
        x, y = node.input[0], node.output[0]
        wide_x, wide_y = f"{x}_2d_{count}", f"{y}_2d"
        nodes.append(helper.make_node("Unsqueeze", [x, axes], [wide_x]))
        node.input[0], node.output[0] = wide_x, wide_y
        nodes.append(node)
        nodes.append(helper.make_node("Squeeze", [wide_y, axes], [y]))
    if count:
        graph.initializer.append(numpy_helper.from_array(numpy.array([2], dtype=numpy.int64), axes))
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.value_info[:]  # the shapes inferred for the old graph no longer hold
    return count
