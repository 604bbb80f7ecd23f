"""``warehouse db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import WarehouseGroup

app = typer.Typer(cls=WarehouseGroup, help="Create, upgrade or inspect the catalog schema.",
                  no_args_is_help=True)


def _settings(ctx: typer.Context):
    from warehouse.settings import Settings

    obj = ctx.find_root().obj or {}
    return Settings.resolve(url=obj.get("url"), lake=obj.get("lake"))


def _engine(ctx: typer.Context):
    from warehouse.db import make_engine

    return make_engine(_settings(ctx).url)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the catalog schema (creates it in an empty database).

    Example: warehouse db upgrade
    """
    from warehouse import migrate
    from warehouse.db import current_revision

    engine = _engine(ctx)
    migrate.upgrade(engine, revision)
    typer.echo(f"catalog at revision {current_revision(engine)}")


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' to drop everything.")],
    yes: Annotated[bool, typer.Option("--yes", help="Drop every table (with 'base') and remove the"
                                      " lake files that no catalog would then point to.")] = False,
) -> None:
    """Downgrade the catalog schema to REVISION; 'base' drops every table and needs --yes.

    Example: warehouse db downgrade base --yes
    """
    from warehouse.db import current_revision
    from warehouse.downgrade import downgrade_to, downgrade_to_base

    engine = _engine(ctx)
    settings = _settings(ctx)
    if revision != "base":
        if downgrade_to(engine, settings.lake, revision):
            typer.echo(f"the lake at {settings.lake} is no longer bound to this catalog")
        typer.echo(f"catalog at revision {current_revision(engine)}")
        return
    result = downgrade_to_base(engine, settings.lake, confirmed=yes)
    for line in result.lines():
        typer.echo(line)
    if not yes:
        raise typer.Exit(1)
    typer.echo(f"catalog at revision {current_revision(engine)}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the code's head revision.

    Example: warehouse db current
    """
    from warehouse import migrate
    from warehouse.db import current_revision

    engine = _engine(ctx)
    typer.echo(f"catalog: {current_revision(engine)}\ncode:    {migrate.head_revision()}")


@app.command("grant-readonly")
def grant_readonly(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="Role to grant SELECT to; created (LOGIN, no password) if absent.")],
) -> None:
    """Give ROLE SELECT on every table and view of the catalog, and nothing else (PostgreSQL).

    Example: warehouse db grant-readonly analyst
    """
    from warehouse.errors import ConfigError

    engine = _engine(ctx)
    if engine.dialect.name != "postgresql":
        raise ConfigError("grant-readonly is for PostgreSQL; share a SQLite catalog read-only by"
                          " opening it with `sqlite3 'file:catalog.sqlite?mode=ro'`")
    if not role.replace("_", "").isalnum() or not role.isascii() or len(role) > 63:
        raise ConfigError(f"role name {role!r}: use up to 63 ASCII letters, digits and underscores")
    if role.lower() in _RESERVED_ROLES or role.lower().startswith("pg_"):
        raise ConfigError(f"role name {role!r} is reserved by PostgreSQL (public, pg_*, current_user,"
                          " ...): choose another name, e.g. analyst")
    from sqlalchemy.exc import DBAPIError

    try:
        _grant(engine, role)
    except DBAPIError as exc:  # e.g. no right to create roles: the server's own words, one line
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(f"cannot grant read-only access to {role!r}: {first}") from None


# Names PostgreSQL reserves for roles (a role cannot be created or granted under them).
_RESERVED_ROLES = {"public", "none", "current_user", "session_user", "current_role", "user"}


def _grant(engine, role: str) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is None:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            typer.echo(f"created role {role} (LOGIN, no password: set one with ALTER ROLE)")
        db = conn.execute(text("SELECT current_database()")).scalar_one()
        for sql in (f'GRANT CONNECT ON DATABASE "{db}" TO "{role}"',
                    f'GRANT USAGE ON SCHEMA public TO "{role}"',
                    f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"',  # views included
                    f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{role}"'):
            conn.execute(text(sql))
    typer.echo(f"{role} may now SELECT from every table and view of {db}, and do nothing else")
