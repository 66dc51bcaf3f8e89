"""``veil serve``: the HTTP service and its web page (FastAPI + uvicorn, extra ``serve``).

Off loopback a token is required: ``--token`` (or ``VEIL_TOKEN``), else one is generated
and printed once; ``--no-auth`` turns authentication off on purpose (with a loud warning).
On loopback without a token only loopback ``Host`` names and same-origin requests are
served, so web pages the local user opens cannot use the API.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from veil.config import RunConfig
from veil.errors import MissingExtraError, VeilError

__all__ = ["resolve_token", "serve", "server_options"]

MB = 1024 * 1024


#: where the app listens and who may use it: ``veil serve`` and ``veil review``
_SERVER_OPTIONS = [
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
    click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True),
    click.option(
        "--token",
        envvar="VEIL_TOKEN",
        default=None,
        help="Bearer token for /api (env VEIL_TOKEN). Default: none on loopback, generated "
        "elsewhere.",
    ),
    click.option("--no-auth", is_flag=True, help="No token even off loopback (trusted networks)."),
]


def server_options(fn: Any) -> Any:
    """``--host``, ``--port``, ``--token``, ``--no-auth`` (see :func:`resolve_token`)."""
    from veil.commands.options import stack_options

    return stack_options(_SERVER_OPTIONS, fn)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@server_options
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Default run settings: a JSON file of RunConfig.to_dict() (veil.config).",
)
@click.option("-d", "--detector", default=None, help="Default detector.")
@click.option("-m", "--method", default=None, help="Default anonymization method.")
@click.option("--max-jobs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--max-sync", type=click.IntRange(1), default=2, show_default=True)
@click.option("--queue", "max_queue", type=click.IntRange(0), default=8, show_default=True)
@click.option("--max-image-mb", type=click.IntRange(1), default=50, show_default=True)
@click.option("--max-video-mb", type=click.IntRange(1), default=2048, show_default=True)
@click.option("--max-pixels", type=click.IntRange(1), default=50_000_000, show_default=True)
@click.option(
    "--max-memory",
    "max_memory_mb",
    type=click.IntRange(64),
    default=None,
    help="MB one request or job may need, estimated from its header before decoding "
    "[default: a quarter of the RAM split among --max-sync + --max-jobs].",
)
@click.option(
    "--max-frames",
    type=click.IntRange(1),
    default=54_000,
    show_default=True,
    help="Most frames of a video job.",
)
@click.option(
    "--max-duration",
    type=click.FloatRange(min=1),
    default=1800.0,
    show_default=True,
    help="Longest video, seconds.",
)
@click.option(
    "--job-timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Seconds a job may run before it fails.",
)
@click.option(
    "--ttl",
    type=click.FloatRange(1),
    default=600.0,
    show_default=True,
    help="Seconds an undownloaded result is kept.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the private work folder (uploads, results) is created [default: system temp].",
)
def serve(host: str, port: int, token: str | None, no_auth: bool, **o: Any) -> None:
    """Serve the web page and the HTTP API (anonymize images, video jobs).

    \b
    Examples:
      veil serve                                # http://127.0.0.1:8000, no token
      veil serve --host 0.0.0.0 --token "$SECRET" --max-jobs 2
    """
    try:
        import uvicorn  # noqa: F401  # checked first: the missing extra is named, exit 2

        from veil.service import ServiceSettings, create_app, is_loopback
        from veil.service.server import run

        loopback = is_loopback(host)
        token = resolve_token(host, token, no_auth, loopback)
        max_memory = o["max_memory_mb"]
        settings = ServiceSettings(
            token=token,
            max_image_bytes=o["max_image_mb"] * MB,
            max_video_bytes=o["max_video_mb"] * MB,
            max_pixels=o["max_pixels"],
            max_jobs=o["max_jobs"],
            max_sync=o["max_sync"],
            max_queue=o["max_queue"],
            result_ttl=o["ttl"],
            work_dir=o["work_dir"],
            max_memory=None if max_memory is None else max_memory * MB,
            max_frames=o["max_frames"],
            max_duration=o["max_duration"],
            job_timeout=o["job_timeout"],
            loopback_only=loopback,
            config=_run_config(o["settings_file"], o["detector"], o["method"]),
        )
        app = create_app(settings)
    except MissingExtraError:
        raise
    except ImportError as exc:  # uvicorn, or anything the serve extra brings
        raise MissingExtraError(exc.name or "uvicorn", "serve", "veil serve") from exc
    except VeilError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"veil: serving on http://{host}:{port}/", err=True)
    run(app, host, port)


def resolve_token(host: str, token: str | None, no_auth: bool, loopback: bool) -> str | None:
    """The token the app requires: ``token``; none with ``--no-auth`` (a loud warning off
    loopback) or on loopback; else a generated one, printed once."""
    if no_auth:
        if token:
            raise click.UsageError("--no-auth and --token exclude each other")
        if not loopback:
            warning = (
                f"WARNING: --no-auth on {host}: anyone who can reach this address can use "
                "the API and its CPU, memory and disk. Use it only on a trusted network."
            )
            click.secho(warning, err=True, fg="red", bold=True)
        return None
    if token or loopback:
        return token
    token = secrets.token_urlsafe(24)
    click.echo(f"veil: {host} is not loopback; API token (shown once): {token}", err=True)
    return token


def _run_config(path: Path | None, detector: str | None, method: str | None) -> RunConfig:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path else {}
    data.setdefault("detector", {})
    data.setdefault("anonymizer", {})
    if detector:
        data["detector"] = {**data["detector"], "name": detector}
    if method:
        data["anonymizer"] = {**data["anonymizer"], "method": method}
    return RunConfig.from_dict(data)


if __name__ == "__main__":  # pragma: no cover
    serve(sys.argv[1:])
