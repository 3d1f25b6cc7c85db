"""The experiment contract: what an experiment declares, so that one runner can do everything else.

An experiment (one per research question) says what it is called, what it is configured with, what its result
file holds, which items it measures, how it measures a batch of them and how it summarises the rows. The runner
(:mod:`visdepth.experiments.runner`) owns seeding, validation, loading, the run folder and its lock, resuming,
metadata and writing, identically for every experiment. Experiments never draw: figures and the report come from
:mod:`visdepth.report`, which reads the result files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from visdepth.data import Sample
from visdepth.experiments.common import ExperimentConfig
from visdepth.models import VLMAdapter


@dataclass
class Plan:
    """Everything the measuring needs, made once the model is loaded.

    ``items`` are measured in batches of up to ``batch_size`` consecutive items sharing a ``bucket`` key, one
    JSONL row per item (``item_id`` is its row id). Items are measured ``stage`` by stage (0 first): every
    process's rows of one stage are in the rows file before the next stage starts, and :meth:`Experiment.before_rows`
    is called before each stage, so a later stage may read what an earlier one measured (reason: the full model's
    chains, which every cut compares with), in one process or several. ``fits`` lists the (sample, prompt) pairs whose inputs must fit
    the model's context (checked before the first row). ``config`` may differ from the one given (an ``auto``
    choice made concrete): it is what the result records. ``state`` holds whatever else the experiment needs.
    """

    config: ExperimentConfig
    adapter: VLMAdapter
    items: Sequence[Any]
    fits: list[tuple[Sample, str]] = field(default_factory=list)
    batch_size: int = 1
    bucket: Callable[[Any], Any] = lambda item: None
    item_id: Callable[[Any], str] = lambda item: item.id
    stage: Callable[[Any], int] = lambda item: 0
    state: dict[str, Any] = field(default_factory=dict)


class Experiment(ABC):
    """One research question as the runner sees it; subclasses set the class attributes and the methods."""

    #: registry name, also the CLI subcommand and (by default) the run folder's name
    name: ClassVar[str]
    #: the research question it answers, for listings and the report
    question: ClassVar[str]
    config_class: ClassVar[type[ExperimentConfig]]
    result_class: ClassVar[type[BaseModel]]
    #: options ``visdepth run`` sets for this experiment so that the default study finishes in minutes on two CPU
    #: cores (a user's own values win)
    quick: ClassVar[dict[str, Any]] = {}

    def folder(self, config: Any) -> str:
        """The run folder's name under ``<output_path>/<model>/`` (truncate: one per mode)."""
        return self.name

    def validate(self, config: Any) -> None:
        """Refuse settings that cannot work, before any data or model is loaded (one-line ConfigError)."""
        return None

    @abstractmethod
    def load_data(self, config: Any) -> Any:
        """Tasks and samples, loaded before the model (so bad data fails before a slow load)."""

    @abstractmethod
    def plan(self, config: Any, adapter: VLMAdapter, data: Any) -> Plan:
        """What to measure on this model."""

    def prepare(self, plan: Plan, out: Path) -> None:
        """Work done once, before any row, whose results land in the run folder ``out`` (recover: training its
        adapters). In a data-parallel run the main process does it while the others wait; every process then
        reads what it left in :meth:`before_rows`."""
        return None

    def before_rows(self, plan: Plan, rows_path: Path) -> None:
        """Checks of an existing rows file beyond the config fingerprint (the runner's own check), and reading
        back what earlier rows hold; called before each stage's rows (see :class:`Plan`), with every row measured
        so far in ``rows_path``."""
        return None

    @abstractmethod
    def measure_batch(self, plan: Plan, items: list[Any]) -> list[dict[str, Any]]:
        """One row (a JSON object) per item, in order."""

    def after_rows(self, plan: Plan, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        """Further measurements once every row is in (a baseline, timing), given to :meth:`summarise`."""
        return {}

    @abstractmethod
    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        """The result's fields (all but ``meta``, ``model`` and ``files``) from the rows."""

    @abstractmethod
    def choices(self, plan: Plan) -> dict[str, Any]:
        """Every open choice of the study this run made, as its result records it."""
