"""The app steps aside for a job on the embedded store, as an investigator sees it in
Chromium: ``ringscope serve`` in its own process holds the DuckDB file; this process takes
the file the way ``ringscope job`` does (``SharedFile``: it asks the app to step aside, then
holds the file). A decision sent meanwhile is refused and said not to be recorded; a page
says the app is away and tries again by itself; once the file is given back, that page comes
back to the queue without a click, and the decision sent again is recorded once."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.market import Market

from ringscope.api.auth import add_user
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.sharing import SharedFile

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_investigator_sees_the_app_step_aside_for_a_job_and_come_back(
    browser: Any, app_market: Market, tmp_path: Path
) -> None:
    store = tmp_path / "served.duckdb"
    shutil.copy(app_market.store_path, store)
    with EmbeddedStore(store) as held:
        before: dict[str, list[str]] = {}
        for d in held.decisions():
            before.setdefault(d.finding_id, []).append(d.note)
    users = tmp_path / "users.json"
    key = add_user(users, "ana", "investigator")
    env = {**os.environ, "RINGSCOPE_USERS_FILE": str(users), "RINGSCOPE_WORK_DIR": str(tmp_path)}
    env.pop("RINGSCOPE_STORE", None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ringscope.cli", "serve", "--store", str(store),
             "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    bearer = {"Authorization": f"Bearer {key}"}
    job: SharedFile | None = None
    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 1000})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the app did not start"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        top = httpx.get(url + "/api/findings", headers=bearer, timeout=30).json()["items"][0]
        fid, case = top["id"], top.get("case_id") or top["id"]
        before.setdefault(case, [])

        page = context.new_page()
        page.goto(f"/login#key={key}")
        page.wait_for_url(url + "/")
        page.goto(f"/findings/{fid}")
        page.check("input[name=decision][value=confirmed]")
        page.fill("textarea[name=note]", "sent while the job ran")

        # the job takes the store: the app closes the file and answers 503 meanwhile
        job = SharedFile(str(store), what="ringscope job", wait_s=60)
        job.open()
        assert job.asked, "the app did not hold the file"

        page.click("#decision-form button[type=submit]")
        page.wait_for_selector("#resend")
        assert "was not recorded" in page.locator("#resend").inner_text()
        assert "nightly job is writing to the store" in page.locator("#away").inner_text()

        page.goto("/")
        page.wait_for_selector("#away")
        assert page.locator("meta[http-equiv=refresh]").count() == 1
        assert page.locator("#queue").count() == 0

        job.close()  # the job ends: the page comes back by itself (no click, no goto)
        job = None
        page.wait_for_selector("#queue tbody tr.finding", timeout=60_000)

        page.goto(f"/findings/{fid}")
        page.check("input[name=decision][value=confirmed]")
        page.fill("textarea[name=note]", "sent again once the app was back")
        page.click("#decision-form button[type=submit]")
        page.wait_for_url(f"**/findings/{fid}#decisions")
        history = page.locator("#decision-history tbody").inner_text()
        assert "sent again once the app was back" in history
        assert "sent while the job ran" not in history
    finally:
        context.close()
        if job is not None:
            job.close()
        proc.terminate()
        proc.wait(timeout=30)
    assert "stepping aside for ringscope job" in log.read_text()
    with EmbeddedStore(store) as kept:
        notes = [d.note for d in kept.decisions(case)]
    assert notes == [*before[case], "sent again once the app was back"]
