"""User-facing errors.

Every problem a user can cause (bad data, a corrupt artifact, a layer the hardware cannot
map, a missing simulator) is raised as a subclass of :class:`SnnfpgaError`. The command
line prints its message on one line and exits non-zero, without a traceback.
"""


class SnnfpgaError(Exception):
    """Base class of the errors that the command line reports as one line."""


class DataError(SnnfpgaError):
    """A data file is unreadable, has the wrong shape or dtype, or labels out of range."""


class ArtifactError(SnnfpgaError):
    """A model directory or artifact is missing, corrupt or inconsistent."""


class ConfigError(SnnfpgaError):
    """A configuration or command-line value is out of its allowed range."""


class MappingError(SnnfpgaError):
    """The hardware generator cannot map this artifact (layer kind, width, size)."""


class ToolError(SnnfpgaError):
    """An external tool (simulator, synthesizer, compiler) is missing or failed."""
