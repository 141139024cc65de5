from debug_toolbar.toolbar import debug_toolbar_urls
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from demo_project.leaderboard import views as leaderboard
from demo_project.shop import views
from demo_project.tenants.views import tenant

urlpatterns = [
    path("", views.home, name="home"),
    path("shop/orders/", views.create_order, name="create-order"),
    path("leaderboard/", leaderboard.leaderboard, name="leaderboard"),
    path("leaderboard/scores/", leaderboard.submit_score, name="submit-score"),
    path("tenants/<str:name>/", tenant, name="tenant"),
    path("mistakes/slow-call/", views.slow_call, name="slow-call"),
    path("admin/", admin.site.urls),
    path("pool/", include("django_pool.urls")),
    *debug_toolbar_urls(),
    # The admin's and the toolbar's files under gunicorn and uvicorn too (DEBUG only).
    *staticfiles_urlpatterns(),
]
