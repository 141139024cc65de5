"""Placing an order: check and decrement stock, record the lines, in one transaction."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from .models import Order, OrderLine, Product


class OrderError(Exception):
    """The order cannot be placed as asked; the message says why."""


class OutOfStock(OrderError):
    """An item asks for more than is in stock; nothing was ordered."""


def place_order(customer: str, items: dict[int, int]) -> Order:
    """Order ``items`` (product id → quantity) for ``customer``, or raise and order nothing.

    The products are locked in id order (``SELECT ... FOR UPDATE``), so that concurrent
    orders queue on the rows they share instead of deadlocking, and a sale never takes stock
    that another order took first: stock never goes below zero, and no update is lost.
    """
    if not items:
        raise OrderError("An order needs at least one item.")
    if any(quantity < 1 for quantity in items.values()):
        raise OrderError("Each quantity must be at least 1.")
    with transaction.atomic():
        products = {
            product.pk: product
            for product in Product.objects.select_for_update().filter(pk__in=items).order_by("pk")
        }
        missing = sorted(set(items) - set(products))
        if missing:
            raise OrderError(f"No such product: {', '.join(map(str, missing))}.")
        short = [
            f"{products[pk].name}: {quantity} asked, {products[pk].stock} in stock"
            for pk, quantity in sorted(items.items())
            if quantity > products[pk].stock
        ]
        if short:
            raise OutOfStock("Not enough in stock. " + "; ".join(short) + ".")
        total = sum((products[pk].price * quantity for pk, quantity in items.items()), Decimal(0))
        order = Order.objects.create(customer=customer, total=total)
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order, product=products[pk], quantity=quantity, price=products[pk].price
            )
            for pk, quantity in sorted(items.items())
        )
        for pk, quantity in items.items():
            Product.objects.filter(pk=pk).update(stock=F("stock") - quantity)
    return order


def parse_items(raw: object) -> dict[int, int]:
    """Turn ``[{"product": id, "quantity": n}, ...]`` into {id: n}; raise OrderError if bad."""
    if not isinstance(raw, list):
        raise OrderError('"items" must be a list of {"product": id, "quantity": n}.')
    items: Counter[int] = Counter()
    for item in raw:
        if not isinstance(item, dict):
            raise OrderError('Each item must be {"product": id, "quantity": n}.')
        product, quantity = item.get("product"), item.get("quantity", 1)
        if not isinstance(product, int) or isinstance(product, bool):
            raise OrderError('Each item needs "product": the id of a product (a number).')
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise OrderError('"quantity" must be a whole number.')
        items[product] += quantity
    return dict(items)
