"""A deployment's settings are checked before anything is built, each error naming the setting
and how to set it."""

from typing import Any

import pytest

from infra.settings import (
    FUNCTION_NAME_LIMIT,
    DeploySettingError,
    check_stack_name,
    longest_name_allowed,
    read_settings,
)
from trainer.contract import names
from trainer.contract.functions import FUNCTIONS

pytestmark = pytest.mark.infra


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"log_level": "LOUD"}, r"'log_level' is 'LOUD'; it must be one of DEBUG, INFO"),
        ({"log_level": 3}, r"'log_level' is 3"),
        ({"scratch_ttl_hours": "0"}, r"'scratch_ttl_hours' is '0'; it must be a whole number"),
        ({"scratch_ttl_hours": -3}, r"'scratch_ttl_hours' is -3"),
        ({"scratch_ttl_hours": "1.5"}, r"'scratch_ttl_hours' is '1.5'"),
        ({"scratch_ttl_hours": "abc"}, r"-c scratch_ttl_hours=48"),
        ({"scratch_ttl_hours": True}, r"'scratch_ttl_hours' is True"),
        ({"scratch_ttl_hours": 10**6}, r"from 1 to 8760"),
    ],
)
def test_a_bad_setting_is_refused_naming_it_and_the_fix(
    context: dict[str, Any], message: str
) -> None:
    # Given a context with one bad setting, When read, Then refused with what to set
    with pytest.raises(DeploySettingError, match=message):
        read_settings(context.get)


def test_good_settings_are_read_as_the_stack_uses_them() -> None:
    # Given settings as cdk.json holds them and as -c passes them (strings)
    # When read
    given = read_settings({"log_level": "debug", "scratch_ttl_hours": "48"}.get)
    unset = read_settings({}.get)

    # Then typed, and unset ones left to the contract's defaults
    assert (given.log_level, given.scratch_ttl_hours) == ("DEBUG", 48)
    assert (unset.log_level, unset.scratch_ttl_hours) == (None, None)


def test_a_stack_name_too_long_for_lambda_function_names_is_refused() -> None:
    # Given the longest name every function name allows, and one character more
    longest = longest_name_allowed()
    fits, too_long = "s" * longest, "s" * (longest + 1)

    # When / Then the first is kept, its longest function name exactly at Lambda's limit
    assert check_stack_name(fits) == fits
    widest = max(len(names.function_name(fits, f)) for f in FUNCTIONS)
    assert widest == FUNCTION_NAME_LIMIT
    with pytest.raises(
        DeploySettingError, match=rf"is {longest + 1} characters; at most {longest}"
    ):
        check_stack_name(too_long)


@pytest.mark.parametrize("name", ["1stepnet", "step_net", "step net", "stepnet!", ""])
def test_a_stack_name_cloudformation_refuses_is_refused(name: str) -> None:
    with pytest.raises(DeploySettingError, match="must start with a letter"):
        check_stack_name(name)


def test_the_stack_checks_its_settings_before_building_anything(make_stack: Any) -> None:
    # Given a zero scratch TTL in context, When the stack is made, Then it is refused
    with pytest.raises(DeploySettingError, match="scratch_ttl_hours"):
        make_stack({"scratch_ttl_hours": "0"})
