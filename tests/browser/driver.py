#!/usr/bin/env python3
"""Drives Debian's Chromium (through chromium-driver and Selenium) for the
browser tests: one JSON command a line on stdin, one JSON answer a line on
stdout, so a test keeps one browser (and its cookies) across steps.

Commands: {"get": URL}, {"fill": CSS, "value": TEXT}, {"click": CSS}
(answered once the next page has loaded),
{"text": null} (the page's visible text), {"title": null}, {"url": null},
{"attribute": CSS, "name": NAME}, {"remove": CSS} (takes an element out of
the page, as a forged form would lack it), {"cookies": null},
{"screenshot": PATH}. An answer is a line `ok LENGTH` or `error LENGTH`
followed by that many bytes of UTF-8: the value (JSON when it is not
text) or what went wrong.

Hosts in --map NAME=IP are resolved by the browser itself, so nothing
asks the system's resolver; the server's certificate is self-signed, so
certificate errors are accepted (the cookies' Secure flag still needs
HTTPS)."""

import argparse
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser(mapping):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,1000",
        # Every other name fails here, without a question to any resolver.
        "--host-resolver-rules="
        + ", ".join([f"MAP {m.replace('=', ' ')}" for m in mapping] + ["MAP * ~NOTFOUND"]),
    ):
        options.add_argument(flag)
    options.accept_insecure_certs = True
    # The driver is Debian's: Selenium must not look for one to download.
    service = Service(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def is_stale(e):
    """Whether `e` says an element's document is gone: Selenium's own
    exception, or Chromium's "does not belong to the document", which a
    loaded Chromium gives for a node of a document it is swapping out."""
    return isinstance(e, StaleElementReferenceException) or "does not belong to the document" in str(e)


def replaced(page):
    """A wait condition: the document `page` (its html element) is gone."""

    def gone(_):
        try:
            page.is_enabled()
        except WebDriverException as e:
            if is_stale(e):
                return True
            raise
        return False

    return gone


def click_once(driver, css):
    """Clicks `css` and returns the page it was clicked on. A loaded
    Chromium may hand out an element of a document it is still swapping
    in ("does not belong to the document"): that click never happened, so
    the driver waits for the new document and clicks there."""

    def attempt(d):
        page = d.find_element(By.TAG_NAME, "html")
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except WebDriverException as e:
            if is_stale(e):
                return False
            raise
        return page

    return WebDriverWait(driver, 20).until(attempt)


def run(driver, command):
    (op, arg), *rest = command.items()
    if op == "get":
        driver.get(arg)
        return driver.current_url
    if op == "fill":
        field = driver.find_element(By.CSS_SELECTOR, arg)
        field.clear()
        field.send_keys(command["value"])
        return None
    if op == "click":
        # Every click here submits a form or follows a link: the answer
        # waits for the next page, not only for the click.
        page = click_once(driver, arg)
        wait = WebDriverWait(driver, 20)
        wait.until(replaced(page))
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        return driver.current_url
    if op == "text":
        return driver.find_element(By.TAG_NAME, "body").text
    if op == "title":
        return driver.title
    if op == "url":
        return driver.current_url
    if op == "attribute":
        return driver.find_element(By.CSS_SELECTOR, arg).get_attribute(command["name"])
    if op == "remove":
        element = driver.find_element(By.CSS_SELECTOR, arg)
        driver.execute_script("arguments[0].remove()", element)
        return None
    if op == "cookies":
        return driver.get_cookies()
    if op == "screenshot":
        # The whole page, not only the window.
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1100, max(600, min(height + 40, 4000)))
        driver.save_screenshot(arg)
        driver.set_window_size(1100, 1000)
        return arg
    raise ValueError(f"unknown command {op}")


def say(kind, text):
    data = text.encode()
    sys.stdout.buffer.write(f"{kind} {len(data)}\n".encode() + data)
    sys.stdout.buffer.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--map", action="append", default=[])
    args = parser.parse_args()
    driver = browser(args.map)
    try:
        say("ok", "ready")
        for line in sys.stdin:
            if not line.strip():
                break
            try:
                value = run(driver, json.loads(line))
                say("ok", value if isinstance(value, str) else json.dumps(value))
            except Exception as e:  # the test shows what failed
                lines = str(e).strip().splitlines()
                say("error", f"{type(e).__name__}: {lines[0] if lines else ''}")
    finally:
        driver.quit()


main()
