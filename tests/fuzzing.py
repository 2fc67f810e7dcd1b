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
    # Examples sent per "<operation> (<mode>)": one left at 0 was never fuzzed, whatever the totals say.
    examples_by_operation: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)

    def unfuzzed(self) -> list[str]:
        return sorted(name for name, count in self.examples_by_operation.items() if count == 0)

    def as_dict(self) -> dict:
        return {
            "operations": len(self.operations),
            "examples": self.examples,
            "unfuzzed": self.unfuzzed(),
            "failures": len(self.failures),
            "failed": self.failures,
        }


def schema_operations(raw_schema: dict) -> set[str]:
    """Every operation the OpenAPI document declares, as "METHOD /path" (what schemathesis labels them)."""
    methods = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
    return {
        f"{method.upper()} {path}"
        for path, item in raw_schema.get("paths", {}).items()
        for method in item
        if method in methods
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
    counted = f"{operation.label} ({mode.value})"
    report.examples_by_operation.setdefault(counted, 0)

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
        report.examples_by_operation[counted] += 1
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


IDENTITIES = ("anonymous", "customer", "staff")


def summarize(path: str, log: str = "") -> dict:
    """One JSON summary of the identities' reports (one JSON line each) that a fuzz run wrote.

    An identity whose run wrote no report (pytest stopped before it: a collection or fixture error) is
    named under `not_run`, so a summary never reads as clean for a run that did not happen.
    """
    summary_file = Path(path)
    lines = summary_file.read_text().splitlines() if summary_file.exists() else []
    reports = [json.loads(line) for line in lines if line.strip()]
    ran = [report["identity"] for report in reports]
    summary = {
        "identities": ran,
        "not_run": [who for who in IDENTITIES if who not in ran],
        "operations": max((report["operations"] for report in reports), default=0),
        "examples": sum(report["examples"] for report in reports),
        "examples_per_operation_and_mode": reports[0]["examples_per_operation_and_mode"] if reports else 0,
        "seed": reports[0]["seed"] if reports else None,
        "unfuzzed": sorted({name for report in reports for name in report.get("unfuzzed", [])}),
        "failures": sum(report["failures"] for report in reports),
        "failed": [failure for report in reports for failure in report["failed"]],
    }
    if summary["not_run"]:
        summary["error"] = f"no fuzz report for {', '.join(summary['not_run'])}: see {log or 'the pytest output'}"
    return summary


if __name__ == "__main__":
    # `make fuzz`: python -m tests.fuzzing <summary.jsonl> [<pytest log>]; exits 1 when an identity did not run.
    result = summarize(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
    print(json.dumps(result, indent=2))  # noqa: T201 - `make fuzz` prints the summary
    sys.exit(1 if result["not_run"] else 0)
