"""Every command module, imported so that each registers its commands on the app."""

from . import compress, measure, misc, runs, studies, train  # noqa: F401
