"""The driver adapter against real connections of the driver Django picked."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from demo_project.devdb import connect_params
from django_pool.drivers import TxStatus, driver_for
from tests.conftest import ServerView


@pytest.fixture
def conn(transactional_db):
    wrapper = connections["default"]
    connection = wrapper.Database.connect(**connect_params(wrapper.settings_dict))
    connection.autocommit = True
    yield connection
    connection.close()


driver = driver_for(connections["default"].Database)


def execute(connection, sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)


def test_status_follows_the_transaction_without_a_round_trip(conn):
    assert driver.status(conn) == TxStatus.IDLE
    execute(conn, "BEGIN")
    assert driver.status(conn) == TxStatus.INTRANS
    with pytest.raises(connections["default"].Database.DatabaseError):
        execute(conn, "SELECT 1/0")
    assert driver.status(conn) == TxStatus.INERROR
    driver.rollback(conn)
    assert driver.status(conn) == TxStatus.IDLE
    conn.close()
    assert driver.status(conn) == TxStatus.UNKNOWN


def test_rollback_ends_a_transaction_opened_behind_the_drivers_back(conn):
    execute(conn, "BEGIN")  # in autocommit mode: the driver itself did not open it
    execute(conn, "CREATE TEMPORARY TABLE t (x int)")
    driver.rollback(conn)
    assert driver.status(conn) == TxStatus.IDLE
    with conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = 't'")
        assert cursor.fetchone()[0] == 0


def test_discard_all_resets_unreported_settings(conn):
    conn.autocommit = False
    execute(conn, "SET search_path TO pg_catalog")
    conn.commit()
    driver.discard_all(conn)
    assert conn.autocommit is False
    with conn.cursor() as cursor:
        cursor.execute("SHOW search_path")
        assert cursor.fetchone()[0] == '"$user", public'
    conn.rollback()


def test_ping_fails_on_a_terminated_connection(conn):
    driver.ping(conn)
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    server = ServerView(connections["default"].settings_dict)
    server.terminate(pid)
    server.close()
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own OperationalError
        driver.ping(conn)
    driver.close(conn)
    driver.close(conn)  # closing twice never raises


def test_session_state_sees_a_change_and_restore_sets_it_back(conn):
    baseline = driver.session_state(conn)
    execute(conn, "SET TIME ZONE 'Asia/Tokyo'")
    execute(conn, "SET application_name TO 'elsewhere'")
    assert driver.session_state(conn) != baseline
    driver.restore_session(conn, baseline)
    assert driver.session_state(conn) == baseline


def test_idle_session_state_is_the_state_when_idle_and_the_status_otherwise(conn):
    assert driver.idle_session_state(conn) == driver.session_state(conn)
    execute(conn, "SET TIME ZONE 'Asia/Tokyo'")
    assert driver.idle_session_state(conn) == driver.session_state(conn)
    execute(conn, "BEGIN")
    assert driver.idle_session_state(conn) == TxStatus.INTRANS
    with pytest.raises(connections["default"].Database.DatabaseError):
        execute(conn, "SELECT 1/0")
    assert driver.idle_session_state(conn) == TxStatus.INERROR
    conn.close()
    assert driver.idle_session_state(conn) == TxStatus.UNKNOWN


def test_detach_makes_a_connection_harmless_without_ending_the_session(conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    saved = os.dup(conn.fileno())  # stands for the parent's copy of the socket
    try:
        driver.detach(conn)
        driver.close(conn)  # sends Terminate, to /dev/null
        server = ServerView(connections["default"].settings_dict)
        alive = server.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        server.close()
        assert alive == [(1,)]
    finally:
        os.close(saved)
