"""The retraining contract: which uploads are a pipeline's dataset, the schedule setting, and the
alarm email setting; spelled like the rest of the project."""

import pytest

from inference import settings as inference_settings
from trainer.config import PIPELINE_PATTERN
from trainer.contract import monitoring, names, retrain
from trainer.contract.monitoring import SettingError


@pytest.mark.parametrize(
    ("key", "pipeline"),
    [("datasets/digits/2026-11.csv", "digits"), ("datasets/a_b-c/x.npz", "a_b-c")],
)
def test_a_file_under_datasets_pipeline_is_that_pipeline_s_dataset(key: str, pipeline: str) -> None:
    assert retrain.dataset_upload(key) == retrain.DatasetUpload(pipeline=pipeline, key=key)


@pytest.mark.parametrize(
    "key",
    ["datasets/digits.csv", "datasets/digits/sub/x.csv", "datasets/digits/x.txt", "x/d/a.csv"],
)
def test_anything_else_is_not_and_says_why(key: str) -> None:
    reason = retrain.dataset_upload(key)
    assert isinstance(reason, str) and key in reason


def test_the_pipeline_names_agree_with_the_config_s() -> None:
    assert retrain._PIPELINE.pattern == PIPELINE_PATTERN
    assert inference_settings.DEFAULT_SERVICE_NAME == names.SERVICE_NAME


def test_schedules_are_checked_and_trimmed() -> None:
    assert retrain.retrain_schedules(None) == {}
    assert retrain.retrain_schedules({"d": " rate(1 day) ", "e": "cron(0 3 * * ? *)"}) == {
        "d": "rate(1 day)",
        "e": "cron(0 3 * * ? *)",
    }
    with pytest.raises(SettingError, match="rate\\(<n> minutes"):
        retrain.retrain_schedules({"d": "rate(0 days)"})


def test_the_alarm_email_is_one_address_or_nothing() -> None:
    assert monitoring.alarm_email(None) is None and monitoring.alarm_email("") is None
    assert monitoring.alarm_email(" ops@example.com ") == "ops@example.com"
    with pytest.raises(SettingError, match='context "alarm_email"'):
        monitoring.alarm_email("a@b@c")
