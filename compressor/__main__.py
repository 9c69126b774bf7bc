"""``python -m compressor`` runs the same CLI as the ``compress`` script."""

from compressor.cli.app import main

if __name__ == "__main__":
    main()
