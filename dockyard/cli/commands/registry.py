"""registry serve, registry gc: the registry server runs in this process (no daemon needed)."""

from __future__ import annotations

from types import SimpleNamespace

from dockyard.cli.flags import BOOL, STR, Command, Flag
from dockyard.cli.runner import Cli, CommandError, site_packages

ROOT = Flag("", "root", STR, "Directory holding the registry's data", "/var/lib/dockyard/registry")


def serve(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    site_packages()
    from dockyard.registry.server.serve import serve as run
    try:
        run(opts.root, opts.addr, opts.htpasswd or None, opts.token_auth, opts.tls_cert or None,
            opts.tls_key or None, not opts.no_delete)
    except (ValueError, OSError) as err:
        raise CommandError(f"registry: {err}") from None
    return 0


def gc(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.humanize import human_size
    from dockyard.registry.server.gc import collect
    from dockyard.registry.server.storage import Storage
    result = collect(Storage(opts.root), opts.delete_untagged, opts.dry_run)
    if result.uploads:
        cli.write(f"{result.uploads} abandoned upload{'s' if result.uploads != 1 else ''} "
                  f"{'to remove' if opts.dry_run else 'removed'}\n")
    for digest in result.removed:
        cli.write(f"blob eligible for deletion: {digest}\n" if opts.dry_run else f"deleted blob: {digest}\n")
    cli.write(f"{len(result.marked)} blobs marked, {len(result.removed)} blobs "
              f"{'eligible for deletion' if opts.dry_run else 'deleted'}, {human_size(result.freed)} "
              f"{'reclaimable' if opts.dry_run else 'reclaimed'}\n")
    return 0


COMMANDS = {
    "serve": Command("[OPTIONS]", "Run an OCI distribution registry",
                     [Flag("", "addr", STR, "Address to listen on", "127.0.0.1:5000"), ROOT,
                      Flag("", "htpasswd", STR, "htpasswd file (bcrypt) of the users allowed in"),
                      Flag("", "token-auth", BOOL, "Issue bearer tokens at /token instead of Basic auth"),
                      Flag("", "tls-cert", STR, "TLS certificate file"),
                      Flag("", "tls-key", STR, "TLS key file"),
                      Flag("", "no-delete", BOOL, "Refuse manifest and blob deletion")], serve, 0, 0),
    "gc": Command("[OPTIONS]", "Remove blobs that no manifest references",
                  [ROOT, Flag("m", "delete-untagged", BOOL, "Delete manifests that are not tagged"),
                   Flag("d", "dry-run", BOOL, "Only report what would be deleted")], gc, 0, 0),
}
