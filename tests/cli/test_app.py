"""The Gradio app in a real server process: driven by gradio_client, then by headless Chromium (Selenium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonic.io import read_video_info
from tests.conftest import speech_clip
from tests.paths import EXAMPLES, ROOT
from tests.processes import free_port

pytestmark = pytest.mark.slow  # a Gradio server and a browser

PORTRAIT = EXAMPLES / "portrait.jpg"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the app exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the app did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(url, log file) of ``sonic_demo.py --gradio`` on a free localhost port, the tiny model and fast settings."""
    log = tmp_path_factory.mktemp("app") / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    fast = ["--resolution", "64", "--steps", "1", "--no-interpolation"]
    command = [
        sys.executable,
        str(ROOT / "sonic_demo.py"),
        "--gradio",
        "--port",
        str(port),
        "--checkpoint",
        str(tiny_checkpoint),
        *fast,
    ]
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        wait_until_serving(url, server, log)
        yield url, log
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_clip(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.0)


def test_gradio_client_gets_a_video(app, speech):
    from gradio_client import Client, handle_file

    url, log = app
    assert f"Running on local URL:  {url.rstrip('/')}" in log.read_text()  # 127.0.0.1 unless --host
    client = Client(url, verbose=False)
    video = client.predict(
        handle_file(str(PORTRAIT)), handle_file(str(speech)), "intense", True, 20, 100, 7, 1, api_name="/generate"
    )
    info = read_video_info(video)
    assert info.has_audio and info.num_frames == 12 and info.fps == 12.5  # --no-interpolation: 12 frames


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver packages")
def test_browser_uploads_generates_and_plays(app, speech):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(app[0])
        wait = WebDriverWait(browser, 120)
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#portrait input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#portrait input[type=file]").send_keys(str(PORTRAIT))
        browser.find_element(By.CSS_SELECTOR, "#speech input[type=file]").send_keys(str(speech))
        wait.until(lambda page: len(page.find_elements(By.CSS_SELECTOR, "#portrait img, #speech audio")) == 2)
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        playable = "const v = document.querySelector('#result video'); return !!(v && v.src && v.readyState >= 1)"
        wait.until(lambda page: page.execute_script(playable))  # metadata decoded: the browser can play it
        width, duration, error = browser.execute_script(
            "const v = document.querySelector('#result video'); return [v.videoWidth, v.duration, v.error]"
        )
        assert width == 64 and duration == pytest.approx(12 / 12.5, abs=0.1) and error is None
    finally:
        browser.quit()


def test_a_fixed_bucket_of_zero_is_the_slider_start():
    from sonic.cli.app import bucket_default

    assert bucket_default(0) == 0 and bucket_default(127) == 127 and bucket_default(None) == 64


@pytest.mark.slow
def test_a_portrait_that_is_no_image_shows_our_message(tmp_path):
    import gradio as gr
    from gradio.data_classes import FileData

    from sonic.cli.app import portrait_input

    (tmp_path / "portrait.png").write_text("not a picture")
    with pytest.raises(gr.Error, match=r"portrait.png: not an image Sonic can read \(UnidentifiedImageError\)"):
        portrait_input().preprocess(FileData(path=str(tmp_path / "portrait.png"), orig_name="portrait.png"))
    assert portrait_input().preprocess(FileData(path=str(EXAMPLES / "portrait.jpg"))).endswith(".jpg")
