"""The ``gradmr`` command line (:mod:`gradmr.cli.main`). Library modules never import this package."""
