"""One exception hierarchy for the whole project, with stable integer codes.

The codes are part of the public API (listed in the README), like a C
library's status codes: a caller may switch on ``err.code``; the command line
exits with it. Categories are the tens digit; never renumber an existing code.
"""


#: exit status and record code of an exception that is not a PslgError (a bug, not bad input)
INTERNAL_ERROR = 70


class PslgError(Exception):
    """Base of every error this project raises on purpose."""

    code = 1

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return f"{type(self).__name__} [{self.code}]: {self.message}"


# 10-19: the caller's input
class InputError(PslgError):
    code = 10


class ImageError(InputError):
    code = 11


class BoxError(InputError):
    code = 12


class TextError(InputError):
    code = 13


class PointError(InputError):
    code = 14


class ParameterError(InputError):
    code = 15


class PathError(InputError):
    """A file or folder given to read or write cannot be (missing, a file where a folder is needed, no permission)."""

    code = 16

    @classmethod
    def from_os_error(cls, e: OSError) -> "PathError":
        """The PathError of a filesystem failure nothing caught earlier: its file and the system's reason."""
        where = f"{e.filename}: " if e.filename else ""
        return cls(f"{where}{e.strerror or e}")


# 20-29: the model-set folder
class ModelSetError(PslgError):
    code = 20


class ModelSetNotFound(ModelSetError):
    code = 21


class ManifestError(ModelSetError):
    code = 22


class ModelFileError(ModelSetError):
    code = 23


class GraphSignatureError(ModelSetError):
    code = 24


class ComponentMissing(ModelSetError):
    code = 25


# 30-39: the inference backend
class BackendError(PslgError):
    code = 30


class BackendUnavailable(BackendError):
    code = 31


class EngineIncompatible(BackendError):
    code = 32


class BackendRuntimeError(BackendError):
    code = 33


class ProfileError(BackendError):
    code = 34


# 40-49: calls made in the wrong state
class StateError(PslgError):
    code = 40


class ClosedError(StateError):
    code = 41


class NoImageError(StateError):
    code = 42


class StaleImageError(StateError):
    """An ImageHandle whose thread has set another image since."""

    code = 43


# 50-59: exporting and building
class ExportError(PslgError):
    code = 50


class CheckpointError(ExportError):
    code = 51


class ParityError(ExportError):
    code = 52


class TokenizerError(ExportError):
    code = 53


class MissingDependency(ExportError):
    code = 54


# 60-69: data and batches of jobs
class DatasetError(PslgError):
    code = 61


class JobsFileError(PslgError):
    """A batch's jobs file is malformed: a line that is not a job, a missing or repeated ``id``."""

    code = 62


class JobsFailed(PslgError):
    """A batch finished, and some of its jobs failed (each one's error is in results.jsonl)."""

    code = 63


def all_errors():
    """Every error class, in code order (the README's table is made from this)."""
    seen, todo = [], [PslgError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.code)
