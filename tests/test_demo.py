"""The demo site's shop and leaderboard: orders under concurrent requests, scores under ASGI."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from demo_project.leaderboard.models import Player, Score
from demo_project.shop.models import Order, OrderLine, Product
from demo_project.tenants.models import Visit
from tests.test_asgi import asgi_server, assert_clean_log, fetch  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])


def post(url: str, body: object) -> tuple[int, dict]:
    """POST ``body`` as JSON; return the status and the decoded JSON answer."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def products():
    Product.objects.all().delete()
    return (
        Product.objects.create(name="Kettle", price=Decimal("39.00"), stock=10),
        Product.objects.create(name="Filters", price=Decimal("4.20"), stock=1000),
    )


def test_the_shop_page_lists_products_and_links_the_demo(client, products):
    response = client.get("/demo/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Kettle" in page and "1010 items in stock" in page
    assert 'href="/demo/leaderboard/"' in page and 'href="/demo/mistakes/slow-call/"' in page
    assert 'href="/demo/tenants/small/"' in page and 'href="/demo/tenants/large/"' in page


def test_an_order_takes_its_lines_and_stock_in_one_go(client, products):
    kettle, filters = products
    items = [{"product": kettle.pk, "quantity": 2}, {"product": filters.pk, "quantity": 3}]
    response = client.post(
        "/demo/shop/orders/", {"customer": "ada", "items": items}, content_type="application/json"
    )
    assert response.status_code == 201
    order = Order.objects.get(pk=response.json()["order"])
    assert order.total == Decimal("90.60") and response.json()["total"] == "90.60"
    assert sorted(order.lines.values_list("product__name", "quantity", "price")) == [
        ("Filters", 3, Decimal("4.20")),
        ("Kettle", 2, Decimal("39.00")),
    ]
    kettle.refresh_from_db(), filters.refresh_from_db()
    assert (kettle.stock, filters.stock) == (8, 997)


def test_an_order_that_would_oversell_orders_nothing(client, products):
    kettle, filters = products
    items = [{"product": filters.pk, "quantity": 1}, {"product": kettle.pk, "quantity": 11}]
    response = client.post("/demo/shop/orders/", {"items": items}, content_type="application/json")
    assert response.status_code == 409
    assert response.json()["error"] == "Not enough in stock. Kettle: 11 asked, 10 in stock."
    assert not Order.objects.exists() and not OrderLine.objects.exists()
    assert list(Product.objects.order_by("pk").values_list("stock", flat=True)) == [10, 1000]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "The body is not JSON"),
        ({"items": []}, "An order needs at least one item."),
        ({"items": "kettle"}, '"items" must be a list'),
        ({"items": [{"product": "kettle"}]}, 'Each item needs "product"'),
        ({"items": [{"product": 1, "quantity": 0}]}, "Each quantity must be at least 1."),
        ({"items": [{"product": 999999, "quantity": 1}]}, "No such product: 999999."),
    ],
)
def test_a_bad_order_is_a_400_that_says_why(client, products, body, message):
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/demo/shop/orders/", data, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_orders_by_concurrent_requests_never_oversell(live_server, products):
    kettle, filters = products  # 10 kettles; 16 buyers want one each, with 2 filters
    items = [{"product": kettle.pk, "quantity": 1}, {"product": filters.pk, "quantity": 2}]

    def buy(number: int) -> tuple[int, dict]:
        body = {"customer": f"c{number}", "items": items}
        return post(live_server.url + "/demo/shop/orders/", body)

    # 8 at a time: within the test server's listen backlog, and enough to contend for the rows.
    with ThreadPoolExecutor(8) as buyers:
        results = list(buyers.map(buy, range(16)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 10 + [409] * 6, results
    kettle.refresh_from_db(), filters.refresh_from_db()
    assert (kettle.stock, filters.stock) == (0, 1000 - 2 * 10)
    assert Order.objects.count() == 10
    assert {order.total for order in Order.objects.all()} == {Decimal("47.40")}
    sold = sum(line.quantity for line in OrderLine.objects.filter(product=kettle))
    assert sold == 10


def test_leaderboard_under_asgi_takes_concurrent_scores(asgi_server):  # noqa: F811
    submissions = [(f"player{n % 5}", n * 10) for n in range(60)]

    def submit(entry: tuple[str, int]) -> tuple[int, dict]:
        name, points = entry
        return post(
            asgi_server.url + "/demo/leaderboard/scores/", {"player": name, "points": points}
        )

    with ThreadPoolExecutor(16) as clients:
        results = list(clients.map(submit, submissions))
    assert [status for status, _ in results] == [201] * 60
    assert Score.objects.count() == 60 and Player.objects.count() == 5
    status, body = fetch(asgi_server.url + "/demo/leaderboard/?format=json")
    assert status == 200
    best = {
        name: max(points for who, points in submissions if who == name) for name, _ in submissions
    }
    expected = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    assert [(row["player"], row["best"]) for row in json.loads(body)["top"]] == expected
    status, page = fetch(asgi_server.url + "/demo/leaderboard/")
    assert status == 200 and "player4" in page and "60 scores submitted" in page
    # Also for a signed-in user, whose session the page's context reads.
    client = Client()
    client.force_login(User.objects.create_superuser("ada", password="pw"))
    request = urllib.request.Request(
        asgi_server.url + "/demo/leaderboard/",
        headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and "player4" in response.read().decode()
    assert_clean_log(asgi_server)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"player": "", "points": 1}, '"player" must be a name'),
        ({"player": "ada", "points": -1}, '"points" must be a whole number'),
        ({"player": "ada", "points": "10"}, '"points" must be a whole number'),
    ],
)
def test_a_bad_score_is_a_400_that_says_why(client, body, message):
    response = client.post("/demo/leaderboard/scores/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_each_tenant_has_its_own_database_and_pool(live_server, server):
    def visit(name: str) -> tuple[int, str]:
        return fetch(f"{live_server.url}/demo/tenants/{name}/")

    status, page = visit("small")
    assert status == 200 and "<code>other</code>" in page
    assert re.search(r"<td class=\"num\">[0-2] / 2</td>", page)  # open / max_size of "other"
    with ThreadPoolExecutor(8) as clients:
        results = list(clients.map(visit, ["small"] * 12 + ["large"] * 12))
    assert [status for status, _ in results] == [200] * 24
    assert Visit.objects.using("other").count() == 13
    assert Visit.objects.using("default").count() == 12
    small, large = connections["other"].pool, connections["default"].pool
    assert small is not large
    assert (small.config.max_size, large.config.max_size) == (2, 4)
    # The small tier never had more than its 2 connections open, whatever the load.
    assert small.stats()["connections_num"] <= 2
    assert visit("nobody")[0] == 404


def test_the_admin_lists_each_tenants_visits_from_its_own_database(admin_client):
    Visit.objects.using("other").create(path="/small-only/")
    Visit.objects.using("default").create(path="/large-only/")
    small = admin_client.get("/admin/tenants/visit/").content.decode()  # the first tenant
    assert "/small-only/" in small and "/large-only/" not in small
    large = admin_client.get("/admin/tenants/visit/?tenant=large").content.decode()
    assert "/large-only/" in large and "/small-only/" not in large
