"""Settings of the demo site: a small shop-like app on the pooled ENGINE."""

from pathlib import Path

from demo_project.devdb import database_settings, scratch_database

BASE_DIR = Path(__file__).resolve().parent.parent

# A demo running on 127.0.0.1 only; never use this key or DEBUG in production.
SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pool",
    "demo_project.shop",
    "demo_project.leaderboard",
    "demo_project.tenants",
    "debug_toolbar",
]

MIDDLEWARE = [
    "django_pool.middleware.PoolOverloadMiddleware",
    "debug_toolbar.middleware.DebugToolbarMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The debug toolbar, for requests from this machine (DEBUG is on), with the pool's panel.
INTERNAL_IPS = ["127.0.0.1"]
DEBUG_TOOLBAR_PANELS = [
    "debug_toolbar.panels.history.HistoryPanel",
    "debug_toolbar.panels.versions.VersionsPanel",
    "debug_toolbar.panels.timer.TimerPanel",
    "debug_toolbar.panels.settings.SettingsPanel",
    "debug_toolbar.panels.headers.HeadersPanel",
    "debug_toolbar.panels.request.RequestPanel",
    "debug_toolbar.panels.sql.SQLPanel",
    "django_pool.panels.PoolPanel",
    "debug_toolbar.panels.templates.TemplatesPanel",
    "debug_toolbar.panels.cache.CachePanel",
    "debug_toolbar.panels.signals.SignalsPanel",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_settings(
        "django_pool_demo",
        OPTIONS={"pool": {"min_size": 2, "max_size": 10, "timeout": 10.0}},
    ),
    # Two tenants, each in its own database with a pool of its own: a small tier and a large
    # one, side by side on the dashboard. (Under DATABASE_URL, databases beside its own.)
    "tenant_small": {
        **scratch_database("django_pool_demo_small"),
        "OPTIONS": {"pool": {"min_size": 0, "max_size": 2, "timeout": 10.0}},
    },
    "tenant_large": {
        **scratch_database("django_pool_demo_large"),
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 8, "timeout": 10.0}},
    },
}
DATABASE_ROUTERS = ["demo_project.tenants.routers.TenantRouter"]
# Tenant name in the URL -> its database alias.
DEMO_TENANTS = {"small": "tenant_small", "large": "tenant_large"}

# Every process of the demo (runserver's, a gunicorn's workers, manage.py pool_status)
# publishes its pools to one file cache, so the admin dashboard shows all of them. A file
# cache rather than a database one: publishing must not borrow from the pool it reports on.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "pools": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": BASE_DIR / ".local" / "pool-cache",
    },
}
DJANGO_POOL = {"CACHE": "pools"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
