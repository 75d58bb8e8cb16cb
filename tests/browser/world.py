"""A small populated network for the view tests: an admin, friends, a post with an image and
comments, notifications, an open report, an API key."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tests.browser.conftest import LiveServer, Person, api_login, register_by_api
from tests.browser.pages import photo
from tests.helpers import API


@dataclass
class World:
    admin: Person
    friend: Person
    post_id: str
    friend_id: str


def populate(server: LiveServer, directory: Path) -> World:
    admin, friend, stranger = (register_by_api(server, name) for name in ("ada", "bob", "cyd"))
    database = str(server.settings.database_url).removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE users SET role = 'admin' WHERE username = 'ada'")
    ada, bob, cyd = (api_login(server, person) for person in (admin, friend, stranger))
    with server.api() as http:
        bob_id = http.get(f"{API}/users/me", headers=bob).json()["id"]
        request = http.post(f"{API}/friend-requests", json={"receiver_id": bob_id}, headers=ada).json()
        http.patch(f"{API}/friend-requests/{request['id']}", json={"action": "accept"}, headers=bob)
        cyd_id = http.get(f"{API}/users/me", headers=cyd).json()["id"]
        http.post(
            f"{API}/friend-requests",
            json={"receiver_id": http.get(f"{API}/users/me", headers=ada).json()["id"]},
            headers=cyd,
        )
        image = photo(directory)
        with image.open("rb") as handle:
            media = http.post(
                f"{API}/media", files={"file": ("picnic.png", handle, "image/png")}, headers=bob
            ).json()
        post = http.post(
            f"{API}/posts",
            json={"content": "A picnic by the river, with far too much cake.", "media_ids": [media["id"]]},
            headers=bob,
        ).json()
        morning = {"content": "Good morning, friends!", "visibility": "public"}
        mine = http.post(f"{API}/posts", json=morning, headers=ada).json()
        http.post(f"{API}/posts/{mine['id']}/like", headers=bob)
        http.post(f"{API}/posts/{mine['id']}/comments", json={"content": "Morning, Ada!"}, headers=bob)
        http.post(f"{API}/posts/{post['id']}/like", headers=ada)
        http.post(f"{API}/posts/{post['id']}/comments", json={"content": "Save me a slice!"}, headers=ada)
        http.post(f"{API}/posts/{post['id']}/comments", json={"content": "Too late."}, headers=bob)
        http.post(
            f"{API}/reports",
            json={"target_type": "user", "target_id": cyd_id, "reason": "Spam links"},
            headers=bob,
        )
        http.post(f"{API}/users/me/api-keys", json={"name": "backup script", "scopes": ["read"]}, headers=ada)
    return World(admin=admin, friend=friend, post_id=post["id"], friend_id=bob_id)
