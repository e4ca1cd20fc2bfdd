"""``python -m vidpipe`` is the same as the ``vidpipe`` console script."""

from vidpipe.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
