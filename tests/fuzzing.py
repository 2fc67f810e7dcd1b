"""Fuzzing an API from its OpenAPI schema with schemathesis: every operation, valid and invalid input.

Each operation gets `examples` generated requests of each kind (positive: what the schema allows; negative:
what it forbids), seeded so a run repeats. Every answer is checked by schemathesis' own checks: no 5xx, a
status code the schema declares, a body in the declared shape, invalid input refused. Failures are
collected, not raised one by one, so one run reports them all.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

# A request the schema allows may still be refused on rules no schema states (an address that receives no
# mail, a price no longer on sale, a weak password): a 400 for schema-valid input is not a failure here.
EXCLUDED_CHECKS = [positive_data_acceptance]


@dataclass
class FuzzReport:
    operations: set[str] = field(default_factory=set)
    examples: int = 0
    failures: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "operations": len(self.operations),
            "examples": self.examples,
            "failures": len(self.failures),
            "failed": self.failures,
        }


def fuzz(schema, *, who: str, headers: dict[str, str], examples: int, seed: int, report: FuzzReport) -> FuzzReport:
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations.add(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, who=who, headers=headers, examples=examples, seed=seed, report=report)
    return report


def _fuzz_operation(operation, mode, *, who, headers, examples, seed, report) -> None:
    seen: set[str] = set()

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        report.examples += 1
        try:
            case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)
        except (Exception, FailureGroup) as failure:  # noqa: BLE001 - every failure is collected and reported
            kinds = [type(each).__name__ for each in getattr(failure, "exceptions", [failure])]
            key = f"{mode.value}:{','.join(sorted(kinds))}"
            if key in seen:
                return
            seen.add(key)
            report.failures.append(
                {"identity": who, "operation": operation.label, "mode": mode.value, "failure": str(failure)[:3000]}
            )

    run()


def summarize(path: str) -> dict:
    """One JSON summary of the identities' reports (one JSON line each) that a fuzz run wrote."""
    reports = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {
        "identities": [report["identity"] for report in reports],
        "operations": max((report["operations"] for report in reports), default=0),
        "examples": sum(report["examples"] for report in reports),
        "examples_per_operation_and_mode": reports[0]["examples_per_operation_and_mode"] if reports else 0,
        "seed": reports[0]["seed"] if reports else None,
        "failures": sum(report["failures"] for report in reports),
        "failed": [failure for report in reports for failure in report["failed"]],
    }


if __name__ == "__main__":
    print(json.dumps(summarize(sys.argv[1]), indent=2))  # noqa: T201 - `make fuzz` prints the summary
