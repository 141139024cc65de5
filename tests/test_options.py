"""Parsing of OPTIONS["pool"] into a PoolConfig."""

import pytest

from django_pool.options import PoolConfig, validate_options


def test_true_means_the_documented_defaults():
    config = PoolConfig.from_options(True, name="default")
    assert (config.min_size, config.max_size, config.timeout, config.max_waiting) == (
        2,
        10,
        10.0,
        0,
    )
    assert (config.max_lifetime, config.max_idle, config.check, config.reset) == (
        3600.0,
        600.0,
        1.0,
        "rollback",
    )
    assert config.leak_timeout is None and config.name == "default"


def test_values_and_name_override_defaults():
    config = PoolConfig.from_options({"max_size": 3, "name": "shop"}, name="default")
    assert (config.max_size, config.name) == (3, "shop")
    assert PoolConfig.from_options({"name": None}, name="replica").name == "replica"


@pytest.mark.parametrize(("check", "after"), [("always", 0.0), ("never", None), (2, 2.0)])
def test_check_after(check, after):
    assert PoolConfig(check=check).check_after() == after


def test_bad_options_raise_value_error_listing_every_problem():
    with pytest.raises(ValueError, match="'max_size' must be >= 1.*Unknown pool option 'size'"):
        PoolConfig.from_options({"max_size": 0, "size": 3}, name="default")


def test_booleans_are_not_numbers():
    problems = validate_options({"max_size": True, "timeout": False})
    assert [p.kind for p in problems] == ["type", "type"]
