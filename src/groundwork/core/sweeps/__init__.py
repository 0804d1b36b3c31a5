"""Hyperparameter sweeps: Optuna searches, every trial a recorded run (see :mod:`.sweep`).

Modules, one per noun: :mod:`.space` (search spaces), :mod:`.storage` (Optuna's storage
over runs), :mod:`.sweep` (the driver, ``gw.sweep``), :mod:`.trial` (a trial where it
runs), :mod:`.executors` (worker processes, Ray), :mod:`.command` (trials that run a command).
Optuna is imported only by the modules that need it, never by ``import groundwork``.
"""

from __future__ import annotations

from groundwork.core.sweeps.space import choice, integer, loguniform, uniform

__all__ = ["choice", "integer", "loguniform", "uniform"]
