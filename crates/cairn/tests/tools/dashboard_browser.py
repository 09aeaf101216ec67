"""Drives the hub's dashboard in a real headless Chromium (Debian's
chromium and chromium-driver, over WebDriver with selenium), one phase per
call, and writes a screenshot of every page it looks at.

usage: dashboard_browser.py HUB_URL TOKEN SHOTS_DIR PHASE [ARG]
  fleet NODE STATE        sign in; wait until NODE shows STATE (online|offline)
  auditor KIND            sign in; open the first open KIND item; report what is offered
  resolve KIND VALUE      sign in; resolve the first open KIND item with VALUE
  pages                   sign in; visit every page
Prints one JSON object.
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

HUB, TOKEN, SHOTS, PHASE = sys.argv[1:5]
ARGS = sys.argv[5:]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    # The system's driver: nothing is downloaded at run time.
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def shot(driver, name):
    driver.save_screenshot("%s/%s.png" % (SHOTS, name))


def sign_in(driver):
    driver.get(HUB + "/dashboard/signin")
    driver.find_element(By.NAME, "token").send_keys(TOKEN)
    driver.find_element(By.TAG_NAME, "button").click()
    # The answer is the fleet page (signed in) or the sign-in page again
    # with the refusal: wait for one of them to load.
    WebDriverWait(driver, 15).until(
        lambda d: d.find_elements(By.TAG_NAME, "nav") or d.find_elements(By.CSS_SELECTOR, "p.offline")
    )
    if not driver.find_elements(By.TAG_NAME, "nav"):
        raise SystemExit("sign-in refused: " + driver.find_element(By.TAG_NAME, "body").text)


def node_state(driver, node):
    driver.get(HUB + "/dashboard")
    rows = driver.find_elements(By.CSS_SELECTOR, 'tr[data-node="%s"] td' % node)
    return rows[1].text if len(rows) > 1 else None


def first_open(driver, kind):
    driver.get("%s/dashboard/reviews?open=true&kind=%s" % (HUB, kind))
    links = driver.find_elements(By.CSS_SELECTOR, "#reviews td a")
    if not links:
        return None
    item = links[0].text
    links[0].click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "kind"))
    return item


def main():
    driver = browser()
    try:
        sign_in(driver)
        if PHASE == "fleet":
            node, wanted = ARGS
            deadline = time.time() + 30
            state = node_state(driver, node)
            while state != wanted and time.time() < deadline:
                time.sleep(0.5)
                state = node_state(driver, node)
            shot(driver, "fleet-%s-%s" % (node, state))
            print(json.dumps({"state": state}))
        elif PHASE == "auditor":
            item = first_open(driver, ARGS[0])
            shot(driver, "review-as-auditor")
            print(json.dumps({
                "item": item,
                "resolve_offered": bool(driver.find_elements(By.ID, "resolve")),
                "read_only": bool(driver.find_elements(By.ID, "read-only")),
            }))
        elif PHASE == "resolve":
            kind, value = ARGS
            deadline = time.time() + 30
            item = first_open(driver, kind)
            while item is None and time.time() < deadline:
                time.sleep(0.5)
                item = first_open(driver, kind)
            shot(driver, "review-open")
            driver.find_element(By.NAME, "value").send_keys(value)
            driver.find_element(By.NAME, "note").send_keys("the count done on Monday")
            driver.find_element(By.ID, "resolve").click()
            WebDriverWait(driver, 15).until(lambda d: not d.find_elements(By.ID, "resolve"))
            shot(driver, "review-resolved")
            print(json.dumps({
                "item": item,
                "state": driver.find_element(By.ID, "state").text,
                "closure": driver.find_element(By.ID, "closure").text,
            }))
        elif PHASE == "pages":
            seen = {}
            for name, path in (("fleet", "/dashboard"), ("reviews", "/dashboard/reviews"),
                               ("log", "/dashboard/log"), ("reports", "/dashboard/reports")):
                driver.get(HUB + path)
                shot(driver, "page-" + name)
                seen[name] = driver.find_element(By.TAG_NAME, "h1").text
            print(json.dumps(seen))
        else:
            raise SystemExit("unknown phase " + PHASE)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
