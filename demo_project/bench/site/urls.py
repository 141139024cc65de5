from django.urls import path

from demo_project.bench.site import views

urlpatterns = [
    path("db", views.db),
    path("external_call", views.external_call),
    path("nodb", views.nodb),
    path("pool", views.pool),
]
