"""The page's routes: a thin layer over the library, like the CLI, with errors in the CLI's words.

| route | what it is |
|---|---|
| `GET /` | Tonight: the form (a preset or your own routine, and personal settings) |
| `POST /build` | check the form, queue the build, go to its progress page |
| `GET /jobs/ID`, `/jobs/ID/status` | a build's progress (page, and JSON for the page's script) |
| `GET /shelf` | every track, newest first |
| `GET /tracks/NAME` | the player: audio, chapters, transcript |
| `GET/POST /tracks/NAME/delete` | confirm, then delete a track's files |
| `GET /phone` | the feed and the newest track as QR codes |
| `GET /feed.xml` | the podcast feed |
| `GET /files/NAME.EXT` | a track's MP3, transcripts, cue sheet and JSON chapters (range requests) |

The Journal page's routes are in `journal_page`. With `--lan` every route is under a secret prefix:
the shelf's (everything but the Journal; the address to share) or the journal's (everything; the
owner's). `base(request)` is the prefix a request came in under, and every link it is given stays there.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from windown import ambient, feed, library, pipeline, routine, settings, shelf, source
from windown.errors import RoutineError, UserError, closest
from windown.web import form
from windown.web.builds import QueueFull

MAX_POST_BYTES = 1024 * 1024  # a routine file may be 256 KiB (source.MAX_FILE_BYTES); the rest is form fields
DEFAULT_PRESET = "bedtime-lower-back"
PASTED_NAME = "routine.yaml"
MEDIA_TYPES = {
    ".mp3": "audio/mpeg",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".lrc": "text/plain; charset=utf-8",
    ".json": "application/json",
}


def routes() -> list[Route]:
    return [
        Route("/", tonight, methods=["GET"], name="tonight"),
        Route("/build", build, methods=["POST"], name="build"),
        Route("/jobs/{job_id}", job_page, methods=["GET"], name="job"),
        Route("/jobs/{job_id}/status", job_status, methods=["GET"], name="job_status"),
        Route("/shelf", shelf_page, methods=["GET"], name="shelf"),
        Route("/tracks/{stem}", track_page, methods=["GET"], name="track"),
        Route("/tracks/{stem}/delete", delete_track, methods=["GET", "POST"], name="delete"),
        Route("/phone", phone_page, methods=["GET"], name="phone"),
        Route("/feed.xml", feed_xml, methods=["GET"], name="feed"),
        Route("/files/{name}", shelf_file, methods=["GET", "HEAD"], name="file"),
    ]


def base(request: Request) -> str:
    """The secret prefix this request came in under ("/SECRET"), or "" (this computer only, or none known)."""
    bases = request.app.state.bases
    if not bases:
        return ""
    first = "/" + request.url.path.split("/", 2)[1]
    return first if first in bases else ""


def journal_open(request: Request) -> bool:
    """Whether this request may see the Journal: on this computer only, or under the journal's own secret."""
    state = request.app.state
    return state.journal is not None and state.journal_base is not None and base(request) == state.journal_base


def exception_handlers() -> dict:
    return {HTTPException: http_error, Exception: server_error}


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug in windown: the traceback is saved (as the CLI does) and the page shows the one line."""
    from windown import errors

    line = errors.report_bug(exc, context=f"the page: {request.method} {request.url.path}")
    if request.app.state.bases and not base(request):
        return Response("Not Found", status_code=404, media_type="text/plain")
    return render(request, "error.html", {"status": 500, "detail": "Something went wrong.", "bug": line}, 500)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """A calm error page; it links back only when the request already knew a secret prefix."""
    inside = not request.app.state.bases or bool(base(request))
    messages = {404: "Nothing is here.", 405: "That cannot be done here.", 403: "This form is out of date.",
                413: "That is too much to send.", 411: "Say how much you are sending."}
    detail = exc.detail if exc.detail and exc.detail != _default_phrase(exc.status_code) else \
        messages.get(exc.status_code, "Something went wrong.")
    if not inside:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return render(request, "error.html", {"status": exc.status_code, "detail": detail}, exc.status_code)


def _default_phrase(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    state = request.app.state
    context = {"base": base(request), "csrf": state.csrf, "journal_on": journal_open(request), **context}
    response = state.templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; media-src 'self'; "
                                                   "style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
                                                   "form-action 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def clock(seconds: float | None) -> str:
    return "" if seconds is None else feed.clock(seconds)


# --- Tonight ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _presets() -> tuple[dict[str, str], ...]:
    """The built-in presets with their titles (read once: they are package data)."""
    return tuple({"name": name, "title": _load_preset(name).title} for name in library.preset_names())


def _load_preset(name: str) -> routine.Routine:
    """A built-in preset from its package file, even where a file of that name sits in the current folder."""
    return routine.load(str(library.preset_path(name)))


def _form_context(values: dict[str, Any], errors: dict[str, str], problem: str = "") -> dict[str, Any]:
    return {"fields": form.FIELDS, "values": values, "errors": errors, "presets": _presets(),
            "problem": problem, "page": "tonight"}


async def tonight(request: Request) -> Response:
    queue = request.app.state.queue
    values: dict[str, Any] = {"source": "preset", "preset": DEFAULT_PRESET}
    problem = ""
    job = queue.get(request.query_params.get("job", ""))
    if job is not None:
        values = dict(job.form)
        problem = job.error
    context = _form_context(values, {}, problem)
    context["active"] = [j for j in queue.jobs() if j.state in ("queued", "running")]
    return render(request, "tonight.html", context)


async def build(request: Request) -> Response:
    state = request.app.state
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(411)
    if not length.isdigit() or int(length) > MAX_POST_BYTES:
        raise HTTPException(413, f"That is more than {MAX_POST_BYTES // 1024} KiB. A routine is a short text file "
                                 f"(at most {source.MAX_FILE_BYTES // 1024} KiB).")
    _check_origin(request)
    submitted = await request.form(max_files=1, max_fields=200, max_part_size=MAX_POST_BYTES)
    try:
        _check_csrf(request, submitted.get("csrf"))
        values: dict[str, Any] = {}
        for f in form.FIELDS:
            values[f.name] = submitted.getlist(f.name) if f.kind in ("tags", "stretches") else \
                str(submitted.get(f.name) or "")
        values["source"] = str(submitted.get("source") or "preset")
        values["preset"] = str(submitted.get("preset") or "")
        values["routine_text"] = str(submitted.get("routine_text") or "")
        flags, errors = form.read(values)
        loaded, base_name, spec = None, "", {}
        try:
            loaded, base_name, spec = await _routine_from(values, submitted.get("routine_file"))
        except UserError as exc:
            errors[{"preset": "preset", "paste": "routine_text", "upload": "routine_file"}.get(values["source"],
                                                                                             "source")] = str(exc)
        if errors:
            return render(request, "tonight.html", {**_form_context(values, errors), "active": []}, 400)
        try:
            # None: built as with --no-journal (so is a build from the shared address: the journal is not its)
            journal_file = str(state.journal) if journal_open(request) else None
            job = state.queue.submit(loaded.title, base_name, {**spec, "flags": flags, "journal": journal_file},
                                     values, tuple(dict.fromkeys(str(w) for w in loaded.warnings)))
        except QueueFull as exc:
            return render(request, "tonight.html", {**_form_context(values, {}, str(exc)), "active": []}, 503)
    finally:
        await submitted.close()
    return RedirectResponse(f"{base(request)}/jobs/{job.id}", status_code=303)


async def _routine_from(values: dict[str, Any], upload: Any) -> tuple[routine.Routine, str, dict]:
    """The chosen routine, loaded and checked now (errors appear on the form), with its name and build spec."""
    chosen = values["source"]
    if chosen == "preset":
        name = values["preset"]
        if name not in library.preset_names():  # only presets: a name must never reach a file on the server
            hint = closest(name, library.preset_names())
            raise RoutineError(f"no routine file or preset named '{name}'",
                               (hint + " " if hint else "") + "Run `windown presets` to list the presets")
        return _load_preset(name), name, {"preset": name}
    if chosen == "paste":
        text, filename = values["routine_text"], PASTED_NAME
        if not text.strip():
            raise UserError("there is no routine to build", "Paste a routine, or choose a preset")
    elif chosen == "upload":
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise UserError("no file was chosen", "Choose a routine file, or choose a preset")
        filename = _upload_name(upload.filename)
        raw = await upload.read()
        r = routine.parse(source.load(filename, raw), filename)  # the file loader's own size, text and YAML checks
        text = raw.decode("utf-8-sig")
        values["source"], values["routine_text"] = "paste", text  # a failed build refills the form with it
        _check_sound(r, filename)
        return r, pipeline.safe_name(Path(filename).stem), {"text": text, "filename": filename}
    else:
        raise UserError(f"unknown routine source '{chosen}'", "Choose a preset, paste a routine or upload one")
    r = routine.parse(source.load(filename, text), filename)
    _check_sound(r, filename)
    return r, pipeline.safe_name(r.title.lower().replace(" ", "-")), {"text": text, "filename": filename}


def _upload_name(filename: str) -> str:
    """The uploaded file's own name, without any folder, safe to write into a staging folder."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return pipeline.safe_name(name)


def _check_sound(r: routine.Routine, filename: str) -> None:
    """A routine sent from a browser may name a built-in bed, not a file on this computer."""
    sound = r.settings.ambient.sound
    if sound not in ambient.BED_NAMES:
        line = r.settings.ambient.origin[1] if r.settings.ambient.origin else None
        raise RoutineError(f"ambient file '{Path(sound).name}' cannot be used from the page",
                           "Choose one of: " + ", ".join(ambient.BED_NAMES), path=filename, line=line)


def _check_csrf(request: Request, token: Any) -> None:
    if not isinstance(token, str) or not hmac.compare_digest(token, request.app.state.csrf):
        raise HTTPException(403, "This form is out of date or came from another site. Reload the page and "
                                 "send it again.")


def _check_origin(request: Request) -> None:
    """Browsers name the page a post came from; one from another site is refused before it is read."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "This form came from another site, so it was not accepted.")


# --- builds ---------------------------------------------------------------------------------------------

def _job_or_404(request: Request):
    job = request.app.state.queue.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404, "There is no such build (the server may have restarted). Start it again from "
                                 "Tonight.")
    return job


def _status(request: Request, job) -> dict[str, Any]:
    prefix, queue = base(request), request.app.state.queue
    running, waiting = queue.counts()
    track_url = f"{prefix}/tracks/{urllib.parse.quote(job.stem)}" if job.state == "done" else ""
    return {"state": job.state, "title": job.title, "stage": job.stage, "stage_words": job.stage_words,
            "percent": int(round(job.fraction * 100)), "position": queue.position(job), "error": job.error,
            "track_url": track_url, "form_url": f"{prefix}/?job={job.id}",
            "running": running, "waiting": waiting, "workers": queue.workers}


async def job_page(request: Request) -> Response:
    job = _job_or_404(request)
    return render(request, "job.html", {"job": job, "status": _status(request, job), "page": "tonight"})


async def job_status(request: Request) -> Response:
    job = _job_or_404(request)
    return JSONResponse(_status(request, job), headers={"Cache-Control": "no-store"})


# --- the shelf and the player ---------------------------------------------------------------------------

def _local(moment: datetime.datetime) -> str:
    return moment.astimezone().strftime("%a %-d %b %Y, %H:%M")


async def shelf_page(request: Request) -> Response:
    state = request.app.state
    tracks = shelf.tracks(state.shelf)
    active = [j for j in state.queue.jobs() if j.state in ("queued", "running")]
    return render(request, "shelf.html", {"tracks": tracks, "active": active, "describe": feed.describe,
                                          "when": _local, "page": "shelf",
                                          "deleted": request.query_params.get("deleted", "")})


def _track_or_404(request: Request) -> shelf.Track:
    track = shelf.track(request.app.state.shelf, request.path_params["stem"])
    if track is None:
        raise HTTPException(404, "There is no such track on the shelf.")
    return track


def _settings_rows(recorded: dict) -> list[tuple[str, str]]:
    """The cue sheet's settings as (label, value) rows, labelled and written as the settings table does."""
    rows = []
    for s in settings.SETTINGS:
        value = recorded.get(s.json_key)
        if value is None or value == [] or value == "":
            continue
        if s.unit == "ms" and isinstance(value, (int, float)):
            text = s.show(round(value * 1000))
        elif s.kind == "flag":
            text = "on" if value else "off"
        elif isinstance(value, list):
            text = ", ".join(map(str, value))
        elif s.unit:
            text = f"{value:g} {s.unit}" if isinstance(value, (int, float)) else f"{value} {s.unit}"
        else:
            text = str(value)
        rows.append((s.label, text))
    return rows


async def track_page(request: Request) -> Response:
    track = _track_or_404(request)
    return render(request, "track.html", {"track": track, "settings": _settings_rows(track.settings),
                                          "when": _local, "has_vtt": track.sidecar(".vtt").is_file(),
                                          "page": "shelf"})


async def delete_track(request: Request) -> Response:
    state = request.app.state
    track = _track_or_404(request)
    if request.method == "GET":
        files = [p.name for p in shelf.files_of(state.shelf, track.stem)]
        return render(request, "delete.html", {"track": track, "files": files, "page": "shelf"})
    _check_origin(request)
    submitted = await request.form(max_files=0, max_fields=10)
    _check_csrf(request, submitted.get("csrf"))
    shelf.delete(state.shelf, track.stem)
    return RedirectResponse(f"{base(request)}/shelf?deleted={urllib.parse.quote(track.title)}", status_code=303)


# --- the phone ------------------------------------------------------------------------------------------

def _absolute(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


@functools.lru_cache(maxsize=64)
def _qr_svg(data: str) -> str:
    import segno

    qr = segno.make(data, error="m")
    # dark modules on a dimmed light ground: scanners need the contrast, the bedroom does not need white
    return qr.svg_inline(scale=6, dark="#111318", light="#a9a396", border=3, title=None, desc=None,
                         omitsize=True, svgclass="qr")


async def phone_page(request: Request) -> Response:
    """The feed's codes always use the shelf's secret (the address that may be shared); the owner's own
    address, with the journal, is shown only to a page already opened with it."""
    state = request.app.state
    feed_url = _absolute(request, f"{state.feed_base}/feed.xml")
    tracks = shelf.tracks(state.shelf)
    newest = tracks[0] if tracks else None
    newest_url = _absolute(request, f"{state.feed_base}/files/{urllib.parse.quote(newest.stem + '.mp3')}") \
        if newest else ""
    local_only = request.url.hostname in ("127.0.0.1", "localhost") and not state.bases
    apple_url = "podcast://" + feed_url.split("://", 1)[1]  # the iPhone camera opens this in Apple Podcasts
    own_url = _absolute(request, f"{state.journal_base}/") if state.bases and journal_open(request) else ""
    return render(request, "phone.html", {"feed_url": feed_url, "feed_qr": _qr_svg(feed_url), "newest": newest,
                                          "own_url": own_url, "own_qr": _qr_svg(own_url) if own_url else "",
                                          "apple_url": apple_url, "apple_qr": _qr_svg(apple_url),
                                          "newest_url": newest_url, "newest_qr": _qr_svg(newest_url) if newest else "",
                                          "local_only": local_only, "page": "phone"})


async def feed_xml(request: Request) -> Response:
    state = request.app.state
    files = _absolute(request, f"{state.feed_base}/files")  # the shared address, even in the owner's feed
    body = feed.rss(shelf.tracks(state.shelf), feed_url=_absolute(request, f"{state.feed_base}/feed.xml"),
                    link=_absolute(request, f"{state.feed_base}/"), file_url=feed.file_url_under(files))
    return Response(body, media_type="application/rss+xml; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def shelf_file(request: Request) -> Response:
    """A finished track's files only: never a hidden (unfinished) file, a folder, or a link out of the shelf."""
    state = request.app.state
    name = request.path_params["name"]
    if name.endswith(".chapters.json"):
        track = shelf.track(state.shelf, name[: -len(".chapters.json")])
        if track is None or not track.chapters:
            raise HTTPException(404, "There is no such file on the shelf.")
        body = json.dumps(feed.chapters_json(track), ensure_ascii=False, indent=2).encode("utf-8")
        return Response(body, media_type=feed.CHAPTERS_TYPE, headers={"Cache-Control": "no-cache"})
    suffix = Path(name).suffix
    stem = name[: -len(suffix)] if suffix else name
    track = shelf.track(state.shelf, stem) if suffix in MEDIA_TYPES else None
    path = state.shelf / name
    if track is None or not path.is_file() or path.is_symlink() or path.parent.resolve() != state.shelf.resolve():
        raise HTTPException(404, "There is no such file on the shelf.")
    return FileResponse(path, media_type=MEDIA_TYPES[suffix],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
