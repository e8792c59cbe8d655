"""The models a running service reads with, loaded once at start-up and looked up by name per request."""

from __future__ import annotations

from ..ctc import READ_LENGTH_KEY
from ..errors import ConfigError
from ..inference import Solver
from ..spec import METADATA_PREFIX
from .errors import ApiError
from .schemas import InputSize, ModelInfo
from .settings import ServeSettings

# Shown as ModelInfo fields of their own, so left out of its metadata summary.
_SPEC_KEYS = {f"{METADATA_PREFIX}{key}" for key in ("charset", "preprocess", "max_length")} | {READ_LENGTH_KEY}


class ModelRegistry:
    """Solvers by name; the first one is the default. Read-only once built, so safe to share."""

    def __init__(self, solvers: dict[str, Solver], default: str):
        if default not in solvers:
            raise ValueError(f"default model {default!r} is not among {sorted(solvers)}")
        self._solvers = dict(solvers)
        self.default = default

    @classmethod
    def load(cls, settings: ServeSettings) -> ModelRegistry:
        """Load every model in ``settings`` (raises the solver's MissingFileError / ModelError), checking
        their weights unless ``settings.verify_models`` is off.

        A site alphabet or length that one of them cannot read is a :class:`ConfigError` here,
        before the service starts, rather than a 400 on every request that uses that model.
        """
        solvers = {
            name: Solver.load(reference, threads=settings.threads, verify=settings.verify_models)
            for name, reference in settings.models
        }
        for name, solver in solvers.items():
            try:
                solver.check_options(settings.site)
            except ConfigError as error:
                raise ConfigError(f"model {name!r}: {error}") from None
        return cls(solvers, settings.default_model)

    @property
    def names(self) -> list[str]:
        return list(self._solvers)

    def get(self, name: str | None = None) -> tuple[str, Solver]:
        """The model called ``name`` (None: the default) and its name; 404 if there is none."""
        chosen = self.default if name is None else name
        solver = self._solvers.get(chosen)
        if solver is None:
            raise ApiError(404, "unknown_model", f"no model named {chosen!r}; loaded: {', '.join(self._solvers)}")
        return chosen, solver

    def describe(self) -> list[ModelInfo]:
        return [self._describe(name, solver) for name, solver in self._solvers.items()]

    def _describe(self, name: str, solver: Solver) -> ModelInfo:
        spec = solver.spec
        metadata = {
            key.removeprefix(METADATA_PREFIX): value
            for key, value in solver.metadata.items()
            if key.startswith(METADATA_PREFIX) and key not in _SPEC_KEYS
        }
        return ModelInfo(
            name=name,
            default=name == self.default,
            charset=spec.charset.symbols,
            max_length=spec.max_length,
            read_length=solver.read_length,
            input=InputSize(channels=1, height=spec.preprocess.height, width=spec.preprocess.width),
            preprocess=spec.preprocess.to_dict(),
            metadata=metadata,
        )
