"""`windown serve`: the Starlette app over a shelf folder, and running it on uvicorn.

Safety by default: it listens on 127.0.0.1 and answers only to that host name (so a web page cannot
reach it through DNS rebinding). With `lan=True` it listens on the home network and every URL starts
with a random secret (podcast apps cannot log in); a request without one gets 404. There are two: the
shelf's secret opens the page, the shelf and the feed (an address that may be shared), and the
journal's own secret opens all of that and the Journal (the owner's address). A feed address given to
a podcast app or a friend therefore never opens the pain and sleep journal.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from windown.errors import UserError
from windown.web import journal_page, routes
from windown.web.builds import BuildQueue

HERE = Path(__file__).resolve().parent
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def create_app(shelf: str | os.PathLike, *, secret: str | None = None, journal_secret: str | None = None,
               workers: int | None = None, allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
               max_waiting: int | None = None, journal_file: str | os.PathLike | None = None,
               use_journal: bool = True) -> Starlette:
    """The web app for one shelf. `secret` puts every route but the journal's under /SECRET/;
    `journal_secret` puts every route and the journal's under /JOURNAL_SECRET/ (with `secret` and no
    `journal_secret`, the journal is served nowhere). `allowed_hosts=None` allows any host name.
    The journal is `journal_file` (default: as `windown log` finds it); `use_journal=False` leaves it out:
    no Journal page, and builds neither read nor record it (as `windown build --no-journal`)."""
    from windown import journal

    shelf = Path(shelf)
    try:
        shelf.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the shelf folder ({exc.strerror})", "Choose another folder with --shelf",
                        path=shelf) from None
    if not os.access(shelf, os.W_OK | os.X_OK):
        raise UserError("the shelf folder is not writable", "Choose another folder with --shelf", path=shelf)
    queue = BuildQueue(shelf, workers, **({"max_waiting": max_waiting} if max_waiting else {}))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        queue.start()
        try:
            yield
        finally:
            queue.stop()

    if secret and journal_secret == secret:
        raise ValueError("the journal's secret must differ from the shelf's")
    page_routes = routes.routes() + [Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    if not secret:
        app_routes = page_routes + journal_page.routes()
        feed_base, journal_base = "", ""
    else:
        app_routes = [Mount(f"/{secret}", routes=page_routes)]
        feed_base, journal_base = f"/{secret}", None
        if journal_secret and use_journal:
            app_routes.append(Mount(f"/{journal_secret}", routes=page_routes + journal_page.routes()))
            journal_base = f"/{journal_secret}"
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    app = Starlette(routes=app_routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers=routes.exception_handlers())
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
    templates.env.globals.update(clock=routes.clock)
    app.state.shelf = shelf
    app.state.queue = queue
    app.state.templates = templates
    app.state.feed_base = feed_base  # "" on this computer only
    app.state.journal_base = journal_base if use_journal else None  # None: the journal is served nowhere
    app.state.bases = tuple(b for b in (feed_base, journal_base) if b)  # every secret prefix, for routes.base
    # absolute, because a build process works in its own folder
    app.state.journal = journal.default_path(journal_file).absolute() if use_journal else None
    app.state.csrf = secrets.token_urlsafe(24)  # a cross-site page cannot read it, so it cannot post our forms
    return app


SECRET_FILE = ".windown-secret"  # hidden, so the shelf never lists or serves it


def lan_secret(shelf: str | os.PathLike) -> str:
    """The shelf's secret for home-network addresses (the page, the shelf and the feed), made once and
    kept, so a phone's podcast subscription survives a restart. Deleting the file makes a new one."""
    return _kept_secret(Path(shelf) / SECRET_FILE, "Choose another folder with --shelf")


def journal_secret_file(journal_file: str | os.PathLike) -> Path:
    """The journal's own secret lives beside the journal (`.journal.sqlite.windown-secret`), not in the
    shelf: a shelf may be copied or shared with the tracks in it, and the key to the journal must not
    travel with it; one journal served from two shelves keeps one owner's address."""
    path = Path(journal_file)
    return path.with_name(f".{path.name}{SECRET_FILE}")


def journal_secret(journal_file: str | os.PathLike) -> str:
    """The secret that opens the Journal on the home network, made once and kept beside the journal."""
    return _kept_secret(journal_secret_file(journal_file), "Choose another journal with --journal, or use "
                                                           "--no-journal")


def _kept_secret(path: Path, hint: str) -> str:
    """A secret read from its hidden file, or made and written there (mode 0600: its owner's only)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) >= 20 and kept.replace("-", "").replace("_", "").isalnum():
            return kept
    secret = secrets.token_urlsafe(16)
    temp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise UserError(f"cannot keep the secret address here ({exc.strerror})", hint, path=path) from None
    return secret


def lan_address() -> str:
    """This machine's address on the home network, found without sending anything anywhere."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                             timeout=5).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                return parts[parts.index("inet") + 1].split("/")[0]
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = info[4][0]
            if not address.startswith("127."):
                return address
    return "127.0.0.1"


def serve(shelf: str | os.PathLike, port: int = 8000, lan: bool = False, *,
          journal_file: str | os.PathLike | None = None, use_journal: bool = True,
          say: Callable[[str], None] = print) -> None:
    """Run the page until Ctrl-C. With `lan`, print the owner's address (with the journal) and a QR code of
    it, and the address that may be shared (the shelf and the feed, never the journal)."""
    import segno
    import uvicorn

    from windown import journal

    secret = lan_secret(shelf) if lan else None
    own_secret = journal_secret(journal.default_path(journal_file).absolute()) if lan and use_journal else None
    app = create_app(shelf, secret=secret, journal_secret=own_secret, allowed_hosts=None if lan else LOCAL_HOSTS,
                     journal_file=journal_file, use_journal=use_journal)
    host = "0.0.0.0" if lan else "127.0.0.1"
    _check_port(host, port)
    if lan:
        origin = f"http://{lan_address()}:{port}"
        url = f"{origin}{app.state.journal_base or app.state.feed_base}/"
        say(f"windown is on your home network at {url}")
        if app.state.journal_base:
            say("  that address opens your journal too: keep it to yourself")
            say(f"to share (the shelf and the feed, never the journal): {origin}{app.state.feed_base}/")
        say(f"podcast feed: {origin}{app.state.feed_base}/feed.xml")
        say("Scan this with your phone (your own address; keep it to yourself; its On your phone page shows the "
            "feed's code to share):" if app.state.journal_base else
            "Scan this with your phone (it holds the secret address; keep it to yourself):")
        qr = segno.make(url, error="m")
        with contextlib.suppress(OSError):
            qr.terminal(out=sys.stdout, compact=True)
            sys.stdout.flush()
    else:
        say(f"windown is at http://127.0.0.1:{port}/ (this computer only; --lan for your phone)")
    say(f"journal: {app.state.journal}" if app.state.journal else "journal: off (--no-journal)")
    say(f"shelf: {Path(shelf).resolve()}; Ctrl-C stops it (running builds stop, and leave nothing behind)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise UserError(f"--port: port {port} is already in use",
                            "Choose another with --port, or stop the program using it") from None
