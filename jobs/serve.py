"""`scripts/serve`: the feature server over the configured online store.

    scripts/serve [--host 127.0.0.1] [--port 8000] [--token-file FILE] [online=redis] [key=value ...]

It binds to 127.0.0.1 unless told otherwise; any other address needs an API token, from the environment
variable FEATURELAKE_API_TOKEN or from --token-file (never from the config). Exit 2 on a bad flag or
config, with one line on stderr.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import NoReturn

from engine.config.loader import load_config
from engine.errors import ConfigError, FeaturelakeError

TOKEN_ENV = "FEATURELAKE_API_TOKEN"


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = _OneLineParser(prog="scripts/serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--max-entities", type=int, default=1_000)
    parser.add_argument("--max-body-bytes", type=int, default=1_000_000)
    parser.add_argument("-cd", "--config-dir", action="append", type=Path, default=[], dest="config_dirs")
    parser.add_argument("overrides", nargs="*")
    return parser.parse_intermixed_args(argv)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token(args: argparse.Namespace) -> str | None:
    """The API token: from --token-file, else the environment; required off loopback."""
    value = os.environ.get(TOKEN_ENV) or None
    if args.token_file is not None:
        try:
            value = args.token_file.read_text().strip() or None
        except OSError as err:
            raise ConfigError(f"--token-file: cannot read {args.token_file}: {err.strerror}") from None
        if value is None:
            raise ConfigError(f"--token-file: {args.token_file} is empty")
    if value is None and not _loopback(args.host):
        raise ConfigError(f"--host {args.host}: serving beyond loopback needs a token ({TOKEN_ENV} or --token-file)")
    return value


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
        cfg = load_config(args.overrides, config_dirs=args.config_dirs)
        secret = token(args)
    except ConfigError as err:
        print(f"error: config: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from engine.observability.logs import configure_logging
    from engine.online.server import Limits, create_app
    from engine.online.store import open_store

    log_file = configure_logging(Path(cfg.job.log_dir))
    store = open_store(cfg.online)
    try:
        groups = [s.group for s in store.states()]
    except FeaturelakeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    limits = Limits(max_body_bytes=args.max_body_bytes, max_entities=args.max_entities)
    app = create_app(store, limits, secret)
    print(f"serving {', '.join(groups) or 'no groups yet'} from {store.location} on http://{args.host}:{args.port}")
    print(f"logs: {log_file}")
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
