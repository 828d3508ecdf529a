"""docs/configuration.md lists every setting the ledger reads, so it cannot fall behind."""

from __future__ import annotations

from pathlib import Path

from ledger.config import Settings
from ledger.kafka.settings import KafkaSettings

DOC = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()


def test_every_kafka_setting_is_documented_with_its_default() -> None:
    for name, field in KafkaSettings.model_fields.items():
        variable = f"`LEDGER_KAFKA_{name.upper()}`"
        assert variable in DOC, variable
        row = next(line for line in DOC.splitlines() if line.startswith(f"| {variable}"))
        default = field.default
        if default is not None and not hasattr(default, "get_secret_value"):
            assert f"`{default}`" in row, (variable, default)


def test_every_ledger_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"LEDGER_{name.upper()}" in DOC, name


def test_every_api_setting_is_documented_with_its_default() -> None:
    from ledger.bootstrap import ApiSettings

    for name, field in ApiSettings.model_fields.items():
        variable = f"`LEDGER_API_{name.upper()}`"
        row = next((line for line in DOC.splitlines() if line.startswith(f"| {variable}")), None)
        assert row is not None, variable
        if field.default:
            assert f"`{field.default}`" in row, (variable, field.default)
