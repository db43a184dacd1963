"""`genies validate`: checks that catch the defects the original GENIES release shipped with (DESIGN §6).

Checks live in small modules (checks, rules, overlap, neardup) and register themselves in
`registry.CHECKS` with a name, a severity and a description; `validate_version` runs them on a version.
"""

from builders.validation import (  # noqa: F401  (register the checks)
           checks,
           fidelity,
           neardup,
           overlap,
           probe,
           rules,
           shortcuts,
)
from builders.validation.registry import CHECKS, Check, Finding, check
from builders.validation.run import (
           CheckResult,
           ValidationReport,
           select_checks,
           validate_version,
)

__all__ = ["CHECKS", "Check", "CheckResult", "Finding", "ValidationReport", "check", "select_checks",
           "validate_version"]
