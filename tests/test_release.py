"""release="transaction": the connection goes back between transactions, and only then.

Every test runs against the real server, on whichever driver the run uses (the psycopg2 legs
run this file too). The default alias is switched to ``release="transaction"`` with
``max_size`` 2 by the ``per_transaction`` fixture (``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from django.db import close_old_connections, connections, transaction
from django.db.utils import IntegrityError, OperationalError
from django.test import AsyncClient, Client

import django_pool
from demo_project.shop.models import Order, OrderLine, Product
from django_pool.release import ConnectionReleased, LentConnection
from tests.test_backend import lock_in_another_thread
from tests.testapp.models import Item


def in_use(wrapper) -> int:
    return wrapper.pool.stats()["pool_in_use"]


def lent(wrapper) -> bool:
    """Return True if the wrapper holds a borrowed connection (and the pool says so)."""
    held = wrapper.connection is not None
    assert in_use(wrapper) == held
    return held


def fetch(wrapper, sql: str, params=None):
    with wrapper.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_off_by_default_the_connection_is_held_until_the_request_ends():
    wrapper = connections["default"]
    assert wrapper.pool.config.release == "request"
    Item.objects.count()
    assert wrapper.connection is not None
    assert not isinstance(wrapper.connection, LentConnection)
    assert wrapper.pool.describe_lent(wrapper.connection) is not None
    wrapper.close()


def test_an_autocommit_query_gives_the_connection_back_once_read(per_transaction):
    wrapper = per_transaction
    requests = wrapper.pool.stats()["requests_num"]
    assert Item.objects.count() == 0
    assert not lent(wrapper)
    Item.objects.create(name="a")
    assert not lent(wrapper)
    assert list(Item.objects.values_list("name", flat=True)) == ["a"]
    assert wrapper.pool.stats()["requests_num"] - requests == 3


def test_atomic_holds_one_connection_and_one_transaction(per_transaction):
    wrapper = per_transaction
    with transaction.atomic():
        Item.objects.create(name="outer")
        pid = fetch(wrapper, "SELECT pg_backend_pid()")
        xid = fetch(wrapper, "SELECT pg_current_xact_id()::text")
        assert lent(wrapper)
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint, rolled back
            Item.objects.create(name="inner")
            raise RuntimeError
        assert lent(wrapper)
        assert fetch(wrapper, "SELECT pg_backend_pid()") == pid
        assert fetch(wrapper, "SELECT pg_current_xact_id()::text") == xid
    assert not lent(wrapper)
    assert list(Item.objects.values_list("name", flat=True)) == ["outer"]
    with pytest.raises(RuntimeError), transaction.atomic():
        Item.objects.create(name="gone")
        raise RuntimeError
    assert not lent(wrapper)
    assert Item.objects.filter(name="gone").count() == 0


def test_select_for_update_keeps_the_row_lock_until_the_block_ends(per_transaction):
    item = Item.objects.create(name="locked")
    with transaction.atomic():
        Item.objects.select_for_update().get(pk=item.pk)
        Item.objects.count()  # another query: the lock stays, on the same connection
        assert lock_in_another_thread(item.pk) == "busy"
    assert lock_in_another_thread(item.pk) == "locked"


def test_on_commit_hooks_run_after_the_release_and_may_query(per_transaction):
    wrapper = per_transaction
    seen = []
    with transaction.atomic():
        Item.objects.create(name="hooked")
        transaction.on_commit(lambda: seen.append(Item.objects.filter(name="hooked").count()))
        assert seen == []
    assert seen == [1]
    assert not lent(wrapper)
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: seen.append("rolled back"))
        Item.objects.create(name="gone")
        raise RuntimeError
    assert seen == [1]
    # Outside a transaction a hook runs at once, with nothing borrowed for it.
    transaction.on_commit(lambda: seen.append("now"))
    assert seen == [1, "now"]
    assert not lent(wrapper)


def test_iterator_keeps_its_server_side_cursor_until_read_to_the_end(per_transaction):
    wrapper = per_transaction
    Item.objects.bulk_create(Item(name=f"i{n}", quantity=n) for n in range(12))
    rows = Item.objects.order_by("quantity").iterator(chunk_size=5)
    first = [next(rows).quantity for _ in range(7)]
    assert lent(wrapper)
    assert Item.objects.count() == 12  # another query meanwhile, on the same connection
    assert lent(wrapper)
    assert first + [item.quantity for item in rows] == list(range(12))
    assert not lent(wrapper)


def test_a_named_cursor_with_hold_and_without(per_transaction):
    wrapper = per_transaction
    cursor = wrapper.chunked_cursor()  # WITH HOLD: autocommit mode
    cursor.execute("SELECT generate_series(1, 10)")
    assert [row[0] for row in cursor.fetchmany(3)] == [1, 2, 3]
    assert lent(wrapper)
    assert [row[0] for row in cursor.fetchall()] == list(range(4, 11))
    cursor.close()
    assert not lent(wrapper)
    with transaction.atomic():  # without hold, inside a transaction
        cursor = wrapper.chunked_cursor()
        cursor.execute("SELECT generate_series(1, 3)")
        assert [row[0] for row in cursor.fetchmany(2)] == [1, 2]
        cursor.close()
        assert lent(wrapper)
    assert not lent(wrapper)


def test_a_cursor_kept_open_keeps_the_connection_and_a_dropped_one_frees_it(per_transaction):
    wrapper = per_transaction
    cursor = wrapper.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
    assert Item.objects.count() == 0
    assert lent(wrapper)
    assert fetch(wrapper, "SELECT pg_backend_pid()") == pid
    cursor.close()
    assert not lent(wrapper)

    cursor = wrapper.cursor()
    cursor.execute("SELECT 1")
    del cursor  # never closed
    gc.collect()
    assert lent(wrapper)  # nothing asked since
    Item.objects.count()
    assert not lent(wrapper)


def test_a_connection_broken_between_queries_is_replaced_at_the_next_one(per_transaction):
    wrapper = per_transaction
    lost = wrapper.pool.stats()["returns_bad"]
    with pytest.raises(OperationalError), wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert not lent(wrapper)  # given back broken: the pool closed it
    assert wrapper.pool.stats()["returns_bad"] == lost + 1
    assert Item.objects.count() == 0  # the same request goes on, on another connection


def test_a_connection_broken_in_manual_mode_is_replaced_too(per_transaction):
    wrapper = per_transaction
    wrapper.set_autocommit(False)
    with pytest.raises(OperationalError), wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert not lent(wrapper)
    Item.objects.create(name="after")  # another connection, still in manual mode
    assert lent(wrapper)
    wrapper.commit()
    wrapper.set_autocommit(True)
    assert list(Item.objects.values_list("name", flat=True)) == ["after"]


def test_the_raw_connection_kept_across_a_release_raises(per_transaction):
    wrapper = per_transaction
    with transaction.atomic():
        wrapper.ensure_connection()
        raw = wrapper.connection
        Item.objects.count()
        with raw.cursor() as cursor:  # still this block's connection
            cursor.execute("SELECT 1")
    with pytest.raises(ConnectionReleased, match='release="transaction"') as caught:
        raw.cursor()
    assert "django_pool.hold()" in str(caught.value)
    with pytest.raises(ConnectionReleased):
        raw.autocommit = False


def test_reported_settings_do_not_follow_to_the_next_borrow(per_transaction):
    wrapper = per_transaction
    date_style = fetch(wrapper, "SHOW DateStyle")
    restored = wrapper.pool.stats()["sessions_restored"]
    with wrapper.cursor() as cursor:
        cursor.execute("SET DateStyle TO 'German'")
    assert not lent(wrapper)
    assert wrapper.pool.stats()["sessions_restored"] == restored + 1
    assert fetch(wrapper, "SHOW DateStyle") == date_style


def test_hold_keeps_session_state_from_one_query_to_the_next(per_transaction):
    wrapper = per_transaction
    with django_pool.hold():
        with wrapper.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE scratch (n int)")
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO scratch VALUES (1), (2)")
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(42)")
        assert fetch(wrapper, "SELECT count(*) FROM scratch") == 2
        assert fetch(wrapper, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 1
        assert lent(wrapper)
        with wrapper.cursor() as cursor:
            cursor.execute("DROP TABLE scratch")
            cursor.execute("SELECT pg_advisory_unlock(42)")
    assert not lent(wrapper)


def test_manual_transactions_release_at_commit_and_rollback(per_transaction):
    wrapper = per_transaction
    wrapper.set_autocommit(False)
    Item.objects.create(name="committed")
    assert lent(wrapper)  # in a transaction
    wrapper.commit()
    assert not lent(wrapper)
    Item.objects.create(name="rolled back")  # borrows again, still in manual mode
    assert lent(wrapper)
    wrapper.rollback()
    assert not lent(wrapper)
    assert wrapper.get_autocommit() is False
    wrapper.set_autocommit(True)
    assert not lent(wrapper)
    assert list(Item.objects.values_list("name", flat=True)) == ["committed"]
    assert not lent(wrapper)


def test_orm_paths_that_open_several_cursors(per_transaction):
    wrapper = per_transaction
    product = Product.objects.create(name="tea", price=3, stock=10)
    orders = Order.objects.bulk_create(Order(customer=f"c{n}", total=3) for n in range(3))
    OrderLine.objects.bulk_create(
        [OrderLine(order=order, product=product, quantity=1, price=3) for order in orders] * 2,
        batch_size=2,  # three INSERTs, in one transaction
    )
    assert not lent(wrapper)
    lines = [len(order.lines.all()) for order in Order.objects.prefetch_related("lines")]
    assert lines == [2, 2, 2]
    assert not lent(wrapper)
    with transaction.atomic():
        item, created = Item.objects.get_or_create(name="once")
        assert created
        with pytest.raises(IntegrityError), transaction.atomic():
            Item.objects.create(pk=item.pk, name="twice")
        assert Item.objects.get_or_create(name="once") == (item, False)
    assert not lent(wrapper)
    assert Item.objects.count() == 1


def test_a_request_mixing_atomic_blocks_and_autocommit_queries(per_transaction):
    wrapper = per_transaction
    close_old_connections()
    before = wrapper.pool.stats()
    response = Client().get("/release/mixed/")
    assert response.status_code == 200
    assert response.json() == {"before": 0, "inside": 2, "after": 2}
    assert not lent(wrapper)
    close_old_connections()  # the request's end (the test client skips it)
    after = wrapper.pool.stats()
    assert after["django_requests"] - before["django_requests"] == 1
    assert after["request_borrows"] - before["request_borrows"] == 3


def test_atomic_requests_hold_one_transaction_for_the_request(per_transaction, monkeypatch):
    wrapper = per_transaction
    monkeypatch.setitem(wrapper.settings_dict, "ATOMIC_REQUESTS", True)
    close_old_connections()
    before = wrapper.pool.stats()["request_borrows"]
    response = Client().get("/items/")
    assert response.status_code == 200
    assert response.json()["count"] == 1
    close_old_connections()
    assert wrapper.pool.stats()["request_borrows"] - before == 1
    assert Item.objects.filter(name="from-view").count() == 1


def test_threads_sharing_two_connections_see_only_their_own_session(per_transaction):
    errors = []

    def work(me: str) -> None:
        wrapper = connections["default"]
        try:
            for round_ in range(5):
                Item.objects.create(name=f"{me}-auto-{round_}")
                with transaction.atomic():
                    pid = fetch(wrapper, "SELECT pg_backend_pid()")
                    fetch(wrapper, "SELECT set_config('django_pool.who', %s, true)", [me])
                    Item.objects.create(name=f"{me}-tx-{round_}")
                    mine = Item.objects.filter(name__startswith=f"{me}-").count()
                    assert mine == 2 * round_ + 2, mine
                    assert fetch(wrapper, "SELECT current_setting('django_pool.who')") == me
                    assert fetch(wrapper, "SELECT pg_backend_pid()") == pid
                with django_pool.hold():
                    fetch(wrapper, "SELECT set_config('django_pool.who', %s, false)", [me])
                    Item.objects.count()
                    assert fetch(wrapper, "SELECT current_setting('django_pool.who')") == me
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            wrapper.close()

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Item.objects.count() == 8 * 5 * 2
    stats = per_transaction.pool.stats()
    assert stats["pool_size"] <= 2
    assert stats["pool_in_use"] == 0


def test_an_async_view_awaiting_between_queries_holds_nothing_meanwhile(per_transaction):
    pool = per_transaction.pool

    async def request_and_look() -> tuple[dict, int]:
        response = asyncio.ensure_future(AsyncClient().get("/async/await/?seconds=0.3"))
        await asyncio.sleep(0.15)  # the view awaits its slow call
        in_use = pool.in_use()
        return (await response).json(), in_use

    body, in_use_while_awaiting = asyncio.run(request_and_look())
    assert body == {"before": 0, "after": 0}
    assert in_use_while_awaiting == 0
    assert pool.stats()["requests_num"] == 2
