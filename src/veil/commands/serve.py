"""``veil serve``: the HTTP service and its web page (FastAPI + uvicorn, extra ``serve``).

Off loopback a token is required: ``--token`` (or ``VEIL_TOKEN``), else one is generated
and printed once; ``--no-auth`` turns authentication off on purpose.
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

__all__ = ["serve"]

MB = 1024 * 1024


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    envvar="VEIL_TOKEN",
    default=None,
    help="Bearer token for /api (env VEIL_TOKEN). Default: none on loopback, generated elsewhere.",
)
@click.option("--no-auth", is_flag=True, help="No token even off loopback (trusted networks).")
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
    help="Where the private temporary folder is created (default: system temp).",
)
def serve(host: str, port: int, token: str | None, no_auth: bool, **o: Any) -> None:
    """Serve the web page and the HTTP API (anonymize images, video jobs).

    \b
    Examples:
      veil serve                                # http://127.0.0.1:8000, no token
      veil serve --host 0.0.0.0 --token "$SECRET" --max-jobs 2
    """
    try:
        import uvicorn

        from veil.service import ServiceSettings, create_app, is_loopback

        token = _token(host, token, no_auth, is_loopback(host))
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
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def _token(host: str, token: str | None, no_auth: bool, loopback: bool) -> str | None:
    if no_auth:
        if token:
            raise click.UsageError("--no-auth and --token exclude each other")
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
