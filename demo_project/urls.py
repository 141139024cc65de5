from django.contrib import admin
from django.urls import include, path

from demo_project.shop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("pool/", include("django_pool.urls")),
]
