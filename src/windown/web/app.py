"""`windown serve`: the Starlette app over a shelf folder, and running it on uvicorn.

Safety by default: it listens on 127.0.0.1 and answers only to that host name (so a web page cannot
reach it through DNS rebinding). With `lan=True` it listens on the home network and every URL starts
with a random secret (podcast apps cannot log in); a request without it gets 404.
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


def create_app(shelf: str | os.PathLike, *, secret: str | None = None, workers: int | None = None,
               allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS, max_waiting: int | None = None,
               journal_file: str | os.PathLike | None = None, use_journal: bool = True) -> Starlette:
    """The web app for one shelf. `secret` puts every route under /SECRET/; `allowed_hosts=None` allows any.
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

    app_routes = routes.routes() + journal_page.routes() + [Mount("/static", StaticFiles(directory=HERE / "static"),
                                                                  name="static")]
    if secret:
        app_routes = [Mount(f"/{secret}", routes=app_routes)]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    app = Starlette(routes=app_routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers=routes.exception_handlers())
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
    templates.env.globals.update(clock=routes.clock)
    app.state.shelf = shelf
    app.state.queue = queue
    app.state.templates = templates
    app.state.base = f"/{secret}" if secret else ""
    # absolute, because a build process works in its own folder
    app.state.journal = journal.default_path(journal_file).absolute() if use_journal else None
    templates.env.globals.update(journal_on=use_journal)
    app.state.csrf = secrets.token_urlsafe(24)  # a cross-site page cannot read it, so it cannot post our forms
    return app


SECRET_FILE = ".windown-secret"  # hidden, so the shelf never lists or serves it


def lan_secret(shelf: str | os.PathLike) -> str:
    """The shelf's secret for home-network addresses, made once and kept (readable by its owner only),
    so a phone's podcast subscription survives a restart. Deleting the file makes a new one."""
    path = Path(shelf) / SECRET_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) >= 20 and kept.replace("-", "").replace("_", "").isalnum():
            return kept
    secret = secrets.token_urlsafe(16)
    Path(shelf).mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    os.replace(temp, path)
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
    """Run the page until Ctrl-C. With `lan`, print the address (with its secret) and a QR code of it."""
    import segno
    import uvicorn

    app = create_app(shelf, secret=lan_secret(shelf) if lan else None, allowed_hosts=None if lan else LOCAL_HOSTS,
                     journal_file=journal_file, use_journal=use_journal)
    secret = app.state.base.strip("/")
    host = "0.0.0.0" if lan else "127.0.0.1"
    _check_port(host, port)
    if lan:
        url = f"http://{lan_address()}:{port}/{secret}/"
        say(f"windown is on your home network at {url}")
        say(f"podcast feed: {url}feed.xml")
        say("Scan this with your phone (it holds the secret address; keep it to yourself):")
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
