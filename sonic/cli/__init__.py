"""Every command of Sonic, one module each, each a ``main(argv) -> exit code`` through
:func:`sonic.errors.run_entry_point` (the exit codes and the ``error:`` line), answering ``--help`` without torch:

=================  ==========================  ================================================================
module             command                     what it does
=================  ==========================  ================================================================
``demo``           ``sonic_demo.py``           generate videos: one, a batch, folders, the Gradio app
``preprocess``     ``sonic_preprocess.py``     raw videos or dataset recipes -> a training set
``train``          ``sonic_training.py``       train (diffusion or audio2bucket), raw folders preprocessed first
``eval``           ``sonic_eval.py``           metrics of generated against reference videos, the test protocol
``tiny``           ``python -m sonic.cli.tiny``    a tiny random checkpoint for offline runs
``check``          ``python -m sonic.cli.check``   is a checkpoint folder complete and loadable?
``verify``         ``python -m sonic.cli.verify``  is a preprocessed dataset whole?
=================  ==========================  ================================================================

The top-level ``sonic_*.py`` scripts and the ``sonic-*`` console scripts are shims of these.
"""
