"""Exporting one's data from the settings (docs/export.md): the button, the progress from
the live stream, the e-mail's link back to the settings, and the download through a
single-use link."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, register_by_api
from tests.browser.pages import log_in, mail_link, photo, stream_is_live, write_post
from tests.conftest import Mailbox


def test_ask_for_an_archive_follow_it_live_and_download_it(
    browser: Browser, live_server: LiveServer, tmp_path: Path, mailbox: Mailbox
) -> None:
    ada = register_by_api(live_server, "ada")
    page = browser.new_context(base_url=live_server.url, accept_downloads=True).new_page()
    log_in(page, "ada")
    write_post(page, "Into the archive", photo(tmp_path))
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_text("You have not asked for an archive yet.")).to_be_visible()
    stream_is_live(page)
    page.get_by_role("button", name="Ask for an archive").click()
    expect(page.locator(".notice")).to_contain_text(["Your archive is being built."])
    # The page follows the export on the live stream until it is ready.
    expect(page.locator(".exports .export-status")).to_have_text("Ready")

    # The e-mail's link opens the settings with the export marked.
    link = mail_link(mailbox, ada.email, "Your Kith archive is ready")
    assert link.startswith(f"{live_server.url}/settings?export=")
    page.goto(link.removeprefix(live_server.url))
    expect(page.locator(".exports li.highlighted .export-status")).to_have_text("Ready")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download the archive").click()
    download = info.value
    assert download.suggested_filename.startswith("kith-ada-")
    saved = tmp_path / "archive.zip"
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert json.loads(archive.read("profile.json"))["username"] == "ada"
        [post] = json.loads(archive.read("posts.json"))
        assert post["content"] == "Into the archive"
        assert [name for name in archive.namelist() if name.startswith("media/")] == [
            f"media/{post['media'][0]['url'].rsplit('/', 1)[1]}"
        ]

    # One a day: asking again says when.
    page.get_by_role("button", name="Ask for an archive").click()
    expect(page.locator(".notice")).to_contain_text(["Too many attempts. Please try again in"])
