"""bids-factory: daily hospital Data Capture exports -> one BIDS dataset.

The flow, one sub-package per stage with typed values (:mod:`bids_factory.model`) between them:
``discover`` -> ``extract`` -> ``plan`` (gated by ``checks``) -> ``write`` -> ``ehr`` -> ``finalize``,
then ``report``; ``run`` drives a run, ``cli`` is the command line (docs/architecture.md).
"""

__version__ = "0.1.0"
