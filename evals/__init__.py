"""Golden-set evaluations of a running stack (`tierserve eval`): graders, the HTTP runner, the report. Talks to
the stack over HTTP only, like a client."""

from evals.golden import Case, GoldenSetError, grade, load_set
from evals.runner import CaseResult, EvalRun, compare, run_set, summarise

__all__ = ["Case", "CaseResult", "EvalRun", "GoldenSetError", "compare", "grade", "load_set", "run_set", "summarise"]
