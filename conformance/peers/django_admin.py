"""The Django admin (PyPI Django), a real packaged app with a form login, CSRF and absolute
links, for the login proxy's tests (tests/bridge.rs):

    python django_admin.py DIR PORT        (SQLite in DIR; binds 127.0.0.1 only)

Accounts: alice / dj-alice-pw (superuser), bob / dj-bob-pw (staff). Its login flow:
GET /admin/login/ (csrftoken cookie, hidden csrfmiddlewaretoken) -> POST username, password,
csrfmiddlewaretoken, next -> 302 /admin/ and a sessionid cookie; a wrong password gives the
form again (200).
"""
import os
import secrets
import sys

import django
from django.conf import settings

DIR, PORT = sys.argv[1], sys.argv[2]

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_hex(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
    ],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]},
    }],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": os.path.join(DIR, "db.sqlite3")}},
    STATIC_URL="/static/",
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    SESSION_COOKIE_HTTPONLY=True,
)
django.setup()

from django.contrib import admin  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("admin/", admin.site.urls)]

if __name__ == "__main__":
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for name in ("alice", "bob"):
        if not User.objects.filter(username=name).exists():
            User.objects.create_user(name, f"{name}@example.org", f"dj-{name}-pw",
                                     is_staff=True, is_superuser=(name == "alice"))
    call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False, use_threading=True,
                 skip_checks=True)
