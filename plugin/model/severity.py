"""One table from each source's level to (severity label, risk score)."""

from __future__ import annotations

__all__ = ["RISK_BY_SEVERITY", "SEVERITY_NUMBER", "wazuh_severity", "label_risk"]

# Elastic's own defaults for each severity label (detection-rules uses these risk scores).
RISK_BY_SEVERITY = {"low": 21, "medium": 47, "high": 73, "critical": 99}
# ECS event.severity is numeric; shellsieve writes 1..4 for low..critical.
SEVERITY_NUMBER = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def label_risk(label: str) -> tuple[str, int]:
    """(label, default risk score) for a severity label; unknown labels read as medium."""
    label = label.lower()
    if label not in RISK_BY_SEVERITY:
        label = "medium"
    return label, RISK_BY_SEVERITY[label]


def wazuh_severity(level: int) -> tuple[str, int]:
    """Wazuh levels 0-15 in Wazuh's own bands: 0-6 low, 7-11 medium, 12-14 high, 15 critical."""
    if level >= 15:
        return "critical", 99
    if level >= 12:
        return "high", 73
    if level >= 7:
        return "medium", 47
    return "low", 21
