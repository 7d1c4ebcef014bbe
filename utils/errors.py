"""User-facing errors: one clear line, no traceback, exit status 2."""
import sys
from typing import Callable


class UserError(Exception):
    """A mistake the user can fix (bad file, bad flag, bad config). Its message is one line."""


def run_cli(main: Callable[[], object]) -> None:
    """Run an entry point; a UserError becomes `error: <message>` on stderr and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
