from django.urls import path

from tests.panels import views

urlpatterns = [
    path("borrows/<int:count>/", views.borrows),
    path("hold/", views.hold),
    path("other/", views.other),
    path("leave-transaction/", views.leave_transaction),
    path("leak/", views.leak_in_thread),
    path("set-time-zone/", views.set_time_zone),
    path("async/<int:count>/", views.async_borrows),
]
