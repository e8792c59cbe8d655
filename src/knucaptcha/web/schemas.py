"""The JSON bodies the service answers with, as pydantic models (they also document ``/openapi.json``)."""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_image, unknown_model.")
    message: str = Field(description="What went wrong, for people.")


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class Solved(BaseModel):
    text: str = Field(description="What the model read; symbols outside its charset appear as '?'.")
    confidence: float = Field(description="Product of the per-character confidences, in [0, 1].")
    char_confidences: list[float] = Field(description="Confidence of each character of text.")
    model: str = Field(description="Name of the model that read it.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Why the reading may mean nothing: the image is not of the kind the model was trained on "
        "(an opaque image for a model of transparent captchas, or a transparent one whose drawing vanishes "
        "on white for a model of opaque ones). Empty when it is; with strict=true such an image is refused.",
    )


class SolveResult(Solved):
    elapsed_ms: float = Field(description="Server time spent decoding and reading the image.")


class BatchSolved(Solved):
    filename: str | None


class BatchFailed(BaseModel):
    filename: str | None
    error: ErrorDetail


BatchItem = Union[BatchSolved, BatchFailed]


class InputSize(BaseModel):
    channels: int
    height: int
    width: int


class ModelInfo(BaseModel):
    name: str
    default: bool = Field(description="Whether requests that name no model use this one.")
    charset: str
    max_length: int
    read_length: Union[int, None] = Field(
        description="How many symbols the model reads when neither the request nor the site (GET /v1/defaults) "
        "gives a length: the reading length its file stores; null: any."
    )
    input: InputSize
    preprocess: dict[str, Any]
    metadata: dict[str, str] = Field(
        description="The model file's other knucaptcha metadata (preset, architecture, training summary), "
        "without the 'knucaptcha.' prefix."
    )


class ReadDefaults(BaseModel):
    """What a request that gives no ``beam``, ``symbols`` or ``length`` is read with
    (``serve --beam/--symbols/--length``)."""

    beam: int = Field(description="The beam search width; 0: greedy decoding.")
    symbols: Union[str, None] = Field(description="The site's alphabet; null: every symbol of the model.")
    length: Union[int, None] = Field(
        description="The site's number of symbols; 0: any; null: each model's reading length (GET /v1/models)."
    )


class Health(BaseModel):
    status: str
    models: list[str]


class Verdict(BaseModel):
    correct: bool
