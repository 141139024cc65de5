from django.urls import include, path

from tests import views

urlpatterns = [
    path("items/", views.items),
    path("leave-transaction/", views.leave_transaction),
    path("session/", views.session_state),
    path("atomic/", views.atomic_request),
    path("set-time-zone/", views.set_time_zone),
    path("time-zone/", views.time_zone),
    path("async/count/", views.async_count),
    path("async/items/<int:pk>/", views.async_item),
    path("async/create/", views.async_create),
    path("async/await/", views.async_await_between_queries),
    path("async/executor/", views.async_in_executor_thread),
    path("pool-stats/", views.pool_stats),
    path("pool/", include("django_pool.urls")),
]
