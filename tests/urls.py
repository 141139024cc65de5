from django.urls import include, path

from tests import views

urlpatterns = [
    path("items/", views.items),
    path("leave-transaction/", views.leave_transaction),
    path("session/", views.session_state),
    path("atomic/", views.atomic_request),
    path("set-time-zone/", views.set_time_zone),
    path("time-zone/", views.time_zone),
    path("pool/", include("django_pool.urls")),
]
