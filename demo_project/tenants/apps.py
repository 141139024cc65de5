from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "demo_project.tenants"
    label = "tenants"
