"""bids-factory: daily hospital Data Capture exports -> one BIDS dataset.

The flow (one module per stage, typed values between them):
``discover`` -> ``extract`` -> ``plan`` -> ``write`` -> ``finalize``.
"""

__version__ = "0.1.0"
