"""syqure-wf: multi-party computation across sites that share only a synced folder."""

__version__ = "0.1.0"
