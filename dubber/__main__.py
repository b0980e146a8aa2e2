"""``python -m dubber`` runs the same CLI as ``dub``."""

from dubber.cli.app import main

if __name__ == "__main__":
    main()
