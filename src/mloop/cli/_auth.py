"""``mloop auth create-key|list-keys|revoke|token`` (the server's credentials) and ``mloop keys rotate|adopt`` (the
workspace's signing keys)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mloop.cli._common import DRY_RUN_HELP, JSON_HELP, app, console, open_workspace, print_json, print_plan, run_operation
from mloop.roles import ROLES

auth_app = typer.Typer(help="API keys and tokens for the server.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
keys_app = typer.Typer(help="The workspace's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@auth_app.command("create-key")
def auth_create_key(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists and the audit log).")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    created = run_operation("keys.create", {"name": name, "role": role})
    if as_json:
        print_json(created)
        return
    Console(stderr=True).print(f"API key {created.id} ({created.role}) created; it is shown only now:")
    sys.stdout.write(created.key + "\n")


@auth_app.command("list-keys")
def auth_list_keys(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """API keys: id, name, role, created, revoked (never the secret)."""
    import datetime as dt

    result = run_operation("keys.list")
    if as_json:
        print_json(result)
        return
    table = Table(title="API keys")
    for col in ("id", "name", "role", "created (UTC)", "revoked"):
        table.add_column(col)
    for k in result.keys:
        fmt = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else ""  # noqa: E731
        table.add_row(k.id, k.name, k.role, fmt(k.created_at), fmt(k.revoked_at))
    console.print(table)


@auth_app.command("revoke")
def auth_revoke(key_id: str, dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False) -> None:
    """Revoke an API key (servers refuse it within two seconds)."""
    result = run_operation("keys.revoke", {"key_id": key_id}, dry_run=dry_run)
    if dry_run:
        print_plan(result)
        return
    console.print(f"revoked {key_id}")


@auth_app.command("token")
def auth_token(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    subject: Annotated[str, typer.Option(help="Who the token is for (the sub claim).")] = "cli",
    ttl: Annotated[float, typer.Option(help="Seconds until it expires.", min=1, max=30 * 86400)] = 3600,
) -> None:
    """Mint a JWT (HS256 under the workspace secret) and print it."""
    from mloop.security import Authenticator

    ws = open_workspace()
    sys.stdout.write(Authenticator.configured(ws.settings, ws.keyring, ws.store.api_keys).mint(subject, role, ttl) + "\n")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key, re-sign every model manifest with it (each old signature must verify first), drop the old key."""
    from mloop.security import rotate_signing_key

    ws = open_workspace()
    kid, count = rotate_signing_key(ws.keyring, ws.store)
    console.print(f"signing key {kid} active; {count} manifest(s) re-signed")


@keys_app.command("adopt")
def keys_adopt() -> None:
    """Sign manifests registered before signing existed, after checking their files still match their digests."""
    adopted = open_workspace().registry.adopt_unsigned()
    console.print(f"{len(adopted)} manifest(s) signed" + (f": {', '.join(adopted)}" if adopted else ""))
