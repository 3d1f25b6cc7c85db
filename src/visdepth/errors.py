"""User-facing errors: one sentence that names the problem and the fix.

Library code raises these instead of letting a bare traceback reach the user; the CLI prints the message on one
line and exits with status 2, after whatever was already written has been flushed.
"""


class VisdepthError(Exception):
    """Base class of every error meant to be shown to a user as one line."""


class UnsupportedModelError(VisdepthError):
    """The model is not a vision-language model of a supported family."""


class InputError(VisdepthError):
    """A sample, prompt or image cannot be turned into model inputs."""


class ManifestError(VisdepthError):
    """A data manifest row is malformed (the message carries the file and line number)."""


class ConfigError(VisdepthError):
    """An option value is out of range or inconsistent with the model (for example a layer beyond the depth)."""


class UnknownNameError(ConfigError):
    """A name (task, data set, model family, experiment) is not registered; the message names the closest."""


class NameCollisionError(VisdepthError, ValueError):
    """A registration under a name that another object already holds; collisions are refused, never overridden.

    Also a ``ValueError``, which registering a taken name raised before the registries shared one shape.
    """
