"""User-facing errors: one clear line, no traceback, exit status 2."""
import argparse
import re
import sys
from typing import Callable, Iterable, Iterator


class UserError(Exception):
    """A mistake the user can fix (bad file, bad flag, bad config). Its message is one line."""


# A DataLoader worker's exception comes back as "Caught X in DataLoader worker process N.\nOriginal
# Traceback ...\nmodule.X: <message>": the message is the last line, after the class name.
_WORKER_TRACE = re.compile(r'^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback')
_CLASS_PREFIX = re.compile(r'^[\w.]+: ')


def one_line(message: str) -> str:
    """The message a user should see: a DataLoader worker's traceback reduced to the original
    error's own line."""
    if _WORKER_TRACE.match(message):
        lines = [line for line in message.splitlines() if line.strip()]
        return _CLASS_PREFIX.sub('', lines[-1], count=1)
    return message


class CheckedLoader:
    """Iterates a data loader so that its failures are one line: a worker's UserError comes back
    as that error, and items of different sizes collated into one batch are a UserError naming
    the `key` whose batch_size to lower."""

    def __init__(self, loader: Iterable, key: str):
        self.loader, self.key = loader, key

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        it = iter(self.loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except UserError as e:
                raise UserError(one_line(str(e))) from None
            except RuntimeError as e:
                msg = one_line(str(e))
                if 'stack expects each tensor to be equal size' not in msg:
                    raise
                raise UserError(f'{self.key}: the items of one batch differ in size ({msg}); use '
                                f'{self.key}.batch_size 1 for images of different sizes') from None
            yield batch


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line UserErrors (`error: <message>`, exit 2 through
    run_cli, without argparse's usage block); every entry point parses with it."""

    def error(self, message: str):
        raise UserError(message)


# Messages longer than this per word (a 4 MB file name) are shortened in the middle.
MAX_WORD = 300


def shorten(message: str) -> str:
    """message with every word longer than MAX_WORD characters cut to its start and end."""
    return re.sub(r'\S{%d,}' % (MAX_WORD + 1),
                  lambda m: f'{m.group()[:MAX_WORD // 2]}...({len(m.group()):,} characters)...{m.group()[-60:]}',
                  message)


def run_cli(main: Callable[[], object]) -> None:
    """Run an entry point; a UserError (or an OSError the system raised on a path the user gave)
    becomes one line `error: <message>` on stderr, overlong words shortened, and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f'error: {shorten(one_line(str(e)))}', file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the system refusing a path the user gave (a name too long, no permission)
        where = f' {e.filename}' if getattr(e, 'filename', None) else ''
        print(shorten(' '.join(f'error: cannot use{where} ({e.strerror or e})'.split())), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
