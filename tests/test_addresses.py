"""Back to the page asked for after signing in (``kb.service.after_sign_in``), and the home page by its name
(``kb.service.home_address``): what is kept and where a visit is sent.

The whole way through a real provider and browser is in ``tests/test_browser_sign_in.py``."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kb.navigation import HOME_NAME
from kb.service.after_sign_in import COOKIE, ReturnAfterSignIn, destination
from kb.service.home_address import HomeByItsName


async def login(request):
    return RedirectResponse("https://provider.example/authorize", status_code=302)


async def callback(request):
    return RedirectResponse("/", status_code=302)


async def home(request):
    return PlainTextResponse("home")


@pytest.fixture
def client():
    app = Starlette(routes=[Route("/auth/login", login), Route("/oauth2callback", callback), Route("/", home)])
    with TestClient(ReturnAfterSignIn(app), base_url="http://sla.example", follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize(("referer", "kept"), [
    ("http://sla.example/queue?case=CS-00042", "/queue?case=CS-00042"),
    ("https://sla.example/performance", "/performance"),
    ("http://sla.example/", None),  # home: nothing to return to
    ("http://evil.example/queue", None),  # another host
    ("http://sla.example//evil.example/x", None),  # a path a browser reads as a host
    ("http://sla.example/a\\b", None),
    ("http://sla.example/auth/login?provider=x", None),
    ("not a url", None),
    ("http://sla.example/" + "x" * 3000, None),
    ("http://sla.example/queue?case=caf\u00e9", "/queue?case=caf%C3%A9"),  # sent in ASCII
    ("http://sla.example/" + "\u00e9" * 400, None),  # short, but too long once encoded
])
def test_only_a_page_of_this_server_is_kept(referer, kept):
    assert destination(referer, "sla.example") == kept


def test_the_page_a_sign_in_began_on_is_where_it_ends(client):
    started = client.get("/auth/login?provider=t", headers={"Referer": "http://sla.example/queue?case=CS-00042"})
    assert started.status_code == 302 and started.headers["location"] == "https://provider.example/authorize"
    assert client.cookies.get(COOKIE)
    ended = client.get("/oauth2callback?code=c&state=s")
    assert ended.status_code == 302 and ended.headers["location"] == "/queue?case=CS-00042"
    assert COOKIE not in client.cookies  # used once
    assert client.get("/oauth2callback?code=c&state=s").headers["location"] == "/"


def test_a_sign_in_begun_at_home_or_elsewhere_ends_at_home(client):
    client.get("/auth/login?provider=t", headers={"Referer": "http://evil.example/queue"})
    assert COOKIE not in client.cookies
    assert client.get("/oauth2callback").headers["location"] == "/"


def test_a_sign_in_begun_at_home_drops_what_an_abandoned_one_kept(client):
    client.get("/auth/login?provider=t", headers={"Referer": "http://sla.example/audit"})
    assert client.cookies.get(COOKIE)
    client.get("/auth/login?provider=t", headers={"Referer": "http://sla.example/"})  # begun again, at home
    assert COOKIE not in client.cookies
    assert client.get("/oauth2callback").headers["location"] == "/"


def test_another_cookie_the_browser_holds_does_not_hide_the_kept_page(client):
    client.get("/auth/login?provider=t", headers={"Referer": "http://sla.example/queue?case=CS-00042"})
    ended = client.get("/oauth2callback", headers={
        "Cookie": f'{COOKIE}={client.cookies.get(COOKIE)}; pref=a b; x="{{'})  # not what SimpleCookie reads
    assert ended.headers["location"] == "/queue?case=CS-00042"


@pytest.mark.parametrize("cookie", ["%2F%2Fevil.example", "https%3A%2F%2Fevil.example%2F", "%2Fa%5Cb", "queue"])
def test_a_cookie_changed_in_the_browser_sends_nobody_elsewhere(client, cookie):
    client.cookies.set(COOKIE, cookie)
    assert client.get("/oauth2callback").headers["location"] == "/"


@pytest.mark.parametrize(("asked", "sent_to"), [
    ("/overview", "/"), ("/overview/", "/"), ("/overview?month=2026-11", "/?month=2026-11"),
    ("/sla/overview", "/sla/"),  # under a base path
])
def test_the_home_page_by_its_name_is_sent_home(asked, sent_to):
    app = Starlette(routes=[Route("/", home), Route("/api/v1/export/overview", home)])
    with TestClient(HomeByItsName(app, name=HOME_NAME), follow_redirects=False) as client:
        answer = client.get(asked)
        assert answer.status_code == 302 and answer.headers["location"] == sent_to
        assert client.get("/api/v1/export/overview").status_code == 200  # not the API's
        assert client.get("/").text == "home"
