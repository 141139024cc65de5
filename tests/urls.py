from django.contrib import admin
from django.urls import include, path

from demo_project.leaderboard import views as leaderboard
from demo_project.shop import views as shop
from demo_project.tenants.views import tenant
from django_pool.admin import PoolStatusAdmin
from django_pool.models import PoolStatus
from tests import views

# A second admin site at another prefix: the dashboard must not assume the default one.
ops_site = admin.AdminSite(name="ops")
ops_site.register(PoolStatus, PoolStatusAdmin)

urlpatterns = [
    path("items/", views.items),
    path("leave-transaction/", views.leave_transaction),
    path("session/", views.session_state),
    path("atomic/", views.atomic_request),
    path("release/mixed/", views.mixed),
    path("set-time-zone/", views.set_time_zone),
    path("time-zone/", views.time_zone),
    path("async/count/", views.async_count),
    path("async/items/<int:pk>/", views.async_item),
    path("async/create/", views.async_create),
    path("async/await/", views.async_await_between_queries),
    path("async/executor/", views.async_in_executor_thread),
    path("pool-stats/", views.pool_stats),
    path("pool/", include("django_pool.urls")),
    path("admin/", admin.site.urls),
    path("ops/", ops_site.urls),
    path("panel/", include("tests.panels.urls")),
    path("__debug__/", include("debug_toolbar.urls")),
    # The demo site's views, for tests/test_demo.py.
    path("demo/", shop.home, name="home"),
    path("demo/shop/orders/", shop.create_order),
    path("demo/leaderboard/", leaderboard.leaderboard, name="leaderboard"),
    path("demo/mistakes/slow-call/", shop.slow_call, name="slow-call"),
    path("demo/tenants/<str:name>/", tenant, name="tenant"),
    path("demo/leaderboard/scores/", leaderboard.submit_score),
]
