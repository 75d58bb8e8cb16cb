"""toot, the Mastodon command line client (0.52, a locked dev dependency), against a live Kith
(docs/mastodon.md#toot).

The installed `toot` runs as a subprocess against the app served on a real socket, with its own
home and configuration directory. Ada signs in the way toot asks its users to, with `toot login`
and the authorization page (answered over HTTP, as a browser would); Bob's configuration is
written from a token he got through the same OAuth flow. Then toot posts, reads the home
timeline, follows, answers the friend request, likes, and reads the notifications and the
followers and following lists, and the test reads what toot prints.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import API, PASSWORD
from tests.integration.test_mastodon_oauth import register_app, user_token
from tests.live import serve

TOOT = (sys.executable, "-m", "toot")
# What toot registers with and asks for (toot.api.SCOPES), and the name it registers.
TOOT_SCOPES = "read write follow"
TOOT_NAME = "toot - a Mastodon CLI client"
# `instance.uri` of the test settings' public URL, which toot keys its configuration by.
INSTANCE = "kith.example"
TIMEOUT = 60


def toot_env(home: Path) -> dict[str, str]:
    """An environment of toot's own: its home and configuration under `home`, nothing else
    of the test runner's but the path and the language."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "COLUMNS": "100",
    }


async def toot(home: Path, *args: str) -> str:
    """Run toot with `args` as the user whose home is `home`; what it printed."""
    process = await asyncio.create_subprocess_exec(
        *TOOT,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=toot_env(home),
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0, (args, out.decode(), err.decode())
    return out.decode()


def toot_config(home: Path) -> dict[str, object]:
    path = home / "config" / "toot" / "config.json"
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


async def approve(base: str, url: str, login: str) -> str:
    """The authorization page at `url`, answered as a browser would: the code it shows."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        page = await http.get(url)
        assert page.status_code == 200, page.text
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text
            )
        }
        # The CSRF cookie is `Secure` under the test settings' https public URL, so httpx
        # keeps it from this http socket: sent as a browser at that URL would send it.
        csrf = page.cookies["kith_oauth_csrf"]
        http.cookies.clear()
        answer = await http.post(
            f"{base}/oauth/authorize",
            data={**fields, "login": login, "password": PASSWORD, "decision": "approve"},
            headers={"Origin": base, "Cookie": f"kith_oauth_csrf={csrf}"},
        )
    found = re.search(r'<input id="code" readonly value="([^"]+)">', answer.text)
    assert answer.status_code == 200 and found, answer.text
    return found.group(1)


async def toot_login(base: str, home: Path, login: str) -> str:
    """`toot login --instance <base>`, its questions answered on its standard input: what it
    printed."""
    process = await asyncio.create_subprocess_exec(
        *TOOT,
        "login",
        "--instance",
        base,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=toot_env(home),
    )
    assert process.stdout is not None
    printed: list[str] = []
    while not printed or not printed[-1].startswith(base):
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        assert line, "".join(printed)
        printed.append(line)
    code = await approve(base, printed[-1].strip(), login)
    # "Open link in default browser?" no; then the code.
    out, _ = await asyncio.wait_for(process.communicate(f"n\n{code}\n".encode()), TIMEOUT)
    printed.append(out.decode())
    assert process.returncode == 0, "".join(printed)
    return "".join(printed)


def write_config(
    home: Path, base: str, client_id: str, client_secret: str, username: str, token: str
) -> None:
    """toot's configuration file with one app and one signed-in, active user (toot.config)."""
    user = f"{username}@{INSTANCE}"
    config = {
        "apps": {
            INSTANCE: {
                "instance": INSTANCE,
                "base_url": base,
                "client_id": client_id,
                "client_secret": client_secret,
            }
        },
        "users": {user: {"instance": INSTANCE, "username": username, "access_token": token}},
        "active_user": user,
    }
    directory = home / "config" / "toot"
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")


async def test_toot_signs_in_posts_reads_its_timeline_and_notifications(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, tmp_path: Path
) -> None:
    ada, _bob = await posting.members(resources, "ada", "bob")
    ada_home, bob_home = tmp_path / "ada", tmp_path / "bob"
    async with serve(app) as base:
        # Ada: `toot login`, toot's own way in. It registers itself, sends her to the page,
        # trades the code, and keeps the token.
        printed = await toot_login(base, ada_home, "ada")
        assert f"{base}/oauth/authorize/?" in printed
        assert "✓ Successfully logged in." in printed
        config = toot_config(ada_home)
        assert config["active_user"] == f"ada@{INSTANCE}"
        users = config["users"]
        assert isinstance(users, dict)
        assert users[f"ada@{INSTANCE}"]["access_token"].startswith("kith_at_")
        apps = (await client.get(f"{API}/users/me/authorizations", headers=ada.headers)).json()
        assert [item["app"]["name"] for item in apps["items"]] == [TOOT_NAME]
        whoami = await toot(ada_home, "whoami")
        assert "@ada Ada" in whoami and "Followers: 0" in whoami

        # Bob: a token through the OAuth flow, and toot's configuration written for it.
        oauth_app = await register_app(client, scopes=TOOT_SCOPES)
        token = await user_token(client, oauth_app, scope=TOOT_SCOPES, login="bob")
        write_config(bob_home, base, oauth_app.client_id, oauth_app.client_secret, "bob", token)

        # Ada posts; her home timeline shows it.
        posted = await toot(ada_home, "post", "Hello from toot, on Kith")
        found = re.search(rf"Toot posted: https://{INSTANCE}/posts/([0-9a-f-]+)", posted)
        assert found, posted
        post = await posting.get_post(client, ada, found.group(1))
        assert post["content"] == "Hello from toot, on Kith" and post["visibility"] == "friends"
        home = await toot(ada_home, "timelines", "home", "--no-pager", "--no-clear")
        assert "Ada @ada" in home and "Hello from toot, on Kith" in home
        status_id = re.search(r"ID (\d+)\s+Visibility: private", home)
        assert status_id, home

        # Not friends yet: Bob's home timeline lacks it. He follows (asks to be friends).
        assert "Hello from toot" not in await toot(bob_home, "timelines", "home", "--no-pager", "--no-clear")
        assert "You are now following ada" in await toot(bob_home, "follow", "ada")
        assert "Bob @bob requested to follow you" in await toot(ada_home, "notifications")
        assert "* @bob Bob" in await toot(ada_home, "follow-requests", "list")
        assert "bob is now following you" in await toot(ada_home, "follow-requests", "accept", "bob")

        # Friends: Bob reads Ada's post in his home timeline and likes it; Ada is told.
        bobs_home = await toot(bob_home, "timelines", "home", "--no-pager", "--no-clear")
        assert "Hello from toot, on Kith" in bobs_home
        assert "Status favourited" in await toot(bob_home, "favourite", status_id.group(1))
        notifications = await toot(ada_home, "notifications")
        assert "Bob @bob favourited your status" in notifications
        assert notifications.index("favourited your status") < notifications.index("Hello from toot, on Kith")
        favourites = await toot(ada_home, "notifications", "--type", "favourite")
        assert "favourited your status" in favourites and "requested to follow you" not in favourites

        # Followers and following: each is the other's friend.
        assert (await toot(ada_home, "followers")).strip() == "* @bob Bob"
        assert (await toot(ada_home, "following")).strip() == "* @bob Bob"
        assert (await toot(bob_home, "following", "ada")).strip() == "* @bob Bob"
        assert (await toot(ada_home, "followers", "bob")).strip() == "* @ada Ada"
